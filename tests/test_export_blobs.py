"""``export`` carries the bytes of images in conversations, once each, and ``import``
stores them again: an exported store's calls still show and re-send their images."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import llm_events
from llm_events import ContextBuilder
from tests.test_cli_transfer import rows, run
from tests.test_conversation import HISTORY, PNG, PNG_SHA, ToolCaller


@pytest.fixture
def source(db_path) -> Path:
    """A store with two calls that sent the same image."""
    builder = ContextBuilder()
    for question in ("And tomorrow?", "And the day after?"):
        prompt = builder.build_prompt(question, history=HISTORY)
        ToolCaller().generate(prompt, context_builder=builder)
    llm_events.flush()
    return db_path


def test_export_writes_each_image_once_before_the_event_that_needs_it(source, tmp_path):
    out = tmp_path / "all.jsonl"
    result = run("export", "--db", str(source), "-o", str(out))
    assert result.exit_code == 0
    n = rows(source, "SELECT count(*) FROM events")[0][0]
    assert result.stderr == f"exported {n} events and 1 blob (image or file bytes) to {out}\n"
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    blob_lines = [i for i, line in enumerate(lines) if "blob" in line]
    assert len(blob_lines) == 1  # two prompts, one image
    (at,) = blob_lines
    assert lines[at]["blob"] == {
        "sha256": PNG_SHA,
        "mime_type": "image/png",
        "size": len(PNG),
        "data": base64.b64encode(PNG).decode(),
    }
    first_user = next(i for i, line in enumerate(lines) if line.get("type") == "prompt_built")
    assert at == first_user - 1
    events = [line for line in lines if "type" in line]
    assert len(events) == rows(source, "SELECT count(*) FROM events")[0][0]


def test_import_stores_the_image_again(source, tmp_path):
    out = tmp_path / "all.jsonl"
    run("export", "--db", str(source), "-o", str(out))
    copy = tmp_path / "copy.db"
    result = run("import", str(out), "--db", str(copy))
    assert result.exit_code == 0, result.output
    assert rows(copy, "SELECT sha256, mime_type, size, data FROM blobs") == [
        (PNG_SHA, "image/png", len(PNG), PNG)
    ]
    assert rows(copy, "SELECT id, payload FROM events ORDER BY seq") == rows(
        source, "SELECT id, payload FROM events ORDER BY seq"
    )
    assert run("verify", "--db", str(copy)).exit_code == 0


def test_no_blobs_leaves_the_bytes_out_and_a_later_import_fills_them_in(source, tmp_path):
    bare, full = tmp_path / "bare.jsonl", tmp_path / "full.jsonl"
    assert run("export", "--db", str(source), "--no-blobs", "-o", str(bare)).exit_code == 0
    assert all("blob" not in json.loads(line) for line in bare.read_text().splitlines())
    run("export", "--db", str(source), "-o", str(full))
    copy = tmp_path / "copy.db"
    assert run("import", str(bare), "--db", str(copy)).exit_code == 0
    assert rows(copy, "SELECT count(*) FROM blobs") == [(0,)]
    again = run("import", str(full), "--db", str(copy))
    assert again.exit_code == 0, again.output
    assert "imported 0 new events" in again.output  # the events were there: only the bytes
    assert rows(copy, "SELECT data FROM blobs") == [(PNG,)]


def test_an_image_whose_bytes_do_not_match_its_digest_is_refused(source, tmp_path):
    out = tmp_path / "all.jsonl"
    run("export", "--db", str(source), "-o", str(out))
    lines = out.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith('{"blob"'))
    tampered = json.loads(lines[at])
    tampered["blob"]["data"] = base64.b64encode(PNG[:-1] + b"!").decode()
    lines[at] = json.dumps(tampered)
    out.write_text("\n".join(lines) + "\n")
    copy = tmp_path / "copy.db"
    result = run("import", str(out), "--db", str(copy))
    assert result.exit_code == 1
    (message,) = result.output.splitlines()
    assert message.startswith(f"Error: {out} line {at + 1} is not an llm-events event: ")
    assert f"its bytes do not match their sha256 {PNG_SHA[:16]}" in message
    assert f"{at} events before it were imported" in message
    assert rows(copy, "SELECT count(*) FROM blobs") == [(0,)]

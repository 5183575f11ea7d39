"""``export`` and ``import``: JSON Lines round trips, idempotence, merging hosts, bad files."""

from __future__ import annotations

import json
import sqlite3
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_events.cli import main
from tests.cli_support import make_sample_store


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample_store(tmp_path_factory.mktemp("transfer") / "sample.db")


def test_export_writes_every_event_as_json_lines(sample, tmp_path):
    result = run("export", "--db", str(sample.path))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == rows(sample.path, "SELECT count(*) FROM events")[0][0]
    first = json.loads(lines[0])
    assert first["type"] == "prompt_built" and first["id"] and first["ts"].endswith("Z")
    out = tmp_path / "all.jsonl"
    result = run("export", "--db", str(sample.path), "-o", str(out))
    assert result.exit_code == 0
    assert f"exported {len(lines)} events to {out}" in result.output
    assert out.read_text().splitlines() == lines


def test_import_round_trips_and_is_idempotent(sample, tmp_path):
    dump = tmp_path / "all.jsonl"
    run("export", "--db", str(sample.path), "-o", str(dump))
    target = tmp_path / "copy.db"
    first = run("import", str(dump), "--db", str(target))
    n = len(dump.read_text().splitlines())
    assert first.exit_code == 0, first.output
    assert f"imported {n} new events from {dump} (0 already in" in first.output
    again = run("import", str(dump), "--db", str(target))
    assert again.exit_code == 0
    assert f"imported 0 new events from {dump} ({n} already in" in again.output
    # same ids, same calls, intact chain
    q = "SELECT id, type, call_id, ts, payload FROM events ORDER BY seq"
    assert rows(target, q) == rows(sample.path, q)
    q = "SELECT call_id, status, attempts, retries, fallbacks, backend, model FROM calls ORDER BY 1"
    assert rows(target, q) == rows(sample.path, q)
    assert run("verify", "--db", str(target)).exit_code == 0
    assert json.loads(run("search", "refund", "--json", "--db", str(target)).output)


def test_export_with_filters_writes_whole_calls(sample, tmp_path):
    out = tmp_path / "failed.jsonl"
    assert (
        run("export", "--db", str(sample.path), "--status", "error", "-o", str(out)).exit_code == 0
    )
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events[0]["type"] == "prompt_built"
    assert {e.get("call_id") for e in events[1:]} == {sample.failed_call_id}
    target = tmp_path / "failed.db"
    assert run("import", str(out), "--db", str(target)).exit_code == 0
    assert rows(target, "SELECT call_id, status, prompt_preview IS NOT NULL FROM calls") == [
        (sample.failed_call_id, "error", 1)
    ]
    last = run("export", "--db", str(sample.path), "-n", "2").output.splitlines()
    assert len({json.loads(line).get("call_id") for line in last} - {None}) == 2


def _record(db: Path, question: str) -> None:
    from llm_events import ContextBuilder, EventStore, client_from_spec
    from llm_events.recording.recorder import call_options

    store = EventStore(db)
    try:
        builder = ContextBuilder(store=store)
        with call_options(store=store):
            client_from_spec("echo").generate(
                builder.build_prompt(question), context_builder=builder
            )
    finally:
        store.close()


def test_merging_stores_from_two_hosts_orders_by_timestamp(tmp_path):
    a, b = tmp_path / "host-a.db", tmp_path / "host-b.db"
    _record(a, "a first")
    _record(b, "b second")
    _record(a, "a third")
    _record(b, "b fourth")
    for db in (a, b):
        assert run("export", "--db", str(db), "-o", str(db.with_suffix(".jsonl"))).exit_code == 0
    merged = tmp_path / "merged.db"
    result = run(
        "import", str(a.with_suffix(".jsonl")), str(b.with_suffix(".jsonl")), "--db", str(merged)
    )
    assert result.exit_code == 0, result.output
    stamps = [t for (t,) in rows(merged, "SELECT ts FROM events ORDER BY seq")]
    assert stamps == sorted(stamps)
    prompts = [p for (p,) in rows(merged, "SELECT prompt_preview FROM calls ORDER BY started_at")]
    assert prompts == ["a first", "b second", "a third", "b fourth"]
    ids = {i for (i,) in rows(merged, "SELECT id FROM events")}
    assert ids == {i for (i,) in rows(a, "SELECT id FROM events")} | {
        i for (i,) in rows(b, "SELECT id FROM events")
    }
    assert run("verify", "--db", str(merged)).exit_code == 0
    # importing one host again changes nothing
    again = run("import", str(a.with_suffix(".jsonl")), "--db", str(merged))
    assert "imported 0 new events" in again.output


def test_import_reads_stdin(sample, tmp_path):
    dump = run("export", "--db", str(sample.path)).output
    target = tmp_path / "stdin.db"
    result = CliRunner().invoke(main, ["import", "-", "--db", str(target)], input=dump)
    assert result.exit_code == 0, result.output
    assert "from -" in result.output
    assert rows(target, "SELECT count(*) FROM calls")[0][0] == 10


def test_import_of_a_corrupt_file_is_one_line_and_keeps_what_came_before(sample, tmp_path):
    lines = run("export", "--db", str(sample.path)).output.splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines[:10]) + "\n" + lines[10][:40] + "\n")
    target = tmp_path / "t.db"
    result = run("import", str(bad), "--db", str(target))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.count("\n") == 1
    assert f"Error: {bad} line 11 is not an llm-events event" in result.output
    assert "10 events before it were imported" in result.output
    assert rows(target, "SELECT count(*) FROM events")[0][0] == 10


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"type": "call_started", "id": "x"}\n', "line 1 is not an llm-events event"),
        (
            '{"type": "from_the_future", "id": "x", "ts": "2030-01-01T00:00:00Z"}\n',
            "unknown event type",
        ),
        ("[1, 2, 3]\n", "line 1 is not an llm-events event"),
    ],
)
def test_import_rejects_lines_that_are_not_events(tmp_path, content, fragment):
    f = tmp_path / "x.jsonl"
    f.write_text(content)
    result = run("import", str(f), "--db", str(tmp_path / "t.db"))
    assert result.exit_code == 1 and fragment in result.output
    assert "Traceback" not in result.output


def test_import_binary_file_and_missing_file(tmp_path):
    binary = tmp_path / "x.bin"
    binary.write_bytes(bytes(range(256)) * 10)
    result = run("import", str(binary), "--db", str(tmp_path / "t.db"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    missing = run("import", str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "t.db"))
    assert missing.exit_code == 1 and "no such file" in missing.output
    nothing = run("import", "--db", str(tmp_path / "t.db"))
    assert nothing.exit_code == 1 and "give FILE(s) to import, or --from-llm PATH" in nothing.output


def test_import_from_llm_calls_the_llm_importer(tmp_path, monkeypatch):
    logs = tmp_path / "logs.db"
    sqlite3.connect(logs).close()
    seen = {}

    def import_llm_logs(store, path, problems=None):
        seen["args"] = (store.path, Path(path))
        return 3

    fake = types.ModuleType("llm_events.transfer.llm_import")
    fake.import_llm_logs = import_llm_logs
    monkeypatch.setitem(sys.modules, "llm_events.transfer.llm_import", fake)
    target = tmp_path / "t.db"
    result = run("import", "--from-llm", str(logs), "--db", str(target))
    assert result.exit_code == 0, result.output
    assert f"imported 3 calls from llm logs {logs}" in result.output
    assert seen["args"] == (str(target), logs)


def test_import_from_llm_without_the_importer_is_one_line(tmp_path, monkeypatch):
    logs = tmp_path / "logs.db"
    sqlite3.connect(logs).close()
    monkeypatch.setitem(sys.modules, "llm_events.transfer.llm_import", None)  # import fails
    result = run("import", "--from-llm", str(logs), "--db", str(tmp_path / "t.db"))
    assert result.exit_code == 1
    assert result.output == (
        "Error: importing an llm logs.db is not available in this version of llm-events\n"
    )


def test_export_into_a_pipe_closed_early_says_nothing(tmp_path):
    """`llm-events export | head -1`: the reader leaves; no "Broken pipe" error line."""
    import subprocess

    from llm_events import EventStore, Prompt, client_from_spec
    from tests.cli_support import console_script

    db = tmp_path / "many.db"
    store = EventStore(db)
    client = client_from_spec("echo", store=store)
    for i in range(150):  # far more than a pipe's 64 KiB buffer
        prompt = Prompt(user=f"question {i} " + "x" * 800, origin="context_builder")
        client.generate(prompt, context_builder=None)
    store.close()
    proc = subprocess.Popen(
        [console_script(), "export", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does
    _, err = proc.communicate(timeout=60)
    assert first.startswith(b'{"type":"prompt_built"')
    assert err == b""

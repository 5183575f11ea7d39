"""``import`` under hostile input (issue 12, items 5 and 6, and the import paths of 1 and 4):
conflicts reported with their ids and a non-zero exit, lines that projections could not read
refused in one line, newer events' fields kept, llm logs.db rows of the wrong types read as
what they should hold (real CLI processes, real files)."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest

from tests.cli_support import console_script


def cli(db, *args, stdin=None):
    return subprocess.run(
        [console_script(), *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def record_one(db) -> list[dict]:
    """One recorded echo call, exported: its events as dicts."""
    out = cli(db, "prompt", "-m", "echo", "hello")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in cli(db, "export").stdout.splitlines()]


def write_jsonl(path, events) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def assert_readable(db) -> None:
    for args in (["rebuild"], ["export"], ["calls"], ["verify"]):
        out = cli(db, *args)
        assert out.returncode == 0 and "Traceback" not in out.stderr, (args, out.stderr)


def test_same_id_with_other_content_is_a_conflict_reported_by_id(tmp_path):
    source = tmp_path / "a.db"
    events = record_one(source)
    target = tmp_path / "t.db"
    first = tmp_path / "first.jsonl"
    write_jsonl(first, events)
    assert cli(target, "import", str(first)).returncode == 0
    forged = [dict(e) for e in events]
    answer = next(e for e in forged if e["type"] == "attempt_succeeded")
    answer["text"] = "a different answer"
    extra = dict(events[0], id="0190aaaa-0000-7000-8000-000000000001", user="new one")
    dump = tmp_path / "forged.jsonl"
    write_jsonl(dump, [*forged, extra])

    out = cli(target, "import", str(dump))

    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1
    assert (
        f"1 events conflict with events of the same id and other content, not imported: {answer['id']}"
        in out.stderr
    )
    assert "1 new events were imported" in out.stderr
    stored = (
        sqlite3.connect(target)
        .execute("SELECT json_extract(payload, '$.text') FROM events WHERE id = ?", (answer["id"],))
        .fetchone()[0]
    )
    assert stored != "a different answer"
    assert_readable(target)


def test_conflict_inside_one_input_is_reported(tmp_path):
    events = record_one(tmp_path / "a.db")
    twin = dict(events[0], user="not the same prompt")
    dump = tmp_path / "x.jsonl"
    write_jsonl(dump, [*events, twin])
    out = cli(tmp_path / "t.db", "import", str(dump))
    assert out.returncode == 1 and events[0]["id"] in out.stderr


def test_newer_events_keep_their_unknown_fields(tmp_path):
    events = record_one(tmp_path / "a.db")
    newer = [dict(e, v=99, from_the_future={"x": [1, 2]}) for e in events]
    dump = tmp_path / "v99.jsonl"
    write_jsonl(dump, newer)
    target = tmp_path / "t.db"
    assert cli(target, "import", str(dump)).returncode == 0
    exported = [json.loads(line) for line in cli(target, "export").stdout.splitlines()]
    assert exported == newer
    assert_readable(target)
    assert cli(target, "import", str(dump)).stdout.endswith(f"({len(newer)} already in {target})\n")


def _started(call_id="0190aaaa-0000-7000-8000-0000000000c1"):
    return {
        "type": "call_started",
        "id": "0190aaaa-0000-7000-8000-0000000000a1",
        "ts": "2026-11-30T10:00:00.000000Z",
        "call_id": call_id,
    }


def _finished(**fields):
    return {
        "type": "call_finished",
        "id": "0190aaaa-0000-7000-8000-0000000000f1",
        "ts": "2026-11-30T10:00:01.000000Z",
        "call_id": "0190aaaa-0000-7000-8000-0000000000c9",
        "status": "ok",
        **fields,
    }


DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [json.dumps(_started() | {"id": ""}), json.dumps(_finished(id=""))],
            "line 1 is not an llm-events event: its id is '': every event needs a non-empty id",
        ),
        ([json.dumps(_finished(status="weird-status"))], "status 'weird-status' is not one of"),
        ([json.dumps(_finished(attempts=-5))], "attempts is -5, out of range"),
        ([json.dumps(_finished(attempts=10**30))], "out of range"),
        ([json.dumps(_finished(ts="yesterday-ish"))], "ts 'yesterday-ish' is not an ISO-8601"),
        ([json.dumps(_finished(latency_ms="fast"))], "Expected `float | null`, got `str`"),
        ([DEEP], "nested too deeply to be read"),
        (
            [json.dumps(_finished(error_message="x")).replace('"x"', DEEP)],
            "nested too deeply",
        ),
    ],
)
def test_lines_projections_could_not_read_are_refused_in_one_line(tmp_path, lines, message):
    dump = tmp_path / "bad.jsonl"
    dump.write_text("\n".join(lines) + "\n")
    db = tmp_path / "t.db"
    out = cli(db, "import", str(dump))
    assert out.returncode == 1, out.stdout
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert message in out.stderr
    assert_readable(db)


def test_a_deep_value_in_an_any_field_is_refused_not_a_traceback(tmp_path):
    deep = {
        "type": "attempt_succeeded",
        "id": "e1",
        "ts": "2026-11-30T10:00:00Z",
        "call_id": "c1",
        "attempt": 1,
        "parsed": None,
    }
    line = json.dumps(deep).replace('"parsed": null', '"parsed": ' + "[" * 300 + "]" * 300)
    dump = tmp_path / "deep.jsonl"
    dump.write_text(line + "\n")
    out = cli(tmp_path / "t.db", "import", str(dump))
    assert out.returncode == 1 and "nested deeper than 200 levels" in out.stderr


def _logs_db(path, rows):
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE responses (id TEXT PRIMARY KEY, model TEXT, prompt TEXT, system TEXT, "
        "prompt_json TEXT, options_json TEXT, response TEXT, response_json TEXT, "
        "conversation_id TEXT, duration_ms INTEGER, datetime_utc TEXT, input_tokens INTEGER, "
        "output_tokens INTEGER, token_details TEXT)"
    )
    conn.executemany(
        "INSERT INTO responses (id, model, prompt, response, response_json, duration_ms, "
        "datetime_utc, input_tokens, output_tokens) VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.commit()
    conn.close()


def test_llm_rows_of_the_wrong_types_are_imported_as_what_they_should_hold(tmp_path):
    logs = tmp_path / "logs.db"
    deep = "[" * 5000 + "]" * 5000
    _logs_db(
        logs,
        [
            (
                "r1",
                "gpt-x",
                b"a blob prompt",
                "answer 1",
                None,
                5,
                "2026-11-30T10:00:00",
                "many",
                3,
            ),
            ("r2", "gpt-x", "prompt 2", "answer 2", deep, "abc", "2026-11-30T10:00:01", 2**62, "4"),
            ("r3", "gpt-x", b"\xff\xfe bad", "answer 3", '{"ok": 1}', 1.5, "garbage", None, None),
        ],
    )
    db = tmp_path / "t.db"
    out = cli(db, "import", "--from-llm", str(logs))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"imported 3 calls from llm logs {logs}\n"
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT prompt_preview, input_tokens, output_tokens, tokens_estimated FROM calls "
        "ORDER BY prompt_preview"
    ).fetchall()
    assert rows[0] == ("\\xff\\xfe bad", rows[0][1], rows[0][2], 1)
    assert rows[1] == ("a blob prompt", rows[1][1], 3, 1)  # 'many' input tokens: estimated
    assert rows[2] == ("prompt 2", 2**62, 4, 0)
    notes = [
        json.loads(n)
        for (n,) in conn.execute(
            "SELECT json_extract(payload, '$.metadata.llm_import_notes') FROM events "
            "WHERE type = 'prompt_built' ORDER BY json_extract(payload, '$.user')"
        )
    ]
    assert "input_tokens 'many' is not a valid number: left out" in notes[1]
    assert "duration_ms 'abc' is not a valid number: left out" in notes[2]
    raw = conn.execute(
        "SELECT json_extract(payload, '$.raw') FROM events WHERE type = 'attempt_succeeded' "
        "AND json_extract(payload, '$.text') = 'answer 2'"
    ).fetchone()[0]
    assert raw == deep  # kept as the text it was, not lost
    conn.close()
    assert_readable(db)

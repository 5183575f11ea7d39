"""``llm-events path``, ``demo``, ``verify``, ``rebuild`` on real store files."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from llm_events import EventStore
from llm_events.cli import main

from .test_store import tamper


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_path_follows_the_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_EVENTS_DB", str(tmp_path / "env.db"))
    assert invoke("path").output == f"{tmp_path / 'env.db'}\n"
    assert invoke("path", "--db", str(tmp_path / "x.db")).output == f"{tmp_path / 'x.db'}\n"
    monkeypatch.delenv("LLM_EVENTS_DB")
    assert invoke("path").output == f"{tmp_path / 'home' / 'events.db'}\n"


def test_db_before_the_command_works_like_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_EVENTS_DB", str(tmp_path / "env.db"))
    assert invoke("--db", str(tmp_path / "g.db"), "path").output == f"{tmp_path / 'g.db'}\n"
    mine = invoke("--db", str(tmp_path / "g.db"), "path", "--db", str(tmp_path / "x.db"))
    assert mine.output == f"{tmp_path / 'x.db'}\n"  # the command's own --db wins
    assert invoke("path").output == f"{tmp_path / 'env.db'}\n"  # nothing left behind
    assert invoke("--db", str(tmp_path / "g.db"), "demo").exit_code == 0
    listed = invoke("--db", str(tmp_path / "g.db"), "calls", "-n", "50")
    assert listed.exit_code == 0 and len(listed.output.splitlines()) == 1 + 9
    assert not (tmp_path / "env.db").exists()


def test_demo_records_retry_fallback_and_failure(db_path):
    result = invoke("demo")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == f"Recorded 9 calls (8 ok, 1 failed) as 62 events in {db_path}"
    assert lines[1] == "  attempts: 12   retries: 1   fallbacks: 2"
    assert "llm-events browse" in result.output
    conn = sqlite3.connect(db_path)
    types = {t for (t,) in conn.execute("SELECT DISTINCT type FROM events")}
    assert {"retry_scheduled", "fallback_taken", "attempt_failed", "route_chosen"} <= types
    assert conn.execute("SELECT count(*) FROM calls WHERE status='error'").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM calls WHERE retries > 0").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM calls WHERE fallbacks > 0").fetchone() == (2,)
    assert conn.execute("SELECT count(*) FROM prompts").fetchone() == (8,)
    # the failed call's prompt is not in prompts (no answer), but is in events
    (failed,) = conn.execute("SELECT call_id FROM calls WHERE status='error'").fetchone()
    assert failed not in {c for (c,) in conn.execute("SELECT call_id FROM prompts")}
    # twice is fine: a second session is appended
    assert invoke("demo").exit_code == 0
    assert conn.execute("SELECT count(*) FROM calls").fetchone() == (18,)


def test_verify_ok_and_tampered(db_path):
    invoke("demo")
    ok = invoke("verify")
    head = EventStore(db_path, readonly=True).verify().head
    assert head.startswith("62:") and len(head) == 3 + 64
    assert ok.exit_code == 0 and ok.output == f"ok: 62 events verified in {db_path}\nhead: {head}\n"
    tamper(
        db_path, "UPDATE events SET payload = replace(payload, 'refund', 'REFUND') WHERE seq = 7"
    )
    bad = CliRunner().invoke(main, ["verify"])
    assert bad.exit_code == 1
    assert "FAILED at seq 7: event seq 7 was altered after it was written" in bad.output
    assert CliRunner().invoke(main, ["verify", "-q"]).output == ""


def test_rebuild(db_path):
    invoke("demo")
    before = sqlite3.connect(db_path).execute("SELECT * FROM calls ORDER BY call_id").fetchall()
    result = invoke("rebuild")
    assert result.output == "rebuilt all projections from 62 events\n"
    assert (
        sqlite3.connect(db_path).execute("SELECT * FROM calls ORDER BY call_id").fetchall()
        == before
    )
    assert invoke("rebuild", "--only", "calls").output == "rebuilt calls from 62 events\n"
    bad = CliRunner().invoke(main, ["rebuild", "--only", "nope"])
    assert bad.exit_code == 2 and "bad --only: 'nope' is not a projection" in bad.output


def test_errors_are_one_line_without_traceback(tmp_path):
    missing = tmp_path / "missing.db"
    for command in ("verify", "rebuild"):
        result = CliRunner().invoke(main, [command, "--db", str(missing)])
        assert result.exit_code == 1
        assert (
            result.output
            == f"Error: no event store at {missing} (run `llm-events demo` to create one, or pass --db)\n"
        )
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    result = CliRunner().invoke(main, ["verify", "--db", str(garbage)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_console_script_in_a_subprocess(tmp_path):
    exe = shutil.which("llm-events", path=str(Path(sys.executable).parent))
    assert exe is not None, "the llm-events console script is installed with the package"
    db = tmp_path / "sub.db"
    demo = subprocess.run(
        [exe, "demo", "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.startswith("Recorded 9 calls")
    verify = subprocess.run(
        [exe, "verify", "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0
    assert verify.stdout.startswith(f"ok: 62 events verified in {db}\nhead: 62:")


def test_show_flags_a_running_call_whose_process_went_silent(db_path):
    import time

    from llm_events import EventStore
    from llm_events.log import events as ev

    store = EventStore(db_path)
    hour_ago = ev.now_iso(time.time() - 3600)
    call_id = ev.new_id()
    store.append(
        [
            ev.CallStarted(id=ev.new_id(), ts=hour_ago, call_id=call_id, client="crashed"),
            ev.AttemptStarted(id=ev.new_id(), ts=hour_ago, call_id=call_id, attempt=1, backend="b"),
        ]
    )
    fresh = ev.new_id()
    store.append([ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id=fresh, client="live")])
    store.close()
    stalled = invoke("show", call_id).output
    assert "  status    running (1 attempt(s), 0 retries, 0 fallback(s))" in stalled
    assert "  note      no event for 60 min: the process may have died mid-request" in stalled
    assert "note" not in invoke("show", fresh).output


def test_show_says_a_silent_call_s_process_is_still_running(db_path):
    import time

    from llm_events import EventStore
    from llm_events.log import events as ev
    from llm_events.log import processes

    me = processes.current()  # this test's process: alive
    hour_ago = ev.now_iso(time.time() - 3600)
    call_id = ev.new_id()
    store = EventStore(db_path)
    store.append(
        [
            ev.CallStarted(
                id=ev.new_id(),
                ts=hour_ago,
                call_id=call_id,
                client="slow",
                host=me.host,
                pid=me.pid,
                process=me.process,
            ),
            ev.AttemptStarted(id=ev.new_id(), ts=hour_ago, call_id=call_id, attempt=1, backend="b"),
        ]
    )
    store.close()
    shown = invoke("show", call_id).output
    assert (
        f"  note      no event for 60 min, and process {me.pid} on {me.host} is still running: "
        "the request is waiting\n"
    ) in shown
    assert f"  process   {me.host} pid {me.pid}\n" in shown

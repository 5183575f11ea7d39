"""Calls whose process died mid-call are closed as interrupted; live or foreign ones are not."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_events import ContextBuilder, EventStore, LLMClient, LLMResult, configure
from llm_events.cli import main
from llm_events.log import events as ev
from llm_events.log import processes
from llm_events.log.interrupted import record_interrupted

from .helpers import read_db

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    processes.current().process is None, reason="needs Linux /proc to tell processes apart"
)


class Instant(LLMClient):
    backend_name = "instant"

    def _generate(self, prompt, *, context_builder):
        return LLMResult(text="ok")


def record_one_call(db: Path) -> str:
    """What any recording process does: resolve the store, build a prompt, call a client."""
    configure(db=db)
    builder = ContextBuilder()
    result = Instant("instant-1").generate(builder.build_prompt("hi"), context_builder=builder)
    return result.text


def events_of(db: Path, call_id: str) -> list[dict]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT payload FROM events WHERE call_id = ? ORDER BY seq", (call_id,)
        ).fetchall()
    finally:
        conn.close()
    return [json.loads(p) for (p,) in rows]


def call_row(db: Path, call_id: str) -> tuple:
    conn = read_db(db)
    try:
        return conn.execute(
            "SELECT status, attempts, failures, retries, error_type FROM calls WHERE call_id = ?",
            (call_id,),
        ).fetchone()
    finally:
        conn.close()


def test_a_call_whose_process_was_killed_is_closed_by_the_next_recording_process(db_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.workers.hang_in_call", str(db_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("sent "), proc.stderr.read()
        call_id = line.split()[1]
        # in flight: another process looking leaves it alone
        assert record_interrupted(EventStore(db_path)) == []
        assert call_row(db_path, call_id) == ("running", 2, 1, 1, "TimeoutError")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    shown = CliRunner().invoke(main, ["show", call_id]).output
    host = processes.current().host
    assert f"  note      process {proc.pid} on {host} has ended: the call was interrupted" in shown
    assert f"  process   {host} pid {proc.pid}\n" in shown

    assert record_one_call(db_path) == "ok"

    closing = events_of(db_path, call_id)[-2:]
    message = (
        f"process {proc.pid} on {host} ended before the call finished "
        f"(found by process {os.getpid()} on {host})"
    )
    assert [(e["type"], e["attempt"], e["error_type"], e["message"]) for e in closing[:1]] == [
        ("attempt_failed", 2, "Interrupted", message)
    ]
    finished = closing[1]
    assert (finished["type"], finished["status"], finished["attempts"]) == (
        "call_finished",
        "error",
        2,
    )
    assert (finished["error_type"], finished["error_message"]) == ("Interrupted", message)
    assert call_row(db_path, call_id) == ("error", 2, 2, 1, "Interrupted")
    assert EventStore(db_path, readonly=True).verify().ok

    shown = CliRunner().invoke(main, ["show", call_id]).output
    assert f"  error     Interrupted: {message}\n" in shown
    assert "note" not in shown


def _started(call_id: str, **process) -> list[ev.Event]:
    return [
        ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id=call_id, client="c", **process),
        ev.AttemptStarted(id=ev.new_id(), ts=ev.now_iso(), call_id=call_id, attempt=1, backend="b"),
    ]


def _key(machine: str | None = None, boot: str | None = None, ns: str | None = None, start="1"):
    mine = processes.current().process.split("/")
    return "/".join(
        (mine[0] if machine is None else machine, boot or mine[1], ns or mine[2], start)
    )


def test_only_calls_of_processes_known_to_have_ended_are_closed(db_path):
    me = processes.current()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live_key = _key(start=processes.start_time(sleeper.pid))
        cases = {
            "live process": dict(host=me.host, pid=sleeper.pid, process=live_key),
            "this process": dict(host=me.host, pid=me.pid, process=me.process),
            "another host": dict(host="elsewhere", pid=sleeper.pid, process=_key()),
            "another machine, same name": dict(host=me.host, pid=1, process=_key(machine="m2")),
            "another pid namespace": dict(host=me.host, pid=sleeper.pid, process=_key(ns="9")),
            "schema 1 event (no process)": {},
            "pid reused by a later process": dict(host=me.host, pid=sleeper.pid, process=_key()),
            "machine rebooted since": dict(host=me.host, pid=me.pid, process=_key(boot="b0")),
        }
        store = EventStore(db_path)
        ids = {}
        for name, process in cases.items():
            ids[name] = ev.new_id()
            store.append(_started(ids[name], **process))
        closed = record_interrupted(store)
        ended = ["pid reused by a later process"]
        if me.process.split("/")[0]:  # without a machine id a reboot cannot be told apart
            ended.append("machine rebooted since")
        assert sorted(closed) == sorted(ids[name] for name in ended)
        status = {name: call_row(db_path, ids[name])[0] for name in cases}
        assert status == {name: "error" if ids[name] in closed else "running" for name in cases}
        assert record_interrupted(store) == []  # closed once
    finally:
        sleeper.kill()
        sleeper.wait()


SWEEP = (
    "import sys; from llm_events import EventStore; "
    "from llm_events.log.interrupted import record_interrupted; "
    "print(' '.join(record_interrupted(EventStore(sys.argv[1]))))"
)


def test_two_processes_closing_at_once_close_each_call_once(db_path):
    me = processes.current()
    store = EventStore(db_path)
    dead = [ev.new_id() for _ in range(20)]
    for call_id in dead:
        store.append(_started(call_id, host=me.host, pid=me.pid, process=_key(start="1")))
    store.close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SWEEP, str(db_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    closed = [call_id for out, _ in outputs for call_id in out.split()]
    assert sorted(closed) == sorted(dead)
    conn = sqlite3.connect(db_path)
    finished = conn.execute(
        "SELECT call_id, count(*) FROM events WHERE type = 'call_finished' GROUP BY call_id"
    ).fetchall()
    assert sorted(finished) == sorted((call_id, 1) for call_id in dead)
    assert EventStore(db_path, readonly=True).verify().ok


def test_an_unreadable_start_is_left_alone_and_recording_goes_on(db_path):
    me = processes.current()
    store = EventStore(db_path)
    dead = ev.new_id()
    store.append(_started(dead, host=me.host, pid=me.pid, process=_key(start="1")))
    store.close()
    conn = sqlite3.connect(db_path)  # a start no version of ours could have written
    (seq,) = conn.execute("SELECT max(seq) + 1 FROM events").fetchone()
    conn.execute(
        "INSERT INTO events VALUES (?, 'odd-id', 'call_started', 'odd', ?, '{not json', '', '')",
        (seq, ev.now_iso()),
    )
    conn.execute("INSERT INTO calls (call_id, status) VALUES ('odd', 'running')")
    conn.commit()
    conn.close()
    assert record_one_call(db_path) == "ok"
    assert call_row(db_path, dead)[0] == "error"  # closed by the recording process
    assert call_row(db_path, "odd")[0] == "running"

"""Real processes: many writers on one file, and a writer killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_events import EventStore

ROOT = Path(__file__).resolve().parent.parent


def run_worker(module: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", f"tests.workers.{module}", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_four_processes_two_threads_each_nothing_lost(tmp_path):
    db = tmp_path / "shared.db"
    EventStore(db).close()  # created up front, as a deployed store would be
    procs = [run_worker("record_calls", str(db), "2", "2000", f"p{i}") for i in range(4)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err and "ERROR" not in err
    returned = {line for out, _ in outputs for line in out.split()}
    assert len(returned) == 16_000
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM calls WHERE status = 'ok'").fetchone() == (16_000,)
    assert {r for (r,) in conn.execute("SELECT call_id FROM calls")} == returned
    assert conn.execute("SELECT count(*) FROM prompts").fetchone() == (16_000,)
    n, lo, hi = conn.execute("SELECT count(*), min(seq), max(seq) FROM events").fetchone()
    assert (n, lo, hi) == (16_000 * 5, 1, 16_000 * 5)  # gapless
    assert EventStore(db, readonly=True).verify().ok


@pytest.mark.slow
def test_sigkill_while_appending_loses_nothing_that_returned(tmp_path):
    db = tmp_path / "crash.db"
    proc = run_worker("append_forever", str(db))
    committed: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while len(committed) < 2000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed += [line.strip() for line in proc.stdout.read().splitlines()]
    assert len(committed) >= 2000, proc.stderr.read() if proc.stderr else ""
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = {r for (r,) in conn.execute("SELECT id FROM events")}
    assert set(committed) <= stored
    conn.close()
    result = EventStore(db, readonly=True).verify()
    assert result.ok, result.reason
    # a crashed writer never leaves half a call: every call has all four events
    store = EventStore(db)
    assert store.conn().execute("SELECT count(*) FROM calls WHERE status != 'ok'").fetchone() == (
        0,
    )

"""A large rebuild folds the log in a second process (``foldworker``) and only writes: its
rows, search index and salvage reports are those of a rebuild that folds by itself, and
when the worker's chunks do not fit (another process caught up meanwhile, a count SQLite
cannot hold, the worker killed) the rebuild folds the rest itself.  A rebuild killed
half-way takes its worker with it and leaves a file the next open repairs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_events import EventStore
from llm_events.log import events as ev
from llm_events.log import rebuilding, salvage
from tests.helpers import read_db
from tests.test_catchup_folds import _call

TABLES = ("calls", "prompts", "tool_calls", "replays", "replay_results", "_projections")


def _log(seed: int, calls: int) -> list[ev.Event]:
    """Calls interleaved, one answer with a count past 2**63 (seed odd), a call finished
    twice, a replay run."""
    rng = random.Random(seed)
    queues = [_call(i, failures=rng.randrange(3)) for i in range(calls)]
    if seed % 2:
        queues[calls // 2] = [
            e
            if not isinstance(e, ev.AttemptSucceeded)
            else ev.AttemptSucceeded(
                id=e.id, ts=e.ts, call_id=e.call_id, attempt=e.attempt, input_tokens=2**70
            )
            for e in queues[calls // 2]
        ]
    queues[1].append(
        ev.CallFinished(id="dup", ts="2026-01-01T00:00:09Z", call_id="c0001", status="ok")
    )
    out: list[ev.Event] = [ev.ReplayStarted(id="rs", ts="2026-01-01T00:00:00Z", replay_id="r1")]
    while any(queues):
        q = rng.choice([q for q in queues if q])
        n = rng.randrange(1, 4)
        out.extend(q[:n])
        del q[:n]
    out.append(ev.ReplayFinished(id="rf", ts="2026-01-01T00:00:09Z", replay_id="r1", counts={}))
    return out


def _tables(path: Path) -> dict:
    conn = read_db(path)
    out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
    out["found"] = conn.execute(
        "SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'question' ORDER BY rowid"
    ).fetchall()
    conn.close()
    return out


def _store(tmp_path: Path, name: str, events: list[ev.Event]) -> EventStore:
    store = EventStore(tmp_path / name)
    store.append(events)
    store.flush()
    return store


@pytest.fixture
def counted(monkeypatch):
    """Force the pipeline on small logs, and count the chunks the worker's rows filled."""
    monkeypatch.setattr(rebuilding, "PIPELINE_MIN_EVENTS", 0)
    monkeypatch.setattr(rebuilding, "spare_cpu", lambda: True)  # (the suite runs on all)
    seen = {"written": 0, "workers": []}
    run, init = rebuilding._run, rebuilding.Worker.__init__

    def counting_run(conn, ops):
        run(conn, ops)
        seen["written"] += 1

    def keeping_init(self, *a, **k):
        init(self, *a, **k)
        seen["workers"].append(self)

    monkeypatch.setattr(rebuilding, "_run", counting_run)
    monkeypatch.setattr(rebuilding.Worker, "__init__", keeping_init)
    return seen


@pytest.mark.parametrize("seed", [2, 3])
def test_a_rebuild_folded_by_a_second_process_writes_what_one_process_writes(
    tmp_path, monkeypatch, counted, seed
):
    events = _log(seed, 30)
    alone = _store(tmp_path, "alone.db", events)
    monkeypatch.setattr(rebuilding, "PIPELINE_MIN_EVENTS", 10**9)
    salvage.drain()
    alone.rebuild(chunk=7)
    expected, reports = _tables(tmp_path / "alone.db"), salvage.drain()
    alone.close()
    monkeypatch.setattr(rebuilding, "PIPELINE_MIN_EVENTS", 0)
    store = _store(tmp_path, "piped.db", events)
    counted["written"] = 0
    salvage.drain()
    assert store.rebuild(chunk=7) == len(events)
    assert salvage.drain() == reports
    assert _tables(tmp_path / "piped.db") == expected
    assert counted["written"] >= (1 if seed % 2 else len(events) // 7)  # the worker folded
    store.close()


def test_chunks_another_process_applied_first_are_not_written_again(tmp_path, counted):
    events = _log(4, 30)
    store = _store(tmp_path, "two.db", events)
    store.rebuild()
    expected = _tables(tmp_path / "two.db")
    other = EventStore(tmp_path / "two.db")
    steps = []

    def progress(n: int) -> None:
        steps.append(n)
        if len(steps) == 2:
            other.catch_up(chunk=11)  # another process catches up between two chunks

    counted["written"] = 0
    store.rebuild(chunk=5, progress=progress)
    assert counted["written"] == 2  # the worker's chunks stop at the first that moved
    assert _tables(tmp_path / "two.db") == expected
    other.close()
    store.close()


def test_a_fold_worker_killed_half_way_leaves_the_rebuild_to_finish_by_itself(tmp_path, counted):
    events = _log(6, 30)
    store = _store(tmp_path, "killed.db", events)
    store.rebuild()
    expected = _tables(tmp_path / "killed.db")
    steps = []

    def progress(n: int) -> None:
        steps.append(n)
        if len(steps) == 3:
            worker = counted["workers"][-1].proc
            worker.kill()
            worker.wait()

    assert store.rebuild(chunk=5, progress=progress) == len(events)
    assert _tables(tmp_path / "killed.db") == expected
    store.close()


KILLED = """
import os, signal, sys
from llm_events import EventStore
from llm_events.log import rebuilding
rebuilding.PIPELINE_MIN_EVENTS = 0
rebuilding.spare_cpu = lambda: True
store = EventStore(sys.argv[1])
seen = []
def progress(n):
    seen.append(n)
    if len(seen) == 3:
        print(store_worker[0].proc.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
store_worker = []
init = rebuilding.Worker.__init__
def keep(self, *a, **k):
    init(self, *a, **k)
    store_worker.append(self)
rebuilding.Worker.__init__ = keep
store.rebuild(chunk=5, progress=progress)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, not yet reaped by whoever inherited it


def test_a_rebuild_killed_half_way_takes_its_worker_along_and_the_next_open_repairs(tmp_path):
    path = tmp_path / "dies.db"
    store = _store(tmp_path, "dies.db", _log(8, 30))
    store.rebuild()
    store.close()
    expected = _tables(path)
    done = subprocess.run(
        [sys.executable, "-c", KILLED, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 30
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)
    assert os.path.exists(path)
    EventStore(path).close()
    assert _tables(path) == expected

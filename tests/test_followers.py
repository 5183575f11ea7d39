"""Projections follow the log: crash-safe checkpoints, catch-up equal to a rebuild, group
commit, bounded lock waits."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import llm_events
from llm_events import EventStore
from llm_events.log import events as ev
from llm_events.log import follower
from llm_events.log.store import StoreLockedError

ROOT = Path(__file__).resolve().parent.parent
CALL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TABLES = {
    "calls": "call_id",
    "prompts": "call_id",
    "tool_calls": "seq, position",
    "replay_results": "replay_id, source_call_id",
    "replays": "replay_id",
}


def snapshot(path: Path) -> dict[str, list]:
    conn = sqlite3.connect(path)
    try:
        out = {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY {k}").fetchall() for t, k in TABLES.items()
        }
        # prompts.id is the insertion order, which differs between processes catching up
        out["prompts"] = [r[1:] for r in out["prompts"]]
        out["prompts"].sort(key=lambda r: r[0])
        out["fts"] = conn.execute(
            "SELECT count(*) FROM prompts_fts WHERE prompts_fts MATCH 'thread'"
        ).fetchone()
        return out
    finally:
        conn.close()


def follower_pid(db: Path) -> int | None:
    """The process holding the follower role of ``db`` (``/proc/locks``: its flock)."""
    try:
        inode = os.stat(str(db) + follower.SUFFIX).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            return int(parts[4])
    return None


def wait_for(check, seconds: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.slow
def test_eight_processes_killed_at_random_catch_up_to_what_a_rebuild_gives(tmp_path):
    """The follower of the file among them killed first, then others."""
    db = tmp_path / "shared.db"
    EventStore(db).close()

    def start(i: int, calls: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.workers.record_until_killed",
                str(db),
                "2",
                str(calls),
                f"p{i}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    acknowledged: set[str] = set()
    procs = [start(i, 40 if i % 2 else 100_000) for i in range(8)]

    def follower() -> subprocess.Popen | None:
        """The worker following the file (holding the role's lock), if one does now."""
        pid = follower_pid(db)
        return next((p for p in procs if p.pid == pid and p.poll() is None), None)

    # the one following the log for all is killed first, once it has returned 15 calls;
    # another takes its role while the others are still writing
    assert wait_for(lambda: follower() is not None)
    first = follower()
    assert first is not None and first.stdout is not None
    for _ in range(15):
        acknowledged.add(first.stdout.readline().strip())
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert wait_for(lambda: follower_pid(db) not in (None, first.pid))
    # the odd ones finish; each even one is killed once it has returned 15 calls, while
    # the others are still writing (and their projections catching up)
    for p in procs[0::2]:
        if p is first:
            continue
        assert p.stdout is not None
        for _ in range(15):
            acknowledged.add(p.stdout.readline().strip())
        os.kill(p.pid, signal.SIGKILL)
    for p in procs:
        out, err = p.communicate(timeout=300)
        # only whole ids: a kill can land in the middle of a write of acknowledged ids, and
        # communicate() reads the pipe itself, after what readline() above had buffered
        # (the rest of a chunk that may end mid-line: its next line starts torn)
        acknowledged |= {
            line.strip()
            for line in out.splitlines(keepends=True)
            if line.endswith("\n") and CALL_ID.fullmatch(line.strip())
        }
        if p.returncode != -signal.SIGKILL:
            assert p.returncode == 0, err
    acknowledged.discard("")
    conn = sqlite3.connect(db)
    stored = {
        r for (r,) in conn.execute("SELECT DISTINCT call_id FROM events WHERE call_id IS NOT NULL")
    }
    conn.close()
    assert acknowledged <= stored  # nothing acknowledged was lost
    assert len(acknowledged) >= sum(80 if p.returncode == 0 else 15 for p in procs)

    EventStore(db).close()  # the next open brings every projection up to date
    conn = sqlite3.connect(db)
    assert conn.execute(
        "SELECT count(*) FROM _projections WHERE last_seq != (SELECT max(seq) FROM events)"
    ).fetchone() == (0,)
    assert {r for (r,) in conn.execute("SELECT call_id FROM calls")} == stored
    conn.close()
    caught_up = snapshot(db)
    store = EventStore(db)
    store.rebuild()
    store.close()
    assert snapshot(db) == caught_up
    assert EventStore(db, readonly=True).verify().ok


def test_an_append_returns_once_committed_and_concurrent_appends_share_commits(tmp_path):
    path = tmp_path / "group.db"
    store = EventStore(path)
    store.append([ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id="warm")])
    commits = []
    real = store._insert
    store._insert = lambda conn, encoded: (commits.append(len(encoded)), real(conn, encoded))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the first leader waits for the lock; the rest queue
    seen: dict[int, bool] = {}

    def append(i: int) -> None:
        event = ev.CallStarted(id=f"e-{i}", ts=ev.now_iso(), call_id=f"c{i}")
        store.append([event])
        check = sqlite3.connect(path)  # another connection sees it at once: committed
        seen[i] = check.execute("SELECT 1 FROM events WHERE id = ?", (event.id,)).fetchone() == (1,)
        check.close()

    threads = [threading.Thread(target=append, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(store._group._queue) < 15 and time.monotonic() < deadline:
        time.sleep(0.01)
    holder.execute("ROLLBACK")
    for t in threads:
        t.join()
    assert seen == dict.fromkeys(range(16), True)
    assert commits == [1, 15]  # the waiting leader's own, then everyone who queued meanwhile
    store.close()
    assert EventStore(path, readonly=True).verify().ok


def test_a_caller_interrupted_while_it_waits_for_a_group_commit_leaves_the_others_going(tmp_path):
    """Ctrl-C in a thread queued behind a commit: its events leave the queue (it got no
    acknowledgement), the leader commits its own and the next caller still gets the lead."""
    path = tmp_path / "interrupted.db"
    store = EventStore(path)
    store.append([ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id="warm")])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the leader waits for the lock meanwhile

    def append(name: str) -> None:
        store.append([ev.CallStarted(id=name, ts=ev.now_iso(), call_id=name)])

    def queued(n: int) -> None:
        deadline = time.monotonic() + 10
        while len(store._group._queue) < n and time.monotonic() < deadline:
            time.sleep(0.005)

    leader = threading.Thread(target=append, args=("leader",))
    leader.start()
    while not store._group.busy():
        time.sleep(0.005)

    def interrupt_main() -> None:
        queued(1)  # the main thread waits behind the leader
        follower.start()
        queued(2)
        os.kill(os.getpid(), signal.SIGINT)

    follower = threading.Thread(target=append, args=("follower",))
    threading.Thread(target=interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        append("interrupted")
    holder.execute("ROLLBACK")
    leader.join(10)
    follower.join(10)
    assert not leader.is_alive() and not follower.is_alive()
    ids = {r[0] for r in store.conn().execute("SELECT id FROM events")}
    assert {"leader", "follower"} <= ids and "interrupted" not in ids
    store.close()
    assert EventStore(path, readonly=True).verify().ok


def test_one_bad_append_in_a_group_fails_alone(tmp_path):
    store = EventStore(tmp_path / "culprit.db")
    store.append([ev.CallStarted(id="taken", ts=ev.now_iso(), call_id="c0")])
    errors: dict[str, BaseException | None] = {}
    barrier = threading.Barrier(8)

    def append(name: str, event_id: str) -> None:
        barrier.wait()
        try:
            store.append([ev.CallStarted(id=event_id, ts=ev.now_iso(), call_id=name)])
            errors[name] = None
        except llm_events.StoreError as e:
            errors[name] = e

    threads = [
        threading.Thread(target=append, args=(f"c{i}", "taken" if i == 3 else f"id-{i}"))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [n for n, e in errors.items() if e is not None] == ["c3"]
    assert "UNIQUE constraint failed: events.id" in str(errors["c3"])
    assert store.count() == 8


@pytest.mark.parametrize(
    ("hold", "kind"),
    [
        ("BEGIN IMMEDIATE", "its write lock (a write transaction left open"),
        ("EXCLUSIVE", "an exclusive lock"),
    ],
)
def test_a_held_lock_fails_a_write_after_the_bound_with_the_kind_of_lock(tmp_path, hold, kind):
    path = tmp_path / "held.db"
    EventStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    if hold == "EXCLUSIVE":  # a tool that turned WAL off and locked the file for itself
        holder.execute("PRAGMA journal_mode = DELETE")
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
    else:
        holder.execute(hold)
    try:
        started = time.monotonic()
        with pytest.raises(StoreLockedError) as info:
            store = EventStore(path, busy_timeout_ms=300)
            store.append([ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id="c")])
        assert time.monotonic() - started < 5
        message = str(info.value)
        assert f"{path} is locked: another connection has held {kind}" in message
        assert "more than 0.3 s; set LLM_EVENTS_LOCK_TIMEOUT (seconds) to wait longer" in message
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_readers_see_no_row_before_its_event_and_library_reads_are_current(db_path, builder):
    store = llm_events.open_store(db_path)
    client = llm_events.client_from_spec("echo")
    ids = [
        client.generate(builder.build_prompt(f"q{i}"), context_builder=builder).call_id
        for i in range(5)
    ]
    conn = sqlite3.connect(db_path)
    # every projected row's events are committed, whatever the lag
    assert conn.execute(
        "SELECT count(*) FROM calls WHERE last_seq > (SELECT max(seq) FROM events)"
    ).fetchone() == (0,)
    db = llm_events.PromptDB("m", path=db_path)
    assert {r["call_id"] for r in db.fetch_logs()} == set(ids)  # read-your-writes
    assert store.lag() == 0
    conn.close()


def test_browse_follower_catches_up_while_its_process_lives(tmp_path):
    from llm_events.log.lag import follow, lag

    path = tmp_path / "browsed.db"
    store = EventStore(path)
    store.append(
        [ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id=f"c{i}") for i in range(5)]
    )
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    # as a writer killed before its background thread ran leaves the file
    conn.execute("UPDATE _projections SET last_seq = 0")
    conn.execute("DELETE FROM calls")
    assert lag(conn) == 5
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child = follow(path, server.pid, interval_s=0.05)
    assert child is not None
    try:
        deadline = time.monotonic() + 20
        while lag(conn) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lag(conn) == 0
        assert conn.execute("SELECT count(*) FROM calls").fetchone() == (5,)
    finally:
        server.kill()
        server.wait()
    assert os.waitpid(child, 0)[0] == child  # it ends with the process it follows
    conn.close()

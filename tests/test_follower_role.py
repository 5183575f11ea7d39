"""One process follows a file's log for all (``llm_events/log/follower.py``): the others'
appends are projected by it, a killed follower is replaced, and where flock fails every
process follows as before."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_events import EventStore
from llm_events.log import events as ev
from llm_events.log import follower

ROOT = Path(__file__).resolve().parent.parent


def started(prefix: str, n: int) -> list[ev.Event]:
    return [
        ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id=f"{prefix}{i}") for i in range(n)
    ]


def projected(path: Path) -> set[str]:
    """The calls rows as a plain reader sees them now (no flush: what followed by itself)."""
    conn = sqlite3.connect(path)
    try:
        return {r for (r,) in conn.execute("SELECT call_id FROM calls")}
    finally:
        conn.close()


def eventually(check, seconds: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def role_free(path: Path) -> bool:
    """No process holds the follower role of ``path`` (taken and let go at once to see)."""
    fd = os.open(str(path) + follower.SUFFIX, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # (lets go of a lock it took)
    return True


def follower_child(path: Path, call_id: str) -> subprocess.Popen:
    """A process that appends one event, holds the follower role of ``path`` and then
    sleeps (a minute at most); returned once it says it follows."""
    code = (
        "import time\n"
        "from llm_events import EventStore\n"
        "from llm_events.log import events as ev\n"
        f"s = EventStore({str(path)!r})\n"
        f"s.append([ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id={call_id!r})])\n"
        "while not (s._role and s._role.mine()):\n"
        "    time.sleep(0.01)\n"
        "print('following', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "following":
        child.kill()
        child.wait()
        raise AssertionError("the child did not take the follower role")
    return child


def test_the_appends_of_a_store_that_does_not_follow_are_projected_by_the_one_that_does(tmp_path):
    path = tmp_path / "shared.db"
    first, second = EventStore(path), EventStore(path)  # two descriptors: two contenders
    first.append(started("a", 3))
    assert eventually(lambda: projected(path) == {"a0", "a1", "a2"})  # the first follows
    assert not role_free(path)
    second.append(started("b", 3))  # its own background thread leaves them to the first
    assert eventually(lambda: {"b0", "b1", "b2"} <= projected(path))
    assert eventually(lambda: second._role is not None)  # (its background thread's round)
    assert not second._role.mine()  # type: ignore[union-attr]
    first.close()  # lets the role go; the second's next appends take it
    assert role_free(path)
    second.append(started("c", 2))
    assert eventually(lambda: {"c0", "c1"} <= projected(path))
    assert second._role.mine()  # type: ignore[union-attr]
    second.close()
    assert role_free(path)


def test_a_killed_follower_is_replaced_and_its_unapplied_events_are_projected(tmp_path):
    path = tmp_path / "killed.db"
    EventStore(path).close()
    child = follower_child(path, "k0")
    try:
        store = EventStore(path)
        store.append(started("m", 2))  # left to the child, which follows
        assert eventually(lambda: {"k0", "m0", "m1"} <= projected(path))
        assert eventually(lambda: store._role is not None)
        assert not store._role.mine()  # type: ignore[union-attr]
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        # the kernel let the role go with the process: the next round of this process's
        # background thread takes it, and projects what came meanwhile
        store.append(started("n", 2))
        assert eventually(lambda: {"n0", "n1"} <= projected(path))
        assert store._role.mine()  # type: ignore[union-attr]
        store.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_follower_that_stops_applying_is_passed_over(tmp_path):
    path = tmp_path / "stopped.db"
    EventStore(path).close()
    child = follower_child(path, "s0")
    try:
        os.kill(child.pid, signal.SIGSTOP)  # alive, holding the role, applying nothing
        store = EventStore(path)
        for i in range(40):  # appends going on: each round looks whether it kept up
            store.append(started(f"t{i}-", 1))
            time.sleep(0.05)
        assert eventually(lambda: {f"t{i}-0" for i in range(40)} <= projected(path))
        assert not role_free(path)  # (the stopped one still holds it)
        store.close()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_where_flock_fails_every_process_follows_as_before(tmp_path, monkeypatch):
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(follower.fcntl, "flock", no_locks)
    path = tmp_path / "nolocks.db"
    first, second = EventStore(path), EventStore(path)
    first.append(started("a", 2))
    second.append(started("b", 2))
    # each one's background thread catches up its own appends (no role to leave them to)
    assert eventually(lambda: projected(path) == {"a0", "a1", "b0", "b1"})
    assert eventually(lambda: second._role is not None)  # (its background thread's round)
    assert second._role.mine() and not second._role.watching  # type: ignore[union-attr]
    first.close()
    second.close()
    store = EventStore(path)
    store.rebuild()
    store.close()
    assert projected(path) == {"a0", "a1", "b0", "b1"}


def test_a_forked_child_does_not_keep_its_parents_role(tmp_path):
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    path = tmp_path / "forked.db"
    store = EventStore(path)
    store.append(started("p", 1))
    assert eventually(lambda: store._role is not None and store._role.mine())
    pid = os.fork()
    if pid == 0:  # the child: lives on, never touching the store
        time.sleep(5)
        os._exit(0)
    try:
        store.close()  # the parent lets the role go: the child must not hold it on
        assert role_free(path)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

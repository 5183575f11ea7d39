"""The write path: bounded waits for the write lock, group commit, and the background thread.

* :func:`begin_immediate` takes SQLite's write lock, polling in small steps (SQLite's own
  busy handler sleeps up to 100 ms at a time, which made a recorded call's p99 hundreds of
  ms under contention) up to a bound, then fails with one line naming the kind of lock held.
* :class:`GroupCommit`: concurrent callers in one process (threads, and asyncio tasks
  through their worker threads) share commits.  The first caller to arrive becomes the
  leader and commits everything queued meanwhile in one transaction; each caller returns
  only once its own events are committed (or raises its own error).
* :class:`Background` runs, on one daemon thread per store and process, what should not
  cost a caller anything: projections catching up a few milliseconds after appends (in the
  one process that follows the file, :mod:`.follower`, which also watches for the other
  processes' commits), WAL checkpoints, and the search index once appends pause.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any


class StoreError(Exception):
    """The store cannot be opened, read or written; the message says why in one line."""


class StoreLockedError(StoreError):
    """The write lock stayed taken by another connection for longer than the wait allowed."""


#: Default bound on a wait for the write lock (``LLM_EVENTS_LOCK_TIMEOUT`` seconds overrides).
DEFAULT_LOCK_TIMEOUT_MS = 10_000


def default_lock_timeout_ms() -> int:
    value = os.environ.get("LLM_EVENTS_LOCK_TIMEOUT")
    if value:
        try:
            return max(0, int(float(value) * 1000))
        except ValueError:
            pass
    return DEFAULT_LOCK_TIMEOUT_MS


def is_locked(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc)
    return "locked" in msg or "busy" in msg


#: The longest sleep between two tries for the write lock (they start at 0.2 ms and double).
LOCK_POLL_MAX_S = 0.004


def begin_immediate(conn: sqlite3.Connection, wait_ms: int, path: str | None) -> None:
    """``BEGIN IMMEDIATE`` on a connection whose busy timeout is 0, waiting at most ``wait_ms``."""
    deadline = time.monotonic() + wait_ms / 1000
    delay = 0.0002
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if not is_locked(e):
                raise StoreError(f"cannot write to event store {path}: {e}") from None
            if time.monotonic() >= deadline:
                raise StoreLockedError(locked_message(conn, path, wait_ms)) from None
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, LOCK_POLL_MAX_S)


def locked_message(conn: sqlite3.Connection, path: str | None, wait_ms: int) -> str:
    """Which kind of lock another connection holds, as well as a reader can tell."""
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        kind = (
            "its write lock (a write transaction left open: another writer, a rebuild or "
            "import, or a tool that ran BEGIN IMMEDIATE)"
        )
    except sqlite3.OperationalError:
        kind = (
            "an exclusive lock (a connection that turned WAL off or set "
            "locking_mode=EXCLUSIVE, or one recovering the WAL)"
        )
    return (
        f"event store {path} is locked: another connection has held {kind} for more than "
        f"{wait_ms / 1000:g} s; set LLM_EVENTS_LOCK_TIMEOUT (seconds) to wait longer"
    )


class Request:
    """One caller's events (encoded), waiting to be committed by a leader.

    ``wake`` is a lock taken at creation: a waiting caller blocks on it, and is released
    once, by the leader that committed its events (``done``) or that hands it the lead
    (``batch`` set).  Waking callers one by one, not all waiters at each commit, keeps 64
    threads from each taking the GIL to find their events are not committed yet.
    """

    __slots__ = ("encoded", "ignore_existing", "done", "error", "wake", "batch")

    def __init__(self, encoded: list[tuple[Any, bytes]], ignore_existing: bool) -> None:
        self.encoded = encoded
        self.ignore_existing = ignore_existing
        self.done = False
        self.error: BaseException | None = None
        self.wake: Any = None
        self.batch: list[Request] | None = None


#: Errors that belong to one request (a duplicate id, a value SQLite refuses): a group that
#: fails with one of them is retried request by request, so only the culprit fails.
_REQUEST_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, ValueError, TypeError)


class GroupCommit:
    """Leader/follower group commit (see the module docstring).

    ``commit(requests)`` writes all their events in one transaction, raising on failure.
    The caller that finds no commit under way leads: it commits its own events and, when
    done, hands the lead to the first caller that queued meanwhile (with everything queued
    as its batch) and wakes the callers it committed for.
    """

    def __init__(self, commit: Callable[[list[Request]], None]) -> None:
        self._commit = commit
        self._mutex = threading.Lock()
        self._queue: list[Request] = []
        #: clear while a caller leads (a commit under way or handed on); what the background
        #: thread waits for, woken by the commit that ends (polling took the GIL from callers)
        self._idle = threading.Event()
        self._idle.set()

    def busy(self) -> bool:
        """A commit is under way or callers are queued (the background thread waits)."""
        return not self._idle.is_set()  # (callers queue only behind a leader)

    def wait_idle(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for a moment with no commit under way."""
        return self._idle.wait(timeout)

    def submit(self, encoded: list[tuple[Any, bytes]], ignore_existing: bool = False) -> None:
        req = Request(encoded, ignore_existing)
        waiting = False
        try:
            with self._mutex:
                if not self._idle.is_set():
                    req.wake = threading.Lock()
                    req.wake.acquire()
                    waiting = True  # (before it is queued: an interrupt after it cleans up)
                    self._queue.append(req)
                else:
                    self._idle.clear()
            if waiting:
                req.wake.acquire()  # released once: committed, or the lead handed over
        except BaseException:  # interrupted (Ctrl-C) while queued or waiting
            if waiting:
                self._abandon(req)
            raise
        if waiting:
            if req.done:
                if req.error is not None:
                    raise req.error
                return
            batch = req.batch
            assert batch is not None
        else:
            batch = [req]
        self._lead(req, batch)
        if req.error is not None:
            raise req.error

    def _lead(self, req: Request, batch: list[Request]) -> None:
        """Commit ``batch``, then hand the lead on and wake the callers committed for."""
        try:
            self._run(batch)
        finally:
            with self._mutex:
                if self._queue:  # the first to queue leads the next commit, for all of them
                    successor = self._queue[0]
                    successor.batch, self._queue = self._queue, []
                else:
                    successor = None
                    self._idle.set()
            for r in batch:
                if r is not req:
                    r.wake.release()
            if successor is not None:
                successor.wake.release()

    def _abandon(self, req: Request) -> None:
        """A waiting caller is interrupted: its events leave the queue if no leader took
        them yet; if the lead was handed to it, it still commits, so no one is left waiting."""
        with self._mutex:
            if req in self._queue:
                self._queue.remove(req)
                return
            handed = req.batch
        if handed is not None and not req.done:
            self._lead(req, handed)

    def _run(self, batch: list[Request]) -> None:
        try:
            try:
                self._commit(batch)
            except _REQUEST_ERRORS:
                if len(batch) == 1:
                    raise
                for r in batch:  # find the culprit: the others still commit
                    try:
                        self._commit([r])
                    except BaseException as own:
                        r.error = own
        except BaseException as e:
            for r in batch:
                r.error = e
        finally:
            for r in batch:
                r.done = True


#: The automatic checkpoint of append connections: only a safety net (16 MB of WAL).
SAFETY_AUTOCHECKPOINT_PAGES = 4000
#: Checkpoint after this many appended events, or after this many seconds.
CHECKPOINT_EVERY_EVENTS = 64
CHECKPOINT_INTERVAL_S = 0.5
#: Projections catch up once appends pause this long, or at the latest this long after the
#: first append they lack: under a steady stream of appends they catch up in batches (a
#: catch-up's fixed cost, a transaction and a few queries, is then paid once per batch
#: instead of once per append, and the callers meet the lock less often).
PROJECT_DELAY_S = 0.002
PROJECT_MAX_DELAY_S = 0.05
#: Appends paused this long: the search index is brought up to date.
IDLE_S = 0.3
#: The follower of a file (:mod:`.follower`) looks for other processes' commits this often
#: while some came in the last ``FOLLOW_QUIET_S``, and every ``FOLLOW_IDLE_POLL_S`` after.
FOLLOW_POLL_S = 0.005
FOLLOW_IDLE_POLL_S = 0.05
FOLLOW_QUIET_S = 1.0


class Background:
    """The store's daemon thread (see the module docstring).

    ``catch_up()`` and ``idle_work()`` are the store's; they take the write lock briefly and
    may fail (busy, gone): the next round, or the next open, catches up.  WAL checkpoints
    run ``PASSIVE`` on a connection of the thread's own (they never block writers or
    readers; SQLite releases the GIL while it copies and syncs).  SQLite's automatic
    checkpoint runs inside the ``COMMIT`` that crosses its threshold, so one append in every
    few dozen would pay for all of them; durability is the same either way (a commit is in
    the WAL; a checkpoint that dies half-way is redone on the next open).
    """

    def __init__(
        self,
        path: str,
        catch_up: Callable[[], bool | None] | None = None,
        idle_work: Callable[[], None] | None = None,
        watch: Callable[[], bool | None] | None = None,
    ) -> None:
        self.path = path
        self.catch_up = catch_up
        self.idle_work = idle_work
        #: True: other processes committed since the last look; None: not watching
        self.watch = watch
        self._watching = False
        self._last_foreign = 0.0
        #: ``catch_up`` said another process follows the file (it returns True when this
        #: one does): this one's appends no longer wake the thread (its rounds look again)
        self._elsewhere = False
        self._last_commit = time.monotonic()
        self._pending = 0
        self._unprojected = False
        self._first_unprojected = 0.0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llm-events-background", daemon=True)
        self._thread.start()

    def committed(self, events: int) -> None:
        now = self._last_commit = time.monotonic()
        self._pending += events
        if self.catch_up is not None and not self._unprojected:
            self._first_unprojected = now
            self._unprojected = True
            if not self._elsewhere:  # (else the next round looks whether it still is)
                self._wake.set()  # (waking costs the caller: only at the start of a batch)
        elif self._pending >= CHECKPOINT_EVERY_EVENTS and not self._wake.is_set():
            self._wake.set()

    def _wait_for_a_pause(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            quiet = now - self._last_commit
            left = min(PROJECT_DELAY_S - quiet, self._first_unprojected + PROJECT_MAX_DELAY_S - now)
            if left <= 0:
                return
            time.sleep(left)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stopping:
                self._wake.wait(self._interval())
                self._wake.clear()
                if self._stopping:
                    break
                if self.watch is not None:
                    self._look_for_others()
                if self._unprojected:
                    if not self._elsewhere:
                        self._wait_for_a_pause()  # let the appends of this moment join
                    self._unprojected = False
                    with contextlib.suppress(Exception):
                        done = self.catch_up()  # type: ignore[misc]
                        # not True: another process follows the file; False: it has events
                        # to apply, and the next round looks whether it kept up
                        self._elsewhere = done is not True
                        self._unprojected = done is False
                try:
                    if self._pending >= CHECKPOINT_EVERY_EVENTS or (
                        self._pending and time.monotonic() - self._last_commit >= IDLE_S
                    ):
                        self._pending = 0
                        if conn is None:
                            conn = sqlite3.connect(self.path, isolation_level=None)
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    pass  # busy or gone: the next round (or the safety net) catches up
                if self.idle_work is not None and time.monotonic() - self._last_commit >= IDLE_S:
                    with contextlib.suppress(Exception):
                        self.idle_work()
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def _interval(self) -> float:
        if not self._watching:
            return CHECKPOINT_INTERVAL_S
        if time.monotonic() - self._last_foreign < FOLLOW_QUIET_S:
            return FOLLOW_POLL_S
        return FOLLOW_IDLE_POLL_S

    def _look_for_others(self) -> None:
        """The follower: other processes' commits are projected as this process's are."""
        try:
            seen = self.watch()  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - a look that fails is taken again next round
            seen = None
        self._watching = seen is not None
        if seen and self.catch_up is not None:
            now = self._last_foreign = time.monotonic()
            if not self._unprojected:
                self._first_unprojected = now
                self._unprojected = True

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

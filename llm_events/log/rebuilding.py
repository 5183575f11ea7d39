"""What a rebuild changes on its own connection while it runs, and undoes at its end.

A rebuild writes every projection row again (about 600 MB for 1,000,000 events) in chunks
of its own transactions.  Settings that suit appends cost it dearly, so for its duration:

* **checkpoints run on a thread of their own** (``Checkpointer``): the write connection's
  automatic checkpoint is off, and a ``PASSIVE`` checkpoint on another connection follows
  each committed chunk.  The automatic one ran inside every twentieth ``COMMIT``, on the
  rebuild's own thread: copying the WAL into the file and syncing it, about a tenth of a
  rebuild, now done beside it (SQLite releases the GIL while it copies).  A checkpoint is
  only a copy: a rebuild that dies leaves a longer WAL, which the next open reads as ever.
* **a larger page cache and sorter threads**: dropping the old tables, the indexes made at
  the end and the search index's merges read each page once instead of again and again
  (``cache_size``), and ``CREATE INDEX`` sorts on two threads (``threads``).
* **the search index in large segments** (``fts.begin_bulk``): see :mod:`.fts`.  Unlike
  the others this is stored in the file, so it is undone as the last of the work a rebuild
  leaves for its end (``catchup.restore_index``): by the rebuild, or, if it was killed, by
  whoever opens the file next.

Nothing here changes what is written: the rows, the checkpoints and the transactions are
the same, so readers and other writers see what they saw before.

And a rebuild of :data:`PIPELINE_MIN_EVENTS` events or more **folds in a second process**
(:mod:`.foldworker`, started before the old tables are dropped): this process writes what
it folded, chunk by chunk, in the same transactions, checkpoints and checks as when it
folds itself (:func:`write_folded`), keeps the indexes as it writes and fills the search
index as it goes, so the two halves run on two CPUs.  Whenever a chunk does not fit, it
stops the worker and folds the rest itself.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from . import catchup, fts, salvage
from .projections import Projection, default_projections

#: The rebuild's page cache (KiB, as ``PRAGMA cache_size`` takes a negative number).
REBUILD_CACHE_KIB = 256 * 1024
#: Threads ``CREATE INDEX`` may sort with (SQLite's default is none besides the caller's).
REBUILD_SORT_THREADS = 2


class Checkpointer:
    """``PASSIVE`` WAL checkpoints on a thread and connection of their own, one after each
    :meth:`nudge` (nudges that come while one runs are served by the next).  The thread
    starts at the first nudge: a rebuild of an empty log (every new store) starts none."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="llm-events-rebuild-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return  # the write connection's own checkpoints come back at the end
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                with contextlib.suppress(sqlite3.Error):  # busy: the next nudge retries
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if self._stopping:
                    return
        finally:
            conn.close()

    def close(self) -> None:
        """Run a last checkpoint (if any ran) and wait for it."""
        self._stopping = True
        if self._thread is not None:
            self._wake.set()
            self._thread.join()


def _pragmas(conn: sqlite3.Connection, lock: Any, values: dict[str, int]) -> dict[str, int]:
    """Set these pragmas on ``conn`` (under ``lock``: other threads write on it too);
    returns what they were."""
    with lock:
        before = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in values}
        for name, value in values.items():
            conn.execute(f"PRAGMA {name} = {int(value)}")
    return before


@contextlib.contextmanager
def rebuild_settings(
    conn: sqlite3.Connection, path: str | None, lock: Any
) -> Iterator[Checkpointer | None]:
    """The rebuild's settings on ``conn`` (the store's write connection, used under
    ``lock``), put back when it ends; yields the checkpointer to nudge after each chunk
    (``None`` when the store is not a file of its own)."""
    values = {"cache_size": -REBUILD_CACHE_KIB, "threads": REBUILD_SORT_THREADS}
    checkpointer = None
    if path is not None and path != ":memory:":
        values["wal_autocheckpoint"] = 0
    before = _pragmas(conn, lock, values)
    if path is not None and "wal_autocheckpoint" in values:
        checkpointer = Checkpointer(path)
    try:
        yield checkpointer
    finally:
        if checkpointer is not None:
            checkpointer.close()
        _pragmas(conn, lock, before)


def bulk_search_index(conn: sqlite3.Connection, projections: Sequence[Projection]) -> None:
    """Build the search index in large segments if the rebuild re-derives ``prompts``
    (inside its first transaction, after the tables are re-created), and leave undoing it
    for the rebuild's end (or the next open, if the rebuild never gets there)."""
    if any("prompts" in p.tables for p in projections):
        fts.begin_bulk(conn)
        catchup.defer_to_end(conn, [fts.END_BULK])


#: A rebuild of at least this many events folds in a second process (``foldworker``);
#: below it, starting one costs more than it saves.
PIPELINE_MIN_EVENTS = 50_000
#: Whether a pipelined rebuild keeps the indexes as it writes (this process has time to
#: spare while the worker folds) instead of making them at the end.
PIPELINE_KEEPS_INDEXES = True


def spare_cpu() -> bool:
    """Whether a CPU is free for the worker: two or more, and the load average of the last
    minute at least one below their number.  The pipeline spends about a quarter more CPU
    than folding in one process (recording and sending the statements), so on a machine
    whose CPUs are all busy it is slower: 41-44 s against 34-41 s for 1,000,000 events on
    2 CPUs at load 5-8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cpus or 1) < 2:
        return False
    try:
        return os.getloadavg()[0] <= cpus - 1
    except OSError:  # no load average here: trust the count
        return True


class _Abandon(Exception):
    """The worker's chunk cannot be written as recorded: the rebuild folds the rest itself."""


class Worker:
    """The ``foldworker`` process and its messages (see that module)."""

    def __init__(self, path: str, names: Sequence[str], chunk: int) -> None:
        import llm_events

        root = os.path.dirname(os.path.dirname(os.path.abspath(llm_events.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llm_events.log.foldworker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._out = self.proc.stdout
        args = {"path": os.path.abspath(path), "names": list(names), "chunk": chunk}
        self.proc.stdin.write(pickle.dumps(args))
        self.proc.stdin.flush()

    def next(self) -> tuple:
        """The next message; ``("error", ...)`` if the worker is gone."""
        head = self._out.read(8)
        if len(head) < 8:
            return ("error", "the fold worker exited")
        (size,) = struct.unpack("<Q", head)
        data = self._out.read(size)
        if len(data) < size:
            return ("error", "the fold worker exited")
        try:
            return msgspec.msgpack.decode(data)
        except msgspec.DecodeError:
            return ("error", "the fold worker sent what it should not")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self._out.close()


def pipelined(
    store: Any, targets: Sequence[Projection], chunk: int, progress: Any
) -> Worker | None:
    """The worker for this rebuild, started before its tables are emptied (it folds from
    the log meanwhile); ``None`` when the rebuild folds by itself: a log under
    :data:`PIPELINE_MIN_EVENTS`, no CPU to spare (:func:`spare_cpu`), a projection not
    among the built-in ones, a store that is not a file of its own, or a worker that
    cannot start."""
    if store._shared_conn is not None or store.path in (None, ":memory:") or not sys.executable:
        return None
    builtin = {type(p) for p in default_projections()}
    if not targets or any(type(p) not in builtin for p in targets):
        return None
    top = store.conn().execute("SELECT max(seq) FROM events").fetchone()[0] or 0
    if top < PIPELINE_MIN_EVENTS or not spare_cpu():
        return None
    try:
        return Worker(store.path, [p.name for p in targets], chunk)
    except OSError:
        return None


def write_folded(
    store: Any,
    worker: Worker,
    targets: Sequence[Projection],
    progress: Any,
    checkpointer: Checkpointer | None,
    index_rows: int,
) -> None:
    """Write the worker's chunks, one transaction each, until it is done, fails, or a chunk
    does not fit (another process moved the checkpoints, a recorded check differs, a
    statement fails): then it is stopped and the caller folds what is left itself.

    While the worker folds, this process has time to spare: it fills the search index
    as it goes, ``index_rows`` rows per transaction, instead of all of it at the end."""
    names = [p.name for p in targets]
    index = any("prompts" in p.tables for p in targets)
    marks_sql = (
        f"SELECT name, last_seq FROM _projections WHERE name IN ({','.join('?' * len(names))})"
    )
    try:
        while True:
            message = worker.next()
            if message[0] != "chunk":
                return
            _kind, n, start, _last, ops, reports = message
            try:
                with store._write_transaction() as conn:
                    marks = dict(conn.execute(marks_sql, names).fetchall())
                    if any(marks.get(name) != start for name in names):
                        raise _Abandon
                    _run(conn, ops)
                    for report in reports:
                        salvage.report(*report)
                    behind = index and fts.backlog(conn) >= index_rows
            except _Abandon:
                return
            if behind:
                with store._write_transaction() as conn:
                    fts.index_pending(conn, index_rows)
            if checkpointer is not None:
                checkpointer.nudge()
            if progress is not None:
                progress(n)
    finally:
        worker.close()
        for p in targets:  # their caches never saw these rows
            p.applied_upto = None
            p.reset_caches()


def _run(conn: sqlite3.Connection, ops: list[tuple]) -> None:
    """Run a chunk's recorded statements; :class:`_Abandon` if one fails or a read of
    ``total_changes`` differs from the worker's (counted from the chunk's first read)."""
    seen: tuple[int, int] | None = None
    try:
        for op in ops:
            kind = op[0]
            if kind == "m":
                conn.executemany(op[1], op[2])
            elif kind == "x":
                conn.execute(op[1], op[2])
            else:
                now = conn.total_changes
                if seen is not None and now - seen[0] != op[1] - seen[1]:
                    raise _Abandon
                seen = (now, op[1])
    except _Abandon:
        raise
    except Exception as e:  # noqa: BLE001 - folded again, by the rebuild itself
        raise _Abandon from e

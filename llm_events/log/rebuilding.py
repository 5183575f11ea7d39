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

"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from . import catchup, fts
from .projections import Projection

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
    checkpointer = Checkpointer(path) if path is not None and path != ":memory:" else None
    if checkpointer is not None:
        values["wal_autocheckpoint"] = 0
    before = _pragmas(conn, lock, values)
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

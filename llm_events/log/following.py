"""Projections following the log: catching up, the background thread's share, rebuilds.

The part of :class:`~llm_events.log.store.EventStore` that keeps the derived tables behind
the log (:mod:`.catchup` holds the folding itself): read-your-writes ``catch_up``, the
background thread's small transactions that let this process's appends go first, and
``rebuild`` in chunks so writers never wait long.  A mixin: it uses the store's write
transaction, its projections and its state flags.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import catchup, rebuilding
from .follower import FollowerRole
from .lag import positions
from .writer import StoreLockedError

#: How long flush, close, exit and the background thread wait for the write lock to do
#: derived work (projections, the search index) themselves; past it, the next writer does.
SETTLE_WAIT_MS = 1000
#: Events per transaction of a rebuild: the write lock is released between them.
REBUILD_CHUNK = 2000
#: Rows per transaction of the work a rebuild leaves for its end (the search index: about
#: 0.25 s of write lock each).
SETTLE_ROWS = 20_000
#: Events per transaction of the background catch-up, and how long it lets this process's
#: appends go first before it takes the lock anyway.
BACKGROUND_CHUNK = 500
BACKGROUND_YIELD_S = 0.05


class ProjectionFollowing:
    """Catch-up and rebuild for the store (see the module docstring)."""

    projections: list[Any]
    path: str | None
    readonly: bool
    batch: bool
    projection_error: Exception | None
    _closed: bool
    _rebuilding: int
    _deferred: list[Any]
    _queue: Any
    _group: Any
    _wlock: Any
    _shared_conn: sqlite3.Connection | None
    #: whether this process follows the file (:mod:`.follower`), made on first use
    _role: FollowerRole | None = None
    _data_version: int | None = None

    # provided by the store
    def conn(self) -> sqlite3.Connection:  # pragma: no cover
        raise NotImplementedError

    def _write_transaction(self, wait_ms: int | None = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def flush_events(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def lag(self) -> int:
        """Events committed that some projection has not applied yet (0: up to date)."""
        return catchup.lag(self.conn(), [p.name for p in self.projections])

    def catch_up(
        self,
        wait_ms: int | None = None,
        chunk: int = catchup.CATCH_UP_CHUNK,
        pause_s: float = 0.0,
    ) -> int:
        """Bring every projection up to the log's head now (read-your-writes); returns the
        events applied, ``chunk`` events per transaction, ``pause_s`` between them (other
        processes' appends get the write lock meanwhile).  A read-only store applies nothing
        (see :meth:`lag`)."""
        if self.readonly or self._closed:
            return 0
        if self._deferred or (self.batch and self._queue):
            self.flush_events()
        applied = 0
        while True:
            with self._write_transaction(wait_ms) as conn:
                try:
                    n = catchup.apply_pending(conn, self.projections, chunk)
                except BaseException:
                    catchup.forget(self.projections)
                    raise
            if not n:
                return applied
            applied += n
            if pause_s:
                time.sleep(pause_s)

    def _catch_up_behind(self) -> bool | None:
        """The background thread's catch-up: in small transactions, each started only when
        no append of this process is waiting or under way (appends go first; the lock is
        never held long by derived work).  Only the follower of the file does it
        (:mod:`.follower`): True here; another process follows and has events to apply,
        False (look again whether it keeps up); nothing left to apply, None."""
        if self._rebuilding or self.readonly or self._closed:
            return True
        role = self._follower_role()
        mine = role.mine()
        left = False
        try:
            takeover = False
            while not self._closed:
                head, applied = positions(self.conn())
                if applied >= head:  # another process caught up: no lock taken
                    break
                if not mine and not takeover:
                    if role.keeps_up(head, applied):
                        left = True  # another process follows this file, and keeps up
                        break
                    takeover = True  # it stopped applying: do its work this round
                self._group.wait_idle(BACKGROUND_YIELD_S)  # this process's appends first
                with self._write_transaction(SETTLE_WAIT_MS) as conn:
                    if self._rebuilding:  # one began while this waited for the lock
                        break
                    try:
                        n = catchup.apply_pending(conn, self.projections, BACKGROUND_CHUNK)
                    except BaseException:
                        catchup.forget(self.projections)
                        raise
                if n < BACKGROUND_CHUNK:
                    # that was the log's head when it was read (under the write lock): no
                    # second look (a read after this process's commit costs as much as a
                    # small fold); appends since then wake this thread again
                    break
            self.projection_error = None
        except StoreLockedError:
            pass
        except Exception as e:  # noqa: BLE001 - derived data: reported through lag()
            self.projection_error = e
        return True if mine else (False if left else None)

    def _follower_role(self) -> FollowerRole:
        if self._role is None:
            assert self.path is not None
            self._role = FollowerRole(self.path)
        return self._role

    def _others_committed(self) -> bool | None:
        """For the background thread of the follower: have commits come since its last
        look (``PRAGMA data_version``: any other connection's, this process's appends
        included)?  None when this process is not the follower (it does not watch)."""
        role = self._role
        if role is None or not role.watching or self._closed:
            return None
        try:
            version = self.conn().execute("PRAGMA data_version").fetchone()[0]
        except Exception:  # noqa: BLE001 - closed or gone: the next look tells
            return None
        seen, self._data_version = self._data_version, version
        return version != seen

    def _leave_role(self) -> None:
        if self._role is not None:
            self._role.close()
            self._role = None

    def _end_rebuild(self) -> None:
        self._rebuilding -= 1

    def _restore_indexes(self) -> None:
        """Make the indexes a rebuild left for its end, one per transaction."""
        while True:
            with self._write_transaction() as conn:
                if not catchup.restore_index(conn):
                    return

    def _catch_up_quietly(self) -> None:
        """Catch up where failing must not stop anyone (open, background, flush, exit): a
        busy file is left to the next writer; other errors are kept in ``projection_error``."""
        if self._rebuilding:
            return
        try:
            self.catch_up(wait_ms=SETTLE_WAIT_MS)
            self.projection_error = None
        except StoreLockedError:
            pass
        except Exception as e:  # noqa: BLE001 - derived data: reported through lag()
            self.projection_error = e

    def _idle_work(self) -> None:
        if self._rebuilding:  # a rebuild indexes at its end, in large batches
            return
        if self._settle_pending() and not self._closed:
            self._settle(wait_ms=SETTLE_WAIT_MS)

    def _settle_pending(self) -> bool:
        return not self.readonly and any(p.pending() for p in self.projections)

    def _settle(self, wait_ms: int | None = None) -> None:
        """Do the work projections left for later (the search index), in one transaction."""
        with self._write_transaction(wait_ms) as conn:
            for projection in self.projections:
                projection.settle(conn)

    def _rebuild_settings(self) -> Any:
        """:func:`.rebuilding.rebuild_settings` on the write connection."""
        with self._wlock:
            conn = self._write_conn()
        return rebuilding.rebuild_settings(
            conn, None if self._shared_conn is not None else self.path, self._wlock
        )

    def rebuild(
        self,
        only: Iterable[str] | None = None,
        progress: Callable[[int], None] | None = None,
        chunk: int = REBUILD_CHUNK,
    ) -> int:
        """Drop and re-derive projections from every event; returns the events they cover.

        The tables are emptied in one transaction, then filled ``chunk`` events per
        transaction, so writers wait at most one chunk for the write lock; meanwhile
        readers see the projections behind (``lag``).
        """
        names = set(only) if only is not None else None
        targets = [p for p in self.projections if names is None or p.name in names]
        self._rebuilding += 1  # the background thread leaves the work to this loop
        with contextlib.ExitStack() as stack:
            stack.callback(self._end_rebuild)
            checkpointer = stack.enter_context(self._rebuild_settings())
            with self._write_transaction() as conn:
                catchup.reset(conn, targets)
                catchup.defer_indexes(conn, targets)
                rebuilding.bulk_search_index(conn, targets)
            stack.callback(self._restore_indexes)  # at the end, or if the rebuild fails
            stack.enter_context(catchup.collector_paused())
            for p in targets:
                p.bulk(True)
                stack.callback(p.bulk, False)
            while True:
                with self._write_transaction() as conn:
                    try:
                        n = catchup.apply_pending(conn, targets, chunk)
                    except BaseException:
                        catchup.forget(targets)
                        raise
                if not n:
                    break
                if checkpointer is not None:
                    checkpointer.nudge()
                if progress is not None:
                    progress(n)
            left = True
            while left:  # what the projections left for the end (the search index)
                with self._write_transaction() as conn:
                    left = any([p.settle(conn, SETTLE_ROWS) for p in targets])
        # (another process may have applied some chunks: count what is covered)
        return catchup.covered(self.conn(), [p.name for p in targets])

"""The append-only SQLite event store.

One file holds the ``events`` table (the truth) and the projections derived from it.  This
module is the store's face (:class:`EventStore`: connections, appends, reads); its parts live
beside it: :mod:`.schema` (layout, migrations), :mod:`.chain` (hashes, ``verify``),
:mod:`.writer` (lock waits, group commit, the background thread), :mod:`.catchup`
(projections catching up from their checkpoints), :mod:`.following` (the store's catch-up,
background share and ``rebuild``), :mod:`.reading` (its reads) and :mod:`.batching`
(batch mode).

* ``seq`` is the global commit order; triggers make ``events`` append-only; every row's
  ``hash`` covers its content and the previous row's hash, and ``_meta.head`` names the last
  one.
* WAL, ``BEGIN IMMEDIATE`` for appends (with a bounded wait), a read connection per thread
  and one write connection per process.  Concurrent appends in one process share commits.
* An append commits its events and the chain head, nothing else.  Projections follow from
  their checkpoints: a few ms later on the background thread, at flush, close and exit,
  when a process opens the file, and whenever a reader asks (:meth:`EventStore.catch_up`).
* Batch mode queues appends and commits them in groups from a background thread;
  :meth:`EventStore.flush` waits for them, and closing or exiting flushes too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import blobs, catchup
from . import events as ev
from .batching import BatchWriting
from .chain import VerifyResult, row_hash
from .chain import verify as verify_chain
from .following import (
    SETTLE_WAIT_MS,
    ProjectionFollowing,
)
from .projections import Projection, default_projections
from .reading import EventReading, StoredEvent
from .readonly import connect_readonly
from .redaction import UnstorableValueError
from .schema import (
    APPLICATION_ID,
    GENESIS,
    SPARSE_TYPES,
    STORE_SCHEMA_VERSION,
    NotAStore,
    migrate,
    projections_current,
)
from .writer import (
    SAFETY_AUTOCHECKPOINT_PAGES,
    Background,
    GroupCommit,
    Request,
    StoreError,
    StoreLockedError,
    begin_immediate,
    default_lock_timeout_ms,
    is_locked,
    locked_message,
)

__all__ = [
    "APPLICATION_ID",
    "DEFER_MAX",
    "SPARSE_TYPES",
    "STORE_SCHEMA_VERSION",
    "EventStore",
    "StoreError",
    "StoreLockedError",
    "StoredEvent",
    "VerifyResult",
    "row_hash",
]

#: Events held by :meth:`EventStore.defer` before they are written on their own.
DEFER_MAX = 1000


class EventStore(EventReading, BatchWriting, ProjectionFollowing):
    """An append-only event log in one SQLite file, with projections kept beside it.

    ``EventStore(path)`` opens (creating or migrating) a file and brings its projections up
    to date.  ``EventStore(conn=...)`` uses a connection someone else owns (the seed's
    ``PromptDB(router=...)``).  ``readonly=True`` never writes (``verify`` and browsing use
    it); on a read-only file or directory it reads the file as immutable.
    ``busy_timeout_ms``: the longest wait for the write lock (default 10 s, or
    ``LLM_EVENTS_LOCK_TIMEOUT`` seconds), after which a write fails with
    :class:`StoreLockedError`.
    """

    #: Projections catch up on this process's background thread shortly after its appends.
    #: A process that only appends while another follows the log for it (the proxy's
    #: workers, see ``capture/workers.py``) sets it False before its first append; open,
    #: flush, close and exit still catch up.
    follow_in_background = True

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        conn: sqlite3.Connection | None = None,
        readonly: bool = False,
        batch: bool = False,
        batch_interval: float = 0.2,
        batch_max: int = 20_000,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int | None = None,
        projections: Sequence[Projection] | None = None,
    ) -> None:
        if path is None and conn is None:
            raise ValueError("EventStore needs a path or a connection")
        self.path = None if path is None else str(path)
        self.readonly = readonly
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = (
            default_lock_timeout_ms() if busy_timeout_ms is None else int(busy_timeout_ms)
        )
        self.projections: list[Projection] = (
            list(projections) if projections is not None else default_projections()
        )
        if conn is None and self.path == ":memory:":
            # every connection to ":memory:" is a database of its own: use one throughout
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._shared_conn = conn
        self._lock = threading.RLock()  # batch drains; the shared connection
        self._wlock = threading.RLock()  # this process's write connection and transactions
        self._local = threading.local()
        self._all_conns: list[sqlite3.Connection] = []
        self._wconn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._closed = False
        self.immutable = False
        self.batch = False  # set below, once the file is open and migrated
        self.batch_interval = batch_interval
        self.batch_max = batch_max
        self._queue: list[tuple[ev.Event, bytes]] = []  # batch mode: encoded, waiting
        self._queue_cond = threading.Condition()
        self._batch_error: BaseException | None = None
        self._writer: threading.Thread | None = None
        self._background: Background | None = None
        self._deferred: list[tuple[ev.Event, bytes]] = []  # held, encoded
        self._deferred_lock = threading.Lock()
        self._group = GroupCommit(self._commit_requests)
        #: the last error a catch-up met off the caller's path (reported by ``lag`` users)
        self.projection_error: BaseException | None = None
        self._rebuilding = 0
        self._open_checked()
        self.batch = batch
        if batch:
            self._start_writer()
        _live_stores.add(self)

    # --- connections ---------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<EventStore {self.path or 'connection'}{' batch' if self.batch else ''}>"

    def _connect(self, *, for_writes: bool = False) -> sqlite3.Connection:
        if self._shared_conn is not None:
            return self._shared_conn
        assert self.path is not None
        target = Path(self.path)
        if self.path != ":memory:" and not target.parent.exists():
            raise StoreError(
                f"cannot open event store {self.path}: directory {target.parent} does not exist"
            )
        if self.path != ":memory:" and target.is_dir():
            raise StoreError(f"cannot open event store {self.path}: it is a directory")
        if self.readonly:
            conn = self._connect_readonly(target)
        else:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as e:
                raise StoreError(f"cannot open event store {self.path}: {e}") from None
        # readers wait for SQLite's rare reader locks (WAL recovery); writers poll for the
        # write lock themselves (begin_immediate), so their busy handler is off
        conn.execute(f"PRAGMA busy_timeout = {0 if for_writes else self.busy_timeout_ms}")
        if not self.readonly:
            _retry_locked(
                lambda: conn.execute("PRAGMA journal_mode = WAL"),
                lambda: locked_message(conn, self.path, self.busy_timeout_ms),
                self.busy_timeout_ms / 1000,
            )
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            if self.path != ":memory:":
                # Checkpoints run on the background thread; the automatic one stays as a
                # safety net, at a size the background thread should never let the WAL reach.
                conn.execute(f"PRAGMA wal_autocheckpoint = {SAFETY_AUTOCHECKPOINT_PAGES}")
        self._all_conns.append(conn)
        return conn

    def _connect_readonly(self, target: Path) -> sqlite3.Connection:
        if not target.exists():
            raise StoreError(f"no event store at {self.path}")
        conn, self.immutable = connect_readonly(target, self.busy_timeout_ms)
        return conn

    def _after_fork(self) -> None:
        if self._pid != os.getpid():
            self._local = threading.local()
            self._all_conns = []
            self._wconn = None
            self._background = None  # its thread stayed in the parent
            self._wlock = threading.RLock()
            self._group = GroupCommit(self._commit_requests)
            self._pid = os.getpid()

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use, reopened after a fork)."""
        if self._closed:
            raise StoreError(f"event store {self.path or ''} is closed")
        if self._shared_conn is not None:
            return self._shared_conn
        self._after_fork()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _write_conn(self) -> sqlite3.Connection:
        """The process's write connection (used under ``_wlock``)."""
        if self._closed:
            raise StoreError(f"event store {self.path or ''} is closed")
        if self.readonly:
            raise StoreError(f"event store {self.path} is open read-only")
        if self._shared_conn is not None:
            return self._shared_conn
        self._after_fork()
        if self._wconn is None:
            self._wconn = self._connect(for_writes=True)
            if self.path != ":memory:" and self._background is None:
                behind = self._catch_up_behind if self.follow_in_background else None
                watch = self._others_committed if self.follow_in_background else None
                self._background = Background(self.path, behind, self._idle_work, watch)
        return self._wconn

    @contextlib.contextmanager
    def _write_transaction(self, wait_ms: int | None = None) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` on the write connection, rolled back on any
        error; SQLite errors become one-line :class:`StoreError`.  ``wait_ms``: how long to
        wait for the write lock (default: ``busy_timeout_ms``)."""
        with self._wlock:
            conn = self._write_conn()
            wait = self.busy_timeout_ms if wait_ms is None else wait_ms
            if self._shared_conn is not None:
                conn.execute(f"PRAGMA busy_timeout = {int(wait)}")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as e:
                    raise StoreError(f"cannot write to event store {self.path}: {e}") from None
            else:
                begin_immediate(conn, wait, self.path)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error) and not isinstance(e, sqlite3.IntegrityError):
                    raise StoreError(f"cannot write to event store {self.path}: {e}") from None
                raise

    # --- schema ----------------------------------------------------------------------------

    def _open_checked(self) -> None:
        try:
            conn = self.conn()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > STORE_SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path or 'this store'} was written by a newer llm-events "
                    f"(store schema {version}; this version reads up to "
                    f"{STORE_SCHEMA_VERSION}): upgrade llm-events to open it"
                )
            if self.readonly:
                if version == 0:
                    raise StoreError(f"{self.path} is not an llm-events store (no events table)")
                return
            if version < STORE_SCHEMA_VERSION or not projections_current(conn, self.projections):
                self._migrate()
            elif catchup.lag(conn):
                self._catch_up_quietly()
            if version >= STORE_SCHEMA_VERSION and catchup.deferred(conn):
                self._restore_indexes()  # a rebuild killed before its end left them
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open event store {self.path or ''}: {e}") from None

    def _migrate(self) -> None:
        try:
            with self._write_transaction() as conn:
                stale, legacy = migrate(conn, self.path, self.projections)
        except NotAStore as e:
            raise StoreError(str(e)) from None
        if stale:
            self.rebuild(only=[p.name for p in stale])
        if legacy:
            from .legacy import import_legacy_prompts

            import_legacy_prompts(self, self.conn())
        self._catch_up_quietly()

    # --- appending -------------------------------------------------------------------------

    def append(self, events: Sequence[ev.Event], *, ignore_existing: bool = False) -> None:
        """Append events atomically; returns once they are committed (in batch mode: queue
        them for the writer thread).  Concurrent callers share commits.

        With ``ignore_existing``, events whose id is already stored are skipped (imports).
        """
        if not events:
            return
        encoded = _encoded(events)
        if self.batch:
            self._enqueue(encoded)
            return
        self._append_now(encoded, ignore_existing=ignore_existing)

    def defer(self, events: Sequence[ev.Event]) -> None:
        """Hold events until the next append, which commits them first in its transaction.

        For events that need not be durable on their own (a ``prompt_built`` matters once a
        call sends the prompt): it saves a commit.  :meth:`flush`, :meth:`close` and exit
        write what is still held, and so does holding more than ``DEFER_MAX`` events.

        Events are encoded here, not when they are committed: one that cannot be stored is
        refused to its caller, instead of failing the commit of every later caller's events.
        """
        encoded = _encoded(events)
        if self.batch:
            self._enqueue(encoded)
            return
        with self._deferred_lock:
            self._deferred.extend(encoded)
            full = len(self._deferred) >= DEFER_MAX
        if full:
            self._append_now([])

    def _append_now(
        self, encoded: list[tuple[ev.Event, bytes]], *, ignore_existing: bool = False
    ) -> None:
        """Commit these encoded events (and the held ones) before returning."""
        if self.readonly:
            raise StoreError(f"event store {self.path} is open read-only")
        if not encoded and not self._deferred:
            return
        try:
            self._group.submit(encoded, ignore_existing)
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to event store {self.path}: {e}") from None

    def _commit_requests(self, requests: list[Request]) -> None:
        """The group commit's transaction: held events first, then each request's."""
        with self._deferred_lock:
            deferred, self._deferred = self._deferred, []
        try:
            with self._write_transaction() as conn:
                encoded = deferred
                for r in requests:
                    if r.ignore_existing:
                        encoded = encoded + _without_existing(conn, r.encoded, encoded)
                    else:
                        encoded = encoded + r.encoded
                if not encoded:
                    return
                self._insert(conn, encoded)
        except BaseException:
            if deferred:
                with self._deferred_lock:
                    self._deferred[:0] = deferred
            raise
        blobs.forget(e.id for e, _ in encoded)  # committed: their inline bytes are stored
        if self._background is not None:
            self._background.committed(len(encoded))

    def append_encoded(
        self, encoded: Sequence[tuple[ev.Event, bytes]], *, ignore_existing: bool = False
    ) -> None:
        """Append events whose payloads are already encoded (an import keeps the fields of a
        newer schema that our structs drop); ``event`` is what projections fold."""
        if not encoded:
            return
        if self.readonly:
            raise StoreError(f"event store {self.path} is open read-only")
        if self._deferred or self.batch:  # what was appended before goes first
            self.flush_events()
        try:
            self._group.submit(list(encoded), ignore_existing)
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to event store {self.path}: {e}") from None

    def append_computed(
        self, build: Callable[[sqlite3.Connection], Sequence[ev.Event]]
    ) -> list[ev.Event]:
        """Append the events ``build(conn)`` returns, deciding under the write lock.

        For writes that depend on what is stored when another process may be making the
        same decision: ``build`` reads the store (its projections brought up to date first)
        inside the append's transaction, so no other writer comes between what it saw and
        what it appends.  Returns the events appended (written at once, also in batch mode).
        """
        with self._write_transaction() as conn:
            try:
                while catchup.apply_pending(conn, self.projections):
                    pass
            except BaseException:
                catchup.forget(self.projections)
                raise
            events = list(build(conn))
            self._insert(conn, [(e, ev.encode(e)) for e in events])
        if events and self._background is not None:
            self._background.committed(len(events))
        return events

    @staticmethod
    def attach_blobs(event_id: str, found: Sequence[blobs.Blob]) -> None:
        """Write ``found`` (inline bytes) in the transaction that writes event ``event_id``,
        each once (:func:`llm_events.log.blobs.attach`)."""
        blobs.attach(event_id, found)

    def write_blobs(self, found: Sequence[blobs.Blob]) -> None:
        """Store inline bytes now, each once, in a transaction of their own (an import of
        blobs whose events the store already has)."""
        if not found:
            return
        if self.readonly:
            raise StoreError(f"event store {self.path} is open read-only")
        with self._write_transaction() as conn:
            blobs.write(conn, found)

    @staticmethod
    def _insert(conn: sqlite3.Connection, encoded: list[tuple[ev.Event, bytes]]) -> None:
        """Chain and insert encoded events (inside the caller's write transaction)."""
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = row if row is not None else (0, GENESIS)
        params = []
        for event, payload in encoded:
            seq += 1
            type_ = event.type_name
            key = event.key
            h = row_hash(prev, seq, event.id, type_, key, event.ts, payload)
            params.append((seq, event.id, type_, key, event.ts, payload.decode(), prev, h))
            prev = h
        if params:
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", params)
            conn.execute("UPDATE _meta SET value = ? WHERE key = 'head'", (f"{seq}:{prev}",))
            blobs.write_attached(conn, encoded)  # inline bytes of these events, once

    def flush(self) -> None:
        """Commit held and queued events, then bring projections and the search index up
        to date; raise if a background write failed."""
        self.flush_events()
        if self.readonly:
            return
        # Best effort: projections are derived, and the next writer, reader or open redoes
        # the work, so a flush, close or exit never fails or waits long for it while
        # another connection holds the write lock.
        self._catch_up_quietly()
        if self._settle_pending():
            with contextlib.suppress(StoreError, sqlite3.Error):
                self._settle(wait_ms=SETTLE_WAIT_MS)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            with self._queue_cond:
                self._queue_cond.notify_all()
            if self._background is not None and self._pid == os.getpid():
                self._background.stop()
            self._background = None
            self._leave_role()
            if self._shared_conn is None:
                for c in self._all_conns:
                    with contextlib.suppress(sqlite3.Error):
                        c.close()
            self._all_conns = []
            self._wconn = None
            self._local = threading.local()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- integrity -------------------------------------------------------------------------

    def verify(
        self, progress: Callable[[int], None] | None = None, expect_head: str | None = None
    ) -> VerifyResult:
        """Recompute the hash chain from one snapshot (see :func:`.chain.verify`)."""
        return verify_chain(self.conn(), progress, expect_head)


def _without_existing(
    conn: sqlite3.Connection, encoded: list[tuple[ev.Event, bytes]], before: list
) -> list[tuple[ev.Event, bytes]]:
    """``encoded`` less the events whose id is stored or comes earlier in the group."""
    seen: set[str] = {e.id for e, _ in before}
    ids = [e.id for e, _ in encoded]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        seen.update(
            r[0]
            for r in conn.execute(
                f"SELECT id FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
        )
    out = []
    for e, payload in encoded:
        if e.id not in seen:
            seen.add(e.id)
            out.append((e, payload))
    return out


def _retry_locked(fn: Callable[[], Any], message: Callable[[], str], deadline_s: float) -> Any:
    """Run ``fn``, retrying while SQLite says the file is locked (opening: WAL set-up)."""
    start = time.monotonic()
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if not is_locked(e):
                raise
            if time.monotonic() - start > deadline_s:
                raise StoreLockedError(message()) from None
            time.sleep(0.01)


_live_stores: weakref.WeakSet[EventStore] = weakref.WeakSet()


def open_stores() -> list[EventStore]:
    """The stores this process has open (``llm_events.flush()`` flushes them all)."""
    return [s for s in list(_live_stores) if not s._closed and s._pid == os.getpid()]


@atexit.register
def _flush_all_at_exit() -> None:
    for store in list(_live_stores):
        if store._closed or store.readonly or store._pid != os.getpid():
            continue
        try:
            store.flush()
        except Exception as e:  # exiting: report, don't hide
            import sys

            print(f"llm-events: could not flush {store.path}: {e}", file=sys.stderr)


def _encoded(events: Sequence[ev.Event]) -> list[tuple[ev.Event, bytes]]:
    """Each event with its payload; an event that cannot be encoded is refused whole (its
    caller's events are all left unwritten, and no one else's are touched)."""
    try:
        return [(e, ev.encode(e)) for e in events]
    except (TypeError, ValueError) as err:
        bad = next(e for e in events if not _encodes(e))
        raise UnstorableValueError(
            f"{getattr(bad, 'type_name', type(bad).__name__)} event {getattr(bad, 'id', '?')} "
            f"cannot be stored: {err}; none of these {len(events)} events was written"
        ) from None


def _encodes(event: Any) -> bool:
    try:
        ev.encode(event)
    except (TypeError, ValueError):
        return False
    return True

"""The append-only SQLite event store.

One file holds the ``events`` table (the truth) and the projections derived from it.

* ``seq`` is the global commit order; triggers make ``events`` append-only; every row's
  ``hash`` covers its content and the previous row's hash, and ``_meta.head`` names the last
  one, so :meth:`EventStore.verify` finds the first altered, removed or reordered row.
* WAL, ``busy_timeout`` and ``BEGIN IMMEDIATE`` let many threads and processes append to one
  file; a connection is kept per thread (and per process, after a fork).
* Projections are applied inside the append transaction, each tracking its last ``seq`` in
  ``_projections``; :meth:`EventStore.rebuild` re-derives them from seq 0.
* Batch mode queues appends and commits them in groups from a background thread;
  :meth:`EventStore.flush` waits for them, and closing or exiting flushes too.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import hashlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import blobs
from . import events as ev
from .projections import Projection, default_projections
from .views import VIEW_SQL

#: Version of the file layout this code writes; older files are migrated in place.
#: 2: ``events_type`` indexes only the sparse event types (see SPARSE_TYPES).
STORE_SCHEMA_VERSION = 2
#: Written to ``PRAGMA application_id`` so a file can be recognised as ours ("LLME").
APPLICATION_ID = 0x4C4C4D45

_GENESIS = ""
#: Events held by :meth:`EventStore.defer` before they are written on their own.
DEFER_MAX = 1000
_MISSING = object()


class StoreError(Exception):
    """The store cannot be opened, read or written; the message says why in one line."""


class StoredEvent(NamedTuple):
    seq: int
    event: ev.Event | ev.UnknownEvent


class VerifyResult(NamedTuple):
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str


def row_hash(
    prev_hash: str, seq: int, id_: str, type_: str, key: str | None, ts: str, payload: str | bytes
) -> str:
    """The chain hash of one row: its content plus the previous row's hash.

    ``payload`` may be the stored text or its UTF-8 bytes (appends pass the bytes the
    encoder made, sparing a re-encode): both give the same hash.
    """
    if isinstance(payload, bytes):
        return hashlib.sha256(
            f"{prev_hash}\x1f{seq}\x1f{id_}\x1f{type_}\x1f{key or ''}\x1f{ts}\x1f".encode()
            + payload
        ).hexdigest()
    h = hashlib.sha256(
        f"{prev_hash}\x1f{seq}\x1f{id_}\x1f{type_}\x1f{key or ''}\x1f{ts}\x1f".encode()
    )
    h.update(payload.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


#: Event types the ``events_type`` index covers: the ones a store may hold few of, which a
#: scan would have to read the whole log to find.  The five types every call writes are each
#: a large share of the log, so a scan in ``seq`` order meets them at once; indexing them
#: would cost five more pages written per recorded call.
SPARSE_TYPES = (
    "route_chosen",
    "attempt_failed",
    "retry_scheduled",
    "fallback_taken",
    "replay_started",
    "replay_compared",
    "replay_finished",
)
# A chain of ``type = '...'`` terms, so that a query's ``WHERE type = 'x'`` can use it.
_EVENTS_TYPE_INDEX = "CREATE INDEX IF NOT EXISTS events_type ON events(type, seq) WHERE " + (
    " OR ".join(f"type = '{t}'" for t in SPARSE_TYPES)
)

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        call_id TEXT,
        ts TEXT NOT NULL,
        payload TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_call_id ON events(call_id, seq) WHERE call_id IS NOT NULL",
    _EVENTS_TYPE_INDEX,
    """CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events BEGIN
        SELECT RAISE(ABORT, 'events is append-only: UPDATE is not allowed');
    END""",
    """CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events BEGIN
        SELECT RAISE(ABORT, 'events is append-only: DELETE is not allowed');
    END""",
    "CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS _projections (
        name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL
    )""",
    blobs.CREATE_SQL,  # inline bytes by sha256 (older files get it with their first blob)
    *VIEW_SQL,  # views flattening event payloads (llm_events.log.views), for browsing
]


def _is_legacy_prompt_log(conn: sqlite3.Connection, tables: set[str]) -> bool:
    """A file written by the original PromptDB: only a ``prompts`` table of its shape."""
    if tables - {"prompts", "sqlite_sequence"} or "prompts" not in tables:
        return False
    columns = {r[1] for r in conn.execute("PRAGMA table_info(prompts)")}
    return {"text", "response_text"} <= columns


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc)
    return "locked" in msg or "busy" in msg


class EventStore:
    """An append-only event log in one SQLite file, with projections kept beside it.

    ``EventStore(path)`` opens (creating or migrating) a file.  ``EventStore(conn=...)`` uses a
    connection someone else owns (the seed's ``PromptDB(router=...)``).  ``readonly=True``
    never writes (``verify`` and browsing use it).
    """

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
        busy_timeout_ms: int = 30_000,
        projections: Sequence[Projection] | None = None,
    ) -> None:
        if path is None and conn is None:
            raise ValueError("EventStore needs a path or a connection")
        self.path = None if path is None else str(path)
        self.readonly = readonly
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self.projections: list[Projection] = (
            list(projections) if projections is not None else default_projections()
        )
        self._shared_conn = conn
        self._lock = threading.RLock()
        self._local = threading.local()
        self._all_conns: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        self.batch = False  # set below, once the file is open and migrated
        self.batch_interval = batch_interval
        self.batch_max = batch_max
        self._queue: list[ev.Event] = []
        self._queue_cond = threading.Condition()
        self._batch_error: BaseException | None = None
        self._writer: threading.Thread | None = None
        self._checkpointer: _Checkpointer | None = None
        self._deferred: list[ev.Event] = []
        self._deferred_lock = threading.Lock()
        self._open_checked()
        self.batch = batch
        if batch:
            self._start_writer()
        _live_stores.add(self)

    # --- connections ---------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<EventStore {self.path or 'connection'}{' batch' if self.batch else ''}>"

    def _connect(self) -> sqlite3.Connection:
        if self._shared_conn is not None:
            return self._shared_conn
        assert self.path is not None
        target = Path(self.path)
        if self.path != ":memory:" and not target.parent.exists():
            raise StoreError(
                f"cannot open event store {self.path}: directory {target.parent} does not exist"
            )
        if self.readonly:
            if not target.exists():
                raise StoreError(f"no event store at {self.path}")
            uri = f"{target.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            try:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
            except sqlite3.Error as e:
                raise StoreError(f"cannot open event store {self.path}: {e}") from None
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        if not self.readonly:
            self._retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            if self.path != ":memory:":
                # Checkpoints run on a background thread (see _Checkpointer); the automatic
                # one stays as a safety net, at a size the background thread should never let
                # the WAL reach.
                conn.execute(f"PRAGMA wal_autocheckpoint = {_SAFETY_AUTOCHECKPOINT_PAGES}")
                with self._lock:
                    if self._checkpointer is None:
                        self._checkpointer = _Checkpointer(self.path, self._settle_when_idle)
        self._all_conns.append(conn)
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use, reopened after a fork)."""
        if self._closed:
            raise StoreError(f"event store {self.path or ''} is closed")
        if self._shared_conn is not None:
            return self._shared_conn
        if self._pid != os.getpid():
            self._local = threading.local()
            self._all_conns = []
            self._checkpointer = None  # its thread stayed in the parent
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _retry_locked(self, fn: Callable[[], Any], deadline_s: float = 60.0) -> Any:
        """Run ``fn``, retrying while SQLite says the file is locked (beyond busy_timeout)."""
        start = time.monotonic()
        delay = 0.002
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if not _is_locked(e) or time.monotonic() - start > deadline_s:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

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
            if version < STORE_SCHEMA_VERSION or not self._projections_current(conn):
                self._retry_locked(lambda: self._migrate(conn))
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open event store {self.path or ''}: {e}") from None

    def _projections_current(self, conn: sqlite3.Connection) -> bool:
        try:
            have = dict(conn.execute("SELECT name, version FROM _projections").fetchall())
        except sqlite3.OperationalError:
            return False
        return all(have.get(p.name) == p.version for p in self.projections)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        legacy = False
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = {
                    r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                legacy = "events" not in tables and _is_legacy_prompt_log(conn, tables)
                if tables and "events" not in tables and not legacy:
                    raise StoreError(
                        f"{self.path} is an SQLite file but not an llm-events store "
                        f"(it has tables {', '.join(sorted(tables)[:5])})"
                    )
                if legacy:
                    conn.execute("ALTER TABLE prompts RENAME TO prompts_legacy")
                for stmt in _SCHEMA:
                    conn.execute(stmt)
                conn.execute(
                    "INSERT OR IGNORE INTO _meta(key, value) VALUES ('head', ?)", (f"0:{_GENESIS}",)
                )
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            elif version == 1:
                conn.execute("DROP INDEX IF EXISTS events_type")  # it covered every type
                conn.execute(_EVENTS_TYPE_INDEX)
            conn.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION}")
            stale = []
            have = dict(conn.execute("SELECT name, version FROM _projections").fetchall())
            for p in self.projections:
                if have.get(p.name) != p.version:
                    stale.append(p)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if stale:
            self.rebuild(only=[p.name for p in stale])
        if legacy:
            from .legacy import import_legacy_prompts

            import_legacy_prompts(self, conn)

    # --- appending -------------------------------------------------------------------------

    def append(self, events: Sequence[ev.Event], *, ignore_existing: bool = False) -> None:
        """Append events atomically (in batch mode: queue them for the writer thread).

        With ``ignore_existing``, events whose id is already stored are skipped (imports).
        """
        if not events:
            return
        if self.batch:
            self._enqueue(events)
            return
        self._append_now(events, ignore_existing=ignore_existing)

    def defer(self, events: Sequence[ev.Event]) -> None:
        """Hold events until the next append, which commits them first in its transaction.

        For events that need not be durable on their own (a ``prompt_built`` matters once a
        call sends the prompt): it saves a commit.  :meth:`flush`, :meth:`close` and exit
        write what is still held, and so does holding more than ``DEFER_MAX`` events.
        """
        if self.batch:
            self._enqueue(events)
            return
        with self._deferred_lock:
            self._deferred.extend(events)
            full = len(self._deferred) >= DEFER_MAX
        if full:
            self._append_now(())

    def _take_deferred(self) -> list[ev.Event]:
        with self._deferred_lock:
            taken, self._deferred = self._deferred, []
        return taken

    def _restore_deferred(self, taken: list[ev.Event]) -> None:
        if taken:
            with self._deferred_lock:
                self._deferred[:0] = taken

    def _append_now(self, events: Sequence[ev.Event], *, ignore_existing: bool = False) -> None:
        deferred = self._take_deferred() if self._deferred else []
        try:
            self._commit_events([*deferred, *events], ignore_existing=ignore_existing)
        except BaseException:
            self._restore_deferred(deferred)
            raise

    def _commit_events(self, events: Sequence[ev.Event], *, ignore_existing: bool = False) -> None:
        if not events:
            return
        encoded = [(e, ev.encode(e)) for e in events]
        if self.readonly:
            raise StoreError(f"event store {self.path} is open read-only")
        conn = self.conn()
        with self._write_transaction(conn):
            if ignore_existing:
                encoded = self._without_existing(conn, encoded)
            self._insert(conn, encoded)
        blobs.forget(e.id for e, _ in encoded)  # committed: their inline bytes are stored
        if self._checkpointer is not None:
            self._checkpointer.committed(len(encoded))

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
            self.flush()
        pairs = list(encoded)
        conn = self.conn()
        with self._write_transaction(conn):
            if ignore_existing:
                pairs = self._without_existing(conn, pairs)
            self._insert(conn, pairs)
        if self._checkpointer is not None:
            self._checkpointer.committed(len(pairs))

    def append_computed(
        self, build: Callable[[sqlite3.Connection], Sequence[ev.Event]]
    ) -> list[ev.Event]:
        """Append the events ``build(conn)`` returns, deciding under the write lock.

        For writes that depend on what is stored when another process may be making the
        same decision: ``build`` reads the store inside the append's transaction, so no
        other writer comes between what it saw and what it appends.  Returns the events
        appended (written at once, also in batch mode).
        """
        if self.readonly:
            raise StoreError(f"event store {self.path} is open read-only")
        conn = self.conn()
        with self._write_transaction(conn):
            events = list(build(conn))
            self._insert(conn, [(e, ev.encode(e)) for e in events])
        if events and self._checkpointer is not None:
            self._checkpointer.committed(len(events))
        return events

    def put_blobs(self, found: dict[str, bytes]) -> None:
        """Store inline bytes (sha256 -> bytes) now, each once, in a transaction of their own.

        For writers that hold bytes apart from their events (the proxy): called before the
        events naming them are appended, so no event ever names bytes the store lacks.
        """
        rows = [blobs.Blob(hashlib.sha256(data).hexdigest(), None, data) for data in found.values()]
        if rows:
            self.append_computed(lambda conn: blobs.write(conn, rows) or [])

    def _insert(self, conn: sqlite3.Connection, encoded: list[tuple[ev.Event, bytes]]) -> None:
        """Chain, insert and project encoded events (inside the caller's write transaction)."""
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = row if row is not None else (0, _GENESIS)
        params = []
        applied = []
        for event, payload in encoded:
            seq += 1
            type_ = event.type_name
            key = event.key
            h = row_hash(prev, seq, event.id, type_, key, event.ts, payload)
            params.append((seq, event.id, type_, key, event.ts, payload.decode(), prev, h))
            applied.append((seq, event))
            prev = h
        if params:
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", params)
            conn.execute("UPDATE _meta SET value = ? WHERE key = 'head'", (f"{seq}:{prev}",))
            blobs.write_attached(conn, encoded)  # inline bytes of these events, once
            self._project(conn, applied)

    @staticmethod
    def _without_existing(conn: sqlite3.Connection, encoded: list) -> list:
        seen: set[str] = set()
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

    def _project(self, conn: sqlite3.Connection, applied: list[tuple[int, ev.Event]]) -> None:
        # Applied in the append's own transaction, so every projection whose version is
        # current is at the head of the log: no per-append checkpoint write is needed
        # (``_projections.last_seq`` records where the last rebuild ended).
        for projection in self.projections:
            projection.apply(conn, applied)

    # --- batch mode ------------------------------------------------------------------------

    def _start_writer(self) -> None:
        self._writer = threading.Thread(
            target=self._writer_loop, name="llm-events-writer", daemon=True
        )
        self._writer.start()

    def _enqueue(self, events: Sequence[ev.Event]) -> None:
        with self._queue_cond:
            if self._batch_error is not None:
                err, self._batch_error = self._batch_error, None
                raise StoreError(f"background write to {self.path} failed: {err}") from err
            self._queue.extend(events)
            backlog = len(self._queue)
            if backlog >= self.batch_max:
                self._queue_cond.notify_all()
        if backlog >= 2 * self.batch_max:
            # Backpressure: producers faster than the writer commit the backlog themselves,
            # so the queue (and memory) stays bounded at about two batches.
            self._drain()

    def _writer_loop(self) -> None:
        while not self._closed:
            with self._queue_cond:
                if len(self._queue) < self.batch_max:
                    self._queue_cond.wait(self.batch_interval)
            try:
                self._drain()
            except BaseException as e:  # reported at the next append or flush
                with self._queue_cond:
                    self._batch_error = e

    def _drain(self) -> None:
        with self._lock:  # one drainer at a time keeps the queue's order
            with self._queue_cond:
                pending, self._queue = self._queue, []
            if pending:
                self._append_now(pending)

    def flush(self) -> None:
        """Commit held and queued events and the projections' deferred work; raise if a
        background write failed."""
        if self._deferred:
            self._append_now(())
        if self.batch:
            self._drain()
            with self._queue_cond:
                if self._batch_error is not None:
                    err, self._batch_error = self._batch_error, None
                    raise StoreError(f"background write to {self.path} failed: {err}") from err
        if self._settle_pending():
            # Best effort: the deferred work is derived (the search index) and the next
            # writer, ``search`` or ``browse`` redoes it, so a flush, close or exit never
            # fails or waits long for it while another connection holds the write lock.
            with contextlib.suppress(StoreError, sqlite3.Error):
                self._settle(self.conn(), wait_ms=_SETTLE_WAIT_MS)

    def _settle_pending(self) -> bool:
        return not self.readonly and any(p.pending() for p in self.projections)

    def _settle(self, conn: sqlite3.Connection, wait_ms: int | None = None) -> None:
        """Do the work projections left for later (the search index), in one transaction."""
        with self._write_transaction(conn, wait_ms):
            for projection in self.projections:
                projection.settle(conn)

    @contextlib.contextmanager
    def _write_transaction(
        self, conn: sqlite3.Connection, wait_ms: int | None = None
    ) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error; SQLite errors become
        one-line :class:`StoreError`.  ``wait_ms``: how long to wait for the write lock
        (default: the busy timeout, retried while the file stays locked)."""
        with self._lock if self._shared_conn is not None else _nolock:
            try:
                if wait_ms is None:
                    self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
                else:
                    conn.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                    finally:
                        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            except sqlite3.Error as e:
                raise StoreError(f"cannot write to event store {self.path}: {e}") from None
            try:
                yield
                conn.execute("COMMIT")
            except BaseException as e:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"cannot write to event store {self.path}: {e}") from None
                raise

    def _settle_when_idle(self, conn: sqlite3.Connection) -> None:
        """The checkpointer thread's idle work: settle on its own connection."""
        if self._settle_pending() and not self._closed:
            self._settle(conn, wait_ms=_SETTLE_WAIT_MS)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            with self._queue_cond:
                self._queue_cond.notify_all()
            if self._checkpointer is not None and self._pid == os.getpid():
                self._checkpointer.stop()
            self._checkpointer = None
            if self._shared_conn is None:
                for c in self._all_conns:
                    with contextlib.suppress(sqlite3.Error):
                        c.close()
            self._all_conns = []
            self._local = threading.local()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ---------------------------------------------------------------------------

    def last_seq(self) -> int:
        row = self.conn().execute("SELECT max(seq) FROM events").fetchone()
        return row[0] or 0

    def iter_events(
        self,
        *,
        after_seq: int = 0,
        until_seq: int | None = None,
        types: Iterable[str] | None = None,
        call_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        chunk: int = 2000,
    ) -> Iterator[StoredEvent]:
        """Events in ``seq`` order, read in chunks so memory stays bounded."""
        where = ["seq > ?"]
        args: list[Any] = []
        if until_seq is not None:
            where.append("seq <= ?")
            args.append(until_seq)
        if types is not None:
            types = list(types)
            # with a call_id, "+type" keeps SQLite on the call_id index: the type index
            # would scan every event of that type in the store (O(store) per call)
            column = "+type" if call_id is not None else "type"
            where.append(f"{column} IN ({','.join('?' * len(types))})")
            args.extend(types)
        if call_id is not None:
            where.append("call_id = ?")
            args.append(call_id)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts < ?")
            args.append(until)
        sql = f"SELECT seq, type, payload FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        last = after_seq
        conn = self.conn()
        while True:
            rows = conn.execute(sql, (last, *args, chunk)).fetchall()
            for seq, type_, payload in rows:
                yield StoredEvent(seq, ev.decode(payload, type_))
            if len(rows) < chunk:
                return
            last = rows[-1][0]

    def call_events(self, call_id: str) -> list[StoredEvent]:
        """Every event of one call, in order (its prompt_built first, when stored)."""
        out = list(self.iter_events(call_id=call_id))
        started = next((s.event for s in out if isinstance(s.event, ev.CallStarted)), None)
        if started is not None and started.prompt_id:
            prompt = self.get_event(started.prompt_id)
            if prompt is not None:
                out.insert(0, prompt)
        return out

    def get_event(self, event_id: str) -> StoredEvent | None:
        row = (
            self.conn()
            .execute("SELECT seq, type, payload FROM events WHERE id = ?", (event_id,))
            .fetchone()
        )
        return None if row is None else StoredEvent(row[0], ev.decode(row[2], row[1]))

    def count(self, type_: str | None = None) -> int:
        if type_ is None:
            return self.conn().execute("SELECT count(*) FROM events").fetchone()[0]
        return (
            self.conn()
            .execute("SELECT count(*) FROM events WHERE type = ?", (type_,))
            .fetchone()[0]
        )

    def has_call(self, call_id: str) -> bool:
        return (
            self.conn().execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone()
            is not None
        )

    # --- integrity -------------------------------------------------------------------------

    def verify(self, progress: Callable[[int], None] | None = None) -> VerifyResult:
        """Recompute the hash chain; name the first row that was altered, removed or moved."""
        conn = self.conn()
        prev = _GENESIS
        expected_seq = 1
        checked = 0
        last = 0
        while True:
            rows = conn.execute(
                "SELECT seq, id, type, call_id, ts, payload, prev_hash, hash FROM events "
                "WHERE seq > ? ORDER BY seq LIMIT 5000",
                (last,),
            ).fetchall()
            for seq, id_, type_, key, ts, payload, prev_hash, h in rows:
                if seq != expected_seq:
                    return VerifyResult(
                        False, checked, expected_seq, f"event seq {expected_seq} is missing"
                    )
                if prev_hash != prev:
                    return VerifyResult(
                        False,
                        checked,
                        seq,
                        f"event seq {seq} does not follow seq {seq - 1} "
                        "(an event before it was removed, reordered or altered)",
                    )
                if row_hash(prev, seq, id_, type_, key, ts, payload) != h:
                    return VerifyResult(
                        False, checked, seq, f"event seq {seq} was altered after it was written"
                    )
                prev = h
                expected_seq += 1
                checked += 1
            if progress is not None and rows:
                progress(len(rows))
            if len(rows) < 5000:
                break
            last = rows[-1][0]
        head = conn.execute("SELECT value FROM _meta WHERE key = 'head'").fetchone()
        if head is not None:
            head_seq, _, head_hash = head[0].partition(":")
            if int(head_seq) != checked or head_hash != prev:
                first = checked + 1 if int(head_seq) > checked else int(head_seq)
                return VerifyResult(
                    False,
                    checked,
                    first,
                    f"the last event written was seq {head_seq}, but the log ends at seq {checked}"
                    " (events were removed from the end)"
                    if int(head_seq) > checked
                    else f"the chain head does not match event seq {checked}",
                )
        return VerifyResult(True, checked, None, "ok")

    # --- projections -----------------------------------------------------------------------

    def rebuild(
        self,
        only: Iterable[str] | None = None,
        progress: Callable[[int], None] | None = None,
        chunk: int = 20_000,
    ) -> int:
        """Drop and re-derive projections from every event; returns the events applied."""
        names = set(only) if only is not None else None
        targets = [p for p in self.projections if names is None or p.name in names]
        conn = self.conn()
        with self._write_transaction(conn), _collector_paused():
            try:
                for p in targets:
                    p.reset_caches()
                    p.drop(conn)
                    p.create(conn)
                applied = 0
                last = 0
                for batch in _event_chunks(conn, chunk):
                    for p in targets:
                        p.apply(conn, batch)
                    applied += len(batch)
                    last = batch[-1][0]
                    if progress is not None:
                        progress(len(batch))
                for p in targets:
                    p.settle(conn)
                for p in targets:
                    conn.execute(
                        "INSERT OR REPLACE INTO _projections(name, last_seq, version) VALUES (?,?,?)",
                        (p.name, last, p.version),
                    )
            except BaseException:  # rolled back: what the caches hold was never stored
                for p in targets:
                    p.reset_caches()
                raise
        return applied


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause automatic cycle collection for a rebuild.

    A rebuild allocates millions of short-lived objects while its projections keep caches of
    long-lived ones, so every full collection walks the caches again: about a tenth of a
    1,000,000-event rebuild.  Reference counting still frees everything the rebuild drops;
    cycles made meanwhile (elsewhere in the process) wait until it ends.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _event_chunks(conn: sqlite3.Connection, chunk: int) -> Iterator[list[tuple[int, Any]]]:
    """Every event as ``(seq, event)``, in chunks of ``chunk`` (bounded memory).

    (Reading and decoding the next chunk on another thread while SQLite writes was tried:
    the two threads fought over the GIL and a 1,000,000-event rebuild got slower.)
    """
    last = 0
    while True:
        rows = conn.execute(
            "SELECT seq, type, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, chunk),
        ).fetchall()
        if not rows:
            return
        yield [(seq, ev.decode(payload, type_)) for seq, type_, payload in rows]
        last = rows[-1][0]


#: The automatic checkpoint of append connections: only a safety net (16 MB of WAL).
_SAFETY_AUTOCHECKPOINT_PAGES = 4000
#: Wake the checkpointer after this many appended events, or after this many seconds.
_CHECKPOINT_EVERY_EVENTS = 64
_CHECKPOINT_INTERVAL_S = 0.5
#: Appends paused this long: the checkpointer does the projections' deferred work.
_IDLE_S = 0.3
#: How long flush, close and exit wait for the write lock to do that work themselves.
_SETTLE_WAIT_MS = 1000


class _Checkpointer:
    """Runs WAL checkpoints on a background thread, off the append path.

    SQLite's automatic checkpoint runs inside the ``COMMIT`` that crosses the threshold: that
    commit copies the WAL into the database and fsyncs both files, so one append in every
    few dozen pays for all of them (a third of the cost of a recorded call at default
    durability).  Here a daemon thread with its own connection runs ``PASSIVE`` checkpoints
    (they never block writers or readers) after every few dozen appended events; SQLite
    releases the GIL while it copies and syncs.  Durability is unchanged: a commit is in the
    WAL either way, and a checkpoint that dies half-way is redone on the next open.
    """

    def __init__(
        self, path: str, idle_work: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        self.path = path
        self.idle_work = idle_work
        self._last_commit = time.monotonic()
        self._pending = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llm-events-checkpoint", daemon=True)
        self._thread.start()

    def committed(self, events: int) -> None:
        self._last_commit = time.monotonic()
        self._pending += events
        if self._pending >= _CHECKPOINT_EVERY_EVENTS:
            self._wake.set()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stopping:
                self._wake.wait(_CHECKPOINT_INTERVAL_S)
                self._wake.clear()
                if self._stopping:
                    continue
                idle = time.monotonic() - self._last_commit >= _IDLE_S
                if not self._pending and not (idle and self.idle_work is not None):
                    continue
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, isolation_level=None)
                    if self._pending:
                        self._pending = 0
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    elif idle and self.idle_work is not None:
                        self.idle_work(conn)  # appends paused: deferred projection work
                except (sqlite3.Error, StoreError):
                    pass  # busy or gone: the next round (or the safety net) catches up
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_nolock = _NoLock()
_live_stores: weakref.WeakSet[EventStore] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    for store in list(_live_stores):
        if (store.batch or store._deferred or store._settle_pending()) and not store._closed:
            try:
                store.flush()
            except Exception as e:  # exiting: report, don't hide
                import sys

                print(f"llm-events: could not flush {store.path}: {e}", file=sys.stderr)

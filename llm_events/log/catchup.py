"""Projections as subscribers of the log: each one catches up from its own checkpoint.

Appends commit only events (and the chain head).  Each projection records in
``_projections.last_seq`` the last ``seq`` it applied, in the same transaction as the rows it
wrote, so a projection row never exists for an event that is not committed, and a crash at
any moment leaves every checkpoint true.  :func:`apply_pending` reads the events after the
slowest checkpoint, a batch at a time, and gives each projection the ones it lacks; the
store runs it on a background thread shortly after appends, at flush, close and exit, when
a process opens the file, and in ``rebuild`` (which resets the checkpoints to 0).

Projections keep in-memory caches of events they applied (prompts, answers of open calls).
They are valid only while this process applied every batch since: when a checkpoint is
not where this process left it (another process caught up in between, or a transaction was
rolled back), the projection's caches are reset and it reads what it needs from the file.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import sqlite3
from collections.abc import Iterator, Sequence

import msgspec

from . import events as ev
from . import fts
from .lag import lag
from .projections import Projection
from .projections.base import PromptFields

__all__ = ["apply_pending", "covered", "forget", "lag", "reset"]

#: Events applied per transaction by the background thread and at open (short lock holds).
CATCH_UP_CHUNK = 2000


def covered(conn: sqlite3.Connection, names: Sequence[str]) -> int:
    """The events every one of these projections has applied (their lowest checkpoint)."""
    row = conn.execute(
        f"SELECT min(last_seq) FROM _projections WHERE name IN ({','.join('?' * len(names))})",
        tuple(names),
    ).fetchone()
    return row[0] or 0


def apply_pending(
    conn: sqlite3.Connection, projections: Sequence[Projection], limit: int = CATCH_UP_CHUNK
) -> int:
    """Apply up to ``limit`` events that some projection lacks, inside the caller's write
    transaction, and move the checkpoints; returns the events read (0: all caught up).

    On a rollback the caller calls :func:`forget` (the caches hold what was not stored).
    """
    marks = dict(conn.execute("SELECT name, last_seq FROM _projections").fetchall())
    active = [p for p in projections if p.name in marks]
    if not active:
        return 0
    start = min(marks[p.name] for p in active)
    rows = conn.execute(
        # as bytes: msgspec decodes them directly, with no str made of each payload first
        "SELECT seq, type, CAST(payload AS BLOB) FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        (start, limit),
    ).fetchall()
    if not rows:
        return 0
    # decode only the types some projection reads (an upgrade rebuilding ``tool_calls``
    # decodes the answers, not the whole log)
    wanted = [p.types for p in active if marks[p.name] < rows[-1][0]]
    need = None if any(t is None for t in wanted) else frozenset().union(*wanted)
    present = {type_ for _seq, type_, _payload in rows}
    batch = _decode_rows(rows, need)
    last = batch[-1][0]
    seqs = [s for s, _e in batch] if any(marks[p.name] != start for p in active) else None
    moved = []
    for p in active:
        mark = marks[p.name]
        if mark >= last:
            continue
        if p.applied_upto != mark:
            p.reset_caches()
        p.applied_upto = None  # until this batch is applied
        first = 0 if seqs is None else bisect.bisect_right(seqs, mark)
        types = p.types
        if types is None or present <= types:
            mine = batch if not first else batch[first:]
        elif present.isdisjoint(types):
            mine = []
        else:
            tail = zip(batch[first:], rows[first:], strict=True)
            mine = [pair for pair, row in tail if row[1] in types]
        if mine:
            p.apply(conn, mine)
        p.applied_upto = last
        moved.append(p.name)
    if moved:  # one statement: every projection that moved is now at ``last``
        conn.execute(
            f"UPDATE _projections SET last_seq = ? WHERE name IN ({','.join('?' * len(moved))})",
            (last, *moved),
        )
    return len(rows)


_prompt_fields = msgspec.json.Decoder(PromptFields)


class _NoEvent(msgspec.Struct, frozen=True, tag="\x00", tag_field="type"):
    """A tag no event has: a union with it makes a decoder of one event type require the
    ``type`` field (as the decoder of every type does), where one struct alone would not."""


#: ``type`` -> the decode of that one type (what ``_decode`` gives a sound payload, without
#: its function calls and the union's dispatch: the fast path of every catch-up).
_DECODERS = {cls.type_name: msgspec.json.Decoder(cls | _NoEvent).decode for cls in ev.EVENT_TYPES}
_DECODERS["prompt_built"] = msgspec.json.Decoder(PromptFields | _NoEvent).decode


def _decode_rows(rows: list[tuple[int, str, bytes]], need: frozenset[str] | None) -> list:
    """``(seq, event)`` of each row: decoded if some projection reads its type (``need``;
    ``None``: every type), else ``None``."""
    out = []
    append = out.append
    decoders = _DECODERS
    for seq, type_, payload in rows:
        if need is not None and type_ not in need:
            append((seq, None))
            continue
        decode = decoders.get(type_)
        event = None
        if decode is not None:
            try:
                event = decode(payload)
            except (ValueError, TypeError):  # msgspec's errors: read it leniently below
                event = None
            if type(event) is _NoEvent:
                event = None
        append((seq, event if event is not None else _decode(payload, type_)))
    return out


def _decode(payload: bytes, type_: str) -> ev.Event | ev.UnknownEvent | PromptFields:
    """The event, or (a row no version of ours could have written) an ``UnknownEvent``
    that projections skip: one unreadable row must not stop every later one.  A prompt
    is decoded only in the fields projections read (:class:`PromptFields`); one that does
    not match them is read as the whole event, leniently (salvage), as any other."""
    try:
        if type_ == "prompt_built":
            try:
                return _prompt_fields.decode(payload)
            except msgspec.ValidationError:
                pass
        return ev.decode(payload, type_)
    except (ValueError, TypeError):  # msgspec's DecodeError and ValidationError
        return ev.UnknownEvent(type=type_, id="", ts="", payload={})


def forget(projections: Sequence[Projection]) -> None:
    """After a rolled-back catch-up: what the caches hold was never stored."""
    for p in projections:
        p.applied_upto = None
        p.reset_caches()


def reset(conn: sqlite3.Connection, projections: Sequence[Projection]) -> None:
    """Drop and re-create these projections' tables at checkpoint 0 (start of a rebuild)."""
    for p in projections:
        p.reset_caches()
        p.drop(conn)
        p.create(conn)
        p.applied_upto = 0
    conn.executemany(
        "INSERT OR REPLACE INTO _projections(name, last_seq, version) VALUES (?, 0, ?)",
        [(p.name, p.version) for p in projections],
    )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
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


#: The ``_meta`` key listing the indexes a rebuild dropped until its end (JSON: their SQL).
DEFERRED_KEY = "deferred_indexes"
_json = msgspec.json.Encoder()
_read_json = msgspec.json.Decoder(list[str])


def deferred(conn: sqlite3.Connection) -> list[str]:
    """The work a rebuild left for its end: the ``CREATE INDEX`` statements of the indexes
    it dropped, and :data:`.fts.END_BULK`."""
    row = conn.execute("SELECT value FROM _meta WHERE key = ?", (DEFERRED_KEY,)).fetchone()
    return [] if row is None else _read_json.decode(row[0])


def defer_indexes(conn: sqlite3.Connection, projections: Sequence[Projection]) -> None:
    """Drop the secondary indexes of these (empty, just reset) tables until the rebuild
    ends: building an index from the finished table costs less than inserting every row
    into seven indexes as it comes (about 5% of a 1M-event rebuild).  Their SQL stays in
    ``_meta``, so whoever opens the file next makes them if the rebuild never comes back."""
    tables = [t for p in projections for t in p.tables]
    found = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({','.join('?' * len(tables))})",
        tables,
    ).fetchall()
    if not found:
        return
    defer_to_end(conn, [sql for _name, sql in found])
    for name, _sql in found:
        conn.execute(f"DROP INDEX [{name}]")


def defer_to_end(conn: sqlite3.Connection, statements: Sequence[str]) -> None:
    """Add these to the work the rebuild does at its end (:func:`restore_index`): a
    ``CREATE INDEX``, or :data:`.fts.END_BULK`."""
    conn.execute(
        "INSERT OR REPLACE INTO _meta(key, value) VALUES (?, ?)",
        (DEFERRED_KEY, _json.encode(deferred(conn) + list(statements)).decode()),
    )


def restore_index(conn: sqlite3.Connection) -> bool:
    """Do one piece of the work a rebuild left for its end, most often one deferred index
    (inside the caller's write transaction: one per transaction keeps each hold of the
    write lock short); False when none is left."""
    todo = deferred(conn)
    if not todo:
        return False
    sql, rest = todo[0], todo[1:]
    if sql == fts.END_BULK:
        fts.end_bulk(conn)
    else:
        conn.execute(sql.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1))
    if rest:
        conn.execute(
            "UPDATE _meta SET value = ? WHERE key = ?", (_json.encode(rest).decode(), DEFERRED_KEY)
        )
    else:
        conn.execute("DELETE FROM _meta WHERE key = ?", (DEFERRED_KEY,))
    return True

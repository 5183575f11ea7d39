"""Read-side queries over a store's projections: the SQL the CLI, Datasette tests and scripts share.

Everything here reads; nothing writes.  Functions take a plain ``sqlite3.Connection`` (from
``EventStore.conn()`` or a read-only connection) so they work on any store file, and return
plain dicts and lists, ready for a table printer or ``json.dumps``.  Filters that select calls
live in one place (:class:`CallFilter`) so ``calls``, ``search``, ``stats``, ``tail`` and
``export`` agree on what ``--model x --since 2h`` means.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


class QueryError(ValueError):
    """A query cannot be answered as asked (unknown id, ambiguous prefix, bad time)."""


#: The store schema these queries read (``llm_events.log.store.STORE_SCHEMA_VERSION``; a test
#: keeps the two equal).  Kept here so reading needs no import of the store (start-up time).
READS_SCHEMA = 3
#: The oldest store schema these queries read as well: schema 2 changed an index, not a table.
READS_SCHEMA_FROM = 1


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to a store file; one clear error for anything else.

    Reading commands use this instead of :class:`~llm_events.log.store.EventStore`: it never
    writes, never migrates, and costs no imports beyond ``sqlite3`` (fast start-up).  It
    sees rows other processes append (WAL), like any reader.
    """
    target = Path(path)
    if not target.exists():
        raise QueryError(f"no event store at {target}")
    from .readonly import connect_readonly

    try:
        conn, _immutable = connect_readonly(target)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise QueryError(f"cannot open event store {target}: {e}") from None
    if not READS_SCHEMA_FROM <= version <= READS_SCHEMA:
        conn.close()
        from .store import EventStore  # its checks give the precise message (newer, foreign)

        EventStore(target, readonly=True).close()
        raise QueryError(f"{target} has store schema {version}; this version reads {READS_SCHEMA}")
    return conn


# --- times ------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|days|w|wk)?\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def iso_utc(dt: datetime) -> str:
    """The stored timestamp form (``2026-11-24T22:35:34.433978Z``), so text comparison works."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str, *, now: datetime | None = None) -> str:
    """``2h``, ``30m``, ``3d``, ``1w`` (ago) or an ISO date/datetime -> stored UTC form.

    A date or datetime without a zone is local time, as a user typing it means.
    """
    text = value.strip()
    m = _RELATIVE.match(text)
    if m and m.group(2):
        amount = float(m.group(1))
        seconds = amount * _UNIT_SECONDS[m.group(2)[0].lower()]
        try:
            return iso_utc((now or datetime.now(UTC)) - timedelta(seconds=seconds))
        except (OverflowError, ValueError):
            raise QueryError(f"{value!r} reaches back before the year 1") from None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"cannot read time {value!r}: use a duration like 30m, 2h, 3d, 1w "
            "or an ISO date like 2026-01-31 or 2026-01-31T09:00"
        ) from None
    try:
        if dt.tzinfo is None:
            dt = dt.astimezone()  # local time
        return iso_utc(dt)
    except (OverflowError, ValueError):
        # 0001-01-01 local, east of UTC, is in the year 0: the earliest time there is
        return "0001-01-01T00:00:00.000000Z" if dt.year < 2 else "9999-12-31T23:59:59.999999Z"


# --- filtering calls --------------------------------------------------------------------------


def replay_call_sql(alias: str = "c") -> str:
    """SQL that is true for a call a replay made (replay traffic, kept apart by default).

    A replay's call is the one with a ``parent_call_id`` (the recorded call it re-ran): every
    replay call has one, and ``calls.source`` says ``replay`` for the same calls.  The parent
    is what every store has: a store read without being migrated (read-only, older schema)
    may predate ``calls.source``.
    """
    return f"{alias}.parent_call_id IS NOT NULL"


@dataclass
class CallFilter:
    """Which calls a listing covers.  ``model``/``backend`` accept ``*`` globs."""

    since: str | None = None
    until: str | None = None
    model: str | None = None
    backend: str | None = None
    status: str | None = None
    tags: list[str] = field(default_factory=list)
    #: False: leave out the calls replays made (``calls``, ``stats``, ``search``, ``tail``
    #: by default); the library's default keeps every call
    include_replays: bool = True

    def where(self, alias: str = "c") -> tuple[str, list[Any]]:
        """SQL conditions (joined by AND; ``1`` when empty) and their parameters."""
        conds: list[str] = []
        args: list[Any] = []
        if self.since:
            conds.append(f"{alias}.started_at >= ?")
            args.append(self.since)
        if self.until:
            conds.append(f"{alias}.started_at < ?")
            args.append(self.until)
        for column in ("model", "backend", "status"):
            value = getattr(self, column)
            if value:
                op = "GLOB" if any(ch in value for ch in "*?[") else "="
                conds.append(f"{alias}.{column} {op} ?")
                args.append(value)
        for tag in self.tags:
            # a call's own tags, or the tags of the prompt it sent
            conds.append(
                f"(EXISTS (SELECT 1 FROM json_each({alias}.tags) WHERE value = ?) OR EXISTS ("
                f"SELECT 1 FROM events p, json_each(p.payload, '$.tags') t "
                f"WHERE p.id = {alias}.prompt_id AND t.value = ?))"
            )
            args.extend([tag, tag])
        if not self.include_replays:
            conds.append(f"NOT ({replay_call_sql(alias)})")
        return (" AND ".join(conds) or "1"), args

    @property
    def empty(self) -> bool:
        return self.include_replays and self.only_replays_excluded

    @property
    def only_replays_excluded(self) -> bool:
        """True when the filter selects every call but, perhaps, the replays'."""
        return not (
            self.since or self.until or self.model or self.backend or self.status or self.tags
        )


def row_dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    """A cursor's rows as dicts keyed by column name."""
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _call_dict(row: dict[str, Any]) -> dict[str, Any]:
    import json

    tags = row.get("tags")
    if isinstance(tags, str):
        with contextlib.suppress(ValueError):
            row["tags"] = json.loads(tags)
    elif tags is None:
        row["tags"] = []
    if "tokens_estimated" in row and row["tokens_estimated"] is not None:
        row["tokens_estimated"] = bool(row["tokens_estimated"])
    return row


def list_calls(
    conn: sqlite3.Connection, flt: CallFilter | None = None, limit: int | None = 50
) -> list[dict[str, Any]]:
    """Calls newest first (by ``started_at``), as dicts of every ``calls`` column."""
    where, args = (flt or CallFilter()).where("c")
    sql = f"SELECT c.* FROM calls c WHERE {where} ORDER BY c.started_at DESC, c.call_id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [_call_dict(r) for r in row_dicts(conn.execute(sql, args))]


def resolve_call_id(conn: sqlite3.Connection, prefix: str) -> str:
    """The full call id for a unique prefix; a clear error when none or several match."""
    text = prefix.strip().lower()
    if not text:
        raise QueryError("no call id given")
    rows = conn.execute(
        "SELECT call_id FROM calls WHERE call_id >= ? AND call_id < ? ORDER BY call_id LIMIT 6",
        (text, text + "\U0010ffff"),
    ).fetchall()
    if not rows:
        raise QueryError(f"no call with id {prefix!r} (list ids with `llm-events calls`)")
    if len(rows) > 1:
        shown = ", ".join(r[0] for r in rows[:5])
        more = " ..." if len(rows) > 5 else ""
        raise QueryError(
            f"call id prefix {prefix!r} is ambiguous: it matches {shown}{more}; give more characters"
        )
    return rows[0][0]


def get_call(conn: sqlite3.Connection, call_id: str) -> dict[str, Any] | None:
    rows = row_dicts(conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)))
    return _call_dict(rows[0]) if rows else None


def get_answer(conn: sqlite3.Connection, call_id: str) -> dict[str, Any] | None:
    """The ``prompts`` row of an answered call (prompt text, response, tokens)."""
    rows = row_dicts(conn.execute("SELECT * FROM prompts WHERE call_id = ?", (call_id,)))
    return rows[0] if rows else None


def call_timeline(conn: sqlite3.Connection, call_id: str) -> list[dict[str, Any]]:
    """Every event of one call in ``seq`` order (its ``prompt_built`` first), as dicts of the
    event's fields plus ``seq`` and ``offset_ms`` (milliseconds since the first event)."""

    rows = conn.execute(
        "SELECT seq, payload FROM events WHERE call_id = ? ORDER BY seq", (call_id,)
    ).fetchall()
    events = [{"seq": seq, **readable_event(payload)} for seq, payload in rows]
    started = next((e for e in events if e.get("type") == "call_started"), None)
    if started is not None and isinstance(started.get("prompt_id"), str):
        row = conn.execute(
            "SELECT seq, payload FROM events WHERE id = ?", (started["prompt_id"],)
        ).fetchone()
        if row is not None:
            events.insert(0, {"seq": row[0], **readable_event(row[1])})
    t0 = None
    for e in events:
        t = _epoch(e.get("ts"))
        if t is None:
            e["offset_ms"] = None
            continue
        if t0 is None:
            t0 = t
        e["offset_ms"] = round((t - t0) * 1000, 3)
    return events


def readable_event(payload: str) -> dict[str, Any]:
    """An event's JSON as a dict whose fields have the types the schema says.

    A stored event that does not match its schema (written by an older version or by hand)
    is shown as :mod:`llm_events.log.salvage` reads it, so formatting never fails on it;
    fields this version does not know are kept as they are.
    """
    import json

    import msgspec

    from . import events as ev

    loose = json.loads(payload)
    if not isinstance(loose, dict):
        return {"type": "unreadable", "value": loose}
    cls = ev.EVENT_CLASSES.get(loose.get("type"))
    if cls is None:
        return loose
    try:
        msgspec.json.decode(payload, type=cls)
    except msgspec.ValidationError:
        read = ev.decode(payload)
        if isinstance(read, ev.UnknownEvent):
            return {
                "type": "unreadable",
                "id": str(loose.get("id", "")),
                "ts": str(loose.get("ts", "")),
            }
        return {**loose, **msgspec.to_builtins(read)}
    return loose


def _epoch(ts: str | None) -> float | None:
    if not ts or not isinstance(ts, str):
        return None
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


# --- the event log ----------------------------------------------------------------------------


def recent_events(
    conn: sqlite3.Connection,
    *,
    after_seq: int = 0,
    until_seq: int | None = None,
    limit: int | None = None,
    flt: CallFilter | None = None,
    types: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Events after ``after_seq`` (oldest first); with ``limit``, only the newest ``limit``.

    Call filters apply to the call an event belongs to (events of no call are then skipped).
    """
    flt = flt or CallFilter()
    conds = ["e.seq > ?"]
    args: list[Any] = [after_seq]
    if until_seq is not None:
        conds.append("e.seq <= ?")
        args.append(until_seq)
    join = ""
    if not flt.include_replays and flt.only_replays_excluded:
        # events of no call (prompt_built) stay; those of replay calls and runs go
        conds.append(
            "e.type NOT LIKE 'replay%' AND NOT EXISTS (SELECT 1 FROM calls c WHERE "
            f"c.call_id = e.call_id AND {replay_call_sql('c')})"
        )
    elif not flt.empty:
        join = "JOIN calls c ON c.call_id = e.call_id"
        where, wargs = flt.where("c")
        conds.append(where)
        args.extend(wargs)
    if types:
        conds.append(f"e.type IN ({','.join('?' * len(types))})")
        args.extend(types)
    sql = (
        f"SELECT e.seq, e.id, e.type, e.call_id, e.ts, e.payload FROM events e {join} "
        f"WHERE {' AND '.join(conds)}"
    )
    if limit is not None:
        rows = row_dicts(conn.execute(sql + " ORDER BY e.seq DESC LIMIT ?", [*args, limit]))
        rows.reverse()
        return rows
    return row_dicts(conn.execute(sql + " ORDER BY e.seq", args))


def export_payloads(
    conn: sqlite3.Connection, flt: CallFilter | None = None, limit: int | None = None
) -> Iterator[str]:
    """Event JSON (one string per event, in ``seq`` order) for ``export``.

    With no filter and no limit: every event.  Otherwise: every event of the selected calls
    plus the ``prompt_built`` events they sent, so the export replays and imports whole calls.
    """
    flt = flt or CallFilter()
    if flt.empty and limit is None:
        last = 0
        while True:
            rows = conn.execute(
                "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT 5000", (last,)
            ).fetchall()
            for _seq, payload in rows:
                yield payload
            if len(rows) < 5000:
                return
            last = rows[-1][0]
    where, args = flt.where("c")
    sql = f"SELECT c.call_id, c.prompt_id FROM calls c WHERE {where} ORDER BY c.started_at DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    selected = conn.execute(sql, args).fetchall()
    call_ids = {r[0] for r in selected}
    prompt_ids = {r[1] for r in selected if r[1]}
    if len(call_ids) > 20_000:  # a large share of the store: one pass over the log
        last = 0
        while True:
            rows = conn.execute(
                "SELECT seq, id, call_id, payload FROM events WHERE seq > ? ORDER BY seq LIMIT 5000",
                (last,),
            ).fetchall()
            for _seq, id_, call_id, payload in rows:
                if call_id in call_ids or id_ in prompt_ids:
                    yield payload
            if len(rows) < 5000:
                return
            last = rows[-1][0]
    found: list[tuple[int, str]] = []
    ids = sorted(call_ids)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        found.extend(
            conn.execute(
                f"SELECT seq, payload FROM events WHERE call_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        )
    pids = sorted(prompt_ids)
    for i in range(0, len(pids), 500):
        chunk = pids[i : i + 500]
        found.extend(
            conn.execute(
                f"SELECT seq, payload FROM events WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        )
    found.sort()
    for _seq, payload in found:
        yield payload


# --- replay runs ------------------------------------------------------------------------------


def list_replays(
    conn: sqlite3.Connection, *, since: str | None = None, limit: int | None = 20
) -> list[dict[str, Any]]:
    """Replay runs newest first: id, when, against, comparator, counts per verdict, status."""
    import json

    sql = "SELECT * FROM replays"
    args: list[Any] = []
    if since:
        sql += " WHERE started_at >= ?"
        args.append(since)
    sql += " ORDER BY started_at DESC, replay_id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    rows = row_dicts(conn.execute(sql, args))
    for row in rows:
        with contextlib.suppress(TypeError, ValueError):
            row["selection"] = json.loads(row.get("selection") or "{}")
        for verdict in ("same", "changed", "error", "skipped"):
            row[verdict] = row.get(verdict) or 0
    return rows

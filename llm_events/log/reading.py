"""Reading the log: what :class:`~llm_events.log.store.EventStore` answers about its events.

A mixin of the store's read side, apart from its write path: every method reads through the
thread's read connection (``conn()``), in ``seq`` order and in chunks, so memory stays bounded
however large the log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from . import events as ev


class StoredEvent(NamedTuple):
    seq: int
    event: ev.Event | ev.UnknownEvent


class EventReading:
    """The read side of the store (needs ``conn()``: a read connection of this thread)."""

    def conn(self) -> sqlite3.Connection:  # pragma: no cover - the store provides it
        raise NotImplementedError

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
        """Whether the log holds this call (its events: projections may be behind)."""
        return (
            self.conn()
            .execute("SELECT 1 FROM events WHERE call_id = ? LIMIT 1", (call_id,))
            .fetchone()
            is not None
        )

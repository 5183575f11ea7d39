"""``tool_calls``: one row per tool call a model made, from ``attempt_succeeded`` events.

It was a view (``json_each`` over every answer's payload): on a store of a million events
that read every answer for each page, 1.9 s, and Datasette interrupted it on a cold cache.
As a table with ``(seq, position)`` as its key, newest-first pages read a few rows, and a
call's or a function's tool calls come from their indexes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .. import events as ev
from ..versions import VERSIONS
from .base import Projection, executemany

#: The columns, as the view had them.
TOOL_CALL_COLUMNS = (
    "seq",
    "ts",
    "call_id",
    "attempt",
    "position",
    "tool_call_id",
    "name",
    "arguments",
)

_INSERT = (
    f"INSERT OR REPLACE INTO tool_calls ({','.join(TOOL_CALL_COLUMNS)}) "
    f"VALUES ({','.join('?' * len(TOOL_CALL_COLUMNS))})"
)


def _kind(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT type FROM sqlite_master WHERE name = 'tool_calls'").fetchone()
    return None if row is None else row[0]


class ToolCallsProjection(Projection):
    """``tool_calls``: each tool call of each answer, its name and arguments as sent."""

    name = "tool_calls"
    # 1: a table (it was a view over ``events``; a store that has the view gets the table)
    version = VERSIONS["tool_calls"]
    tables = ("tool_calls",)
    types = frozenset({"attempt_succeeded"})

    def create(self, conn: sqlite3.Connection) -> None:
        if _kind(conn) == "view":
            conn.execute("DROP VIEW tool_calls")
        conn.execute(
            """CREATE TABLE IF NOT EXISTS tool_calls (
                seq INTEGER NOT NULL,
                ts TEXT,
                call_id TEXT,
                attempt INTEGER,
                position INTEGER NOT NULL,
                tool_call_id TEXT,
                name TEXT,
                arguments TEXT,
                PRIMARY KEY (seq, position)
            ) WITHOUT ROWID"""
        )
        conn.execute("CREATE INDEX IF NOT EXISTS tool_calls_call ON tool_calls(call_id, seq)")
        conn.execute("CREATE INDEX IF NOT EXISTS tool_calls_name ON tool_calls(name, seq)")

    def drop(self, conn: sqlite3.Connection) -> None:
        kind = _kind(conn)
        if kind == "view":
            conn.execute("DROP VIEW tool_calls")
        elif kind == "table":
            conn.execute("DROP TABLE tool_calls")

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        rows = [
            # empty strings as NULL, as the view read the (omitted) defaults
            (seq, e.ts, e.call_id, e.attempt, i, c.id, c.name or None, c.arguments or None)
            for seq, e in batch
            if isinstance(e, ev.AttemptSucceeded) and e.tool_calls
            for i, c in enumerate(e.tool_calls)
        ]
        if rows:
            executemany(conn, _INSERT, rows)

"""How far projections are behind the log, and bringing them up for a reading command.

Imports nothing but ``sqlite3`` until there is work to do, so reading commands stay fast
when (as almost always) the projections are at the head of the log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path


def lag(conn: sqlite3.Connection, names: Sequence[str] | None = None) -> int:
    """Events committed that the slowest projection has not applied yet (0: up to date)."""
    try:
        row = conn.execute(
            "SELECT (SELECT ifnull(max(seq), 0) FROM events), "
            "(SELECT min(last_seq) FROM _projections"
            + (f" WHERE name IN ({','.join('?' * len(names))})" if names else "")
            + ")",
            tuple(names or ()),
        ).fetchone()
    except sqlite3.OperationalError:  # not a store (yet), or an older layout
        return 0
    head, slowest = row
    return max(0, head - (slowest if slowest is not None else head))


def bring_up_to_date(path: str | Path, conn: sqlite3.Connection) -> int:
    """Catch the projections of the store at ``path`` up (if they lag and the file can be
    written); returns the events still not applied (0: up to date)."""
    behind = lag(conn)
    if not behind:
        return 0
    try:
        from .store import EventStore

        EventStore(path, busy_timeout_ms=2000).close()  # opening catches up; close flushes
    except Exception:  # noqa: BLE001 - a reader that cannot write reports the lag instead
        pass
    return lag(conn)


def lag_note(behind: int) -> str:
    return (
        f"note: the {behind} newest events are not in the tables yet (projections are "
        "behind the log and this store could not be written to bring them up to date; "
        "the next process that writes to it does)"
    )

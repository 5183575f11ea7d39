"""How far projections are behind the log, and bringing them up for a reading command.

Imports nothing but ``sqlite3`` until there is work to do, so reading commands stay fast
when (as almost always) the projections are at the head of the log.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path


def lag(conn: sqlite3.Connection, names: Sequence[str] | None = None) -> int:
    """Events committed that the slowest projection has not applied yet (0: up to date)."""
    head, slowest = positions(conn, names)
    return max(0, head - slowest)


def positions(conn: sqlite3.Connection, names: Sequence[str] | None = None) -> tuple[int, int]:
    """The log's head and the slowest projection's checkpoint (``seq``; equal when there
    is nothing to apply, or the file is not a store)."""
    try:
        row = conn.execute(
            "SELECT (SELECT ifnull(max(seq), 0) FROM events), "
            "(SELECT min(last_seq) FROM _projections"
            + (f" WHERE name IN ({','.join('?' * len(names))})" if names else "")
            + ")",
            tuple(names or ()),
        ).fetchone()
    except sqlite3.OperationalError:  # not a store (yet), or an older layout
        return 0, 0
    head, slowest = row
    return head, (slowest if slowest is not None else head)


def stale(conn: sqlite3.Connection) -> list[str]:
    """The projections this version lays out differently from the file (or that the file
    lacks): they are rebuilt by the next process that can write to it."""
    from .versions import VERSIONS

    try:
        have = dict(conn.execute("SELECT name, version FROM _projections").fetchall())
    except sqlite3.OperationalError:  # not a store (yet), or an older layout
        return []
    if not have:
        return []
    return [name for name, version in VERSIONS.items() if have.get(name) != version]


def bring_up_to_date(path: str | Path, conn: sqlite3.Connection) -> int:
    """Catch the projections of the store at ``path`` up, and rebuild those an older
    version laid out (if the file can be written); returns the events still not applied
    (0: up to date)."""
    behind = lag(conn)
    if not behind and not stale(conn):
        return 0
    try:
        from .store import EventStore

        EventStore(path, busy_timeout_ms=2000).close()  # opening catches up; close flushes
    except Exception:  # noqa: BLE001 - a reader that cannot write reports the lag instead
        pass
    return lag(conn)


def upgrade_note(path: str | Path, names: Sequence[str]) -> str:
    return (
        f"note: upgrading the {', '.join(names)} table{'s' if len(names) > 1 else ''} of "
        f"{path} to this version of llm-events (once; rebuilt from the log, which is "
        "untouched)"
    )


def lag_note(behind: int) -> str:
    return (
        f"note: the {behind} newest events are not in the tables yet (projections are "
        "behind the log and this store could not be written to bring them up to date; "
        "the next process that writes to it does)"
    )


def follow(path: str | Path, parent_pid: int, interval_s: float = 1.0) -> int | None:
    """Keep the projections and search index of ``path`` caught up while process
    ``parent_pid`` lives (``browse``: Datasette only reads, and the writers of a store may
    have been killed before their background thread caught up).

    Forks a small child that polls every ``interval_s``; returns its pid in the parent (None
    where there is no ``fork``).  The child never returns.
    """
    if not hasattr(os, "fork"):
        return None
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: quiet, detached from the terminal's signals
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        from .fts import catch_up as index_pending

        while True:
            time.sleep(interval_s)
            try:
                os.kill(parent_pid, 0)
            except OSError:
                break
            try:
                conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
                try:
                    bring_up_to_date(path, conn)
                finally:
                    conn.close()
                index_pending(path)
            except Exception:  # noqa: BLE001,S110 - best effort: try again next round
                pass
    finally:
        os._exit(0)

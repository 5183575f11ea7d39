"""Read-only connections that work on read-only directories and file systems too.

SQLite reads a WAL file through its shared-memory file (``-shm``); where that cannot be
created (a read-only directory or mount, a store on a CD or in a read-only container layer)
``mode=ro`` fails with "unable to open database file".  Nothing can write the file there,
so it is then opened ``immutable``: read as it is, without locks or shared memory.  Imports
nothing but ``sqlite3`` (reading commands start fast).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect_readonly(
    path: str | Path, busy_timeout_ms: int = 10_000
) -> tuple[sqlite3.Connection, bool]:
    """``(connection, immutable)`` for reading the SQLite file at ``path``."""
    uri = Path(path).resolve().as_uri()
    conn = sqlite3.connect(
        f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, False
    except sqlite3.OperationalError as e:
        if "unable to open" not in str(e) and "readonly" not in str(e):
            conn.close()
            raise
        conn.close()
    conn = sqlite3.connect(
        f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False
    )
    return conn, True

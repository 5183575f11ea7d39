"""The store file's layout: tables, indexes, triggers, and migrations of older files.

``PRAGMA user_version`` is the layout version; an older file is migrated in place inside one
write transaction, a newer one is refused.  The ``_projections`` table is each projection's
checkpoint: its version and the last ``seq`` it applied (see :mod:`.catchup`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from . import blobs
from .views import VIEW_SQL

#: Version of the file layout this code writes; older files are migrated in place.
#: 2: ``events_type`` indexes only the sparse event types (see SPARSE_TYPES).
#: 3: projections run behind the log: ``_projections.last_seq`` is each one's checkpoint.
STORE_SCHEMA_VERSION = 3
#: Written to ``PRAGMA application_id`` so a file can be recognised as ours ("LLME").
APPLICATION_ID = 0x4C4C4D45
#: The ``prev_hash`` of the first event.
GENESIS = ""

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
EVENTS_TYPE_INDEX = "CREATE INDEX IF NOT EXISTS events_type ON events(type, seq) WHERE " + (
    " OR ".join(f"type = '{t}'" for t in SPARSE_TYPES)
)

#: The triggers that make ``events`` append-only (``verify`` reports any that are missing).
TRIGGERS = {
    "events_no_update": """CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN
        SELECT RAISE(ABORT, 'events is append-only: UPDATE is not allowed');
    END""",
    "events_no_delete": """CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN
        SELECT RAISE(ABORT, 'events is append-only: DELETE is not allowed');
    END""",
}

SCHEMA = [
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
    EVENTS_TYPE_INDEX,
    *TRIGGERS.values(),
    "CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS _projections (
        name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL
    )""",
    blobs.CREATE_SQL,  # inline bytes by sha256 (older files get it with their first blob)
    *VIEW_SQL,  # views flattening event payloads (llm_events.log.views), for browsing
]


class NotAStore(Exception):
    """The file is SQLite but not ours (message: why)."""


def is_legacy_prompt_log(conn: sqlite3.Connection, tables: set[str]) -> bool:
    """A file written by the original PromptDB: only a ``prompts`` table of its shape."""
    if tables - {"prompts", "sqlite_sequence"} or "prompts" not in tables:
        return False
    columns = {r[1] for r in conn.execute("PRAGMA table_info(prompts)")}
    return {"text", "response_text"} <= columns


def projections_current(conn: sqlite3.Connection, projections: Sequence[Any]) -> bool:
    try:
        have = dict(conn.execute("SELECT name, version FROM _projections").fetchall())
    except sqlite3.OperationalError:
        return False
    return all(have.get(p.name) == p.version for p in projections)


def migrate(conn: sqlite3.Connection, path: str | None, projections: Sequence[Any]) -> tuple:
    """Bring the file to this layout, inside the caller's write transaction.

    Returns ``(stale, legacy)``: the projections to rebuild (new, or of another version)
    and whether the file was the original PromptDB's (its rows are imported afterwards).
    """
    legacy = False
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        legacy = "events" not in tables and is_legacy_prompt_log(conn, tables)
        if tables and "events" not in tables and not legacy:
            raise NotAStore(
                f"{path} is an SQLite file but not an llm-events store "
                f"(it has tables {', '.join(sorted(tables)[:5])})"
            )
        if legacy:
            conn.execute("ALTER TABLE prompts RENAME TO prompts_legacy")
        for stmt in SCHEMA:
            conn.execute(stmt)
        conn.execute(
            "INSERT OR IGNORE INTO _meta(key, value) VALUES ('head', ?)", (f"0:{GENESIS}",)
        )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    else:
        if version == 1:
            conn.execute("DROP INDEX IF EXISTS events_type")  # it covered every type
            conn.execute(EVENTS_TYPE_INDEX)
        if version < 3:
            # projections were applied in the append's own transaction: a current version
            # was at the head of the log, whatever its last rebuild recorded
            conn.execute(
                "UPDATE _projections SET last_seq = (SELECT ifnull(max(seq), 0) FROM events)"
            )
    conn.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION}")
    have = dict(conn.execute("SELECT name, version FROM _projections").fetchall())
    stale = [p for p in projections if have.get(p.name) != p.version]
    return stale, legacy

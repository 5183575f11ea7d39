"""The full-text index of prompts, answers and tool calls, filled in batches a little behind ``prompts``.

Indexing answered calls one at a time costs more than anything else a recorded call writes:
FTS5 adds an index segment per transaction, a third of the pages a call commits and a fifth
of its recording time.  So ``prompts_fts`` (external content: it indexes ``prompts`` rows)
is filled in batches, by whoever writes next:

* the append whose process has added :data:`FTS_BATCH` unindexed rows,
* the store's background thread, once appends pause (well under a second behind),
* ``flush``, ``close`` and exit, and ``search`` and ``browse`` before they read.

``_meta`` row :data:`INDEXED_KEY` holds the highest ``prompts.id`` indexed (``prompts`` ids
only grow: rows are inserted, never deleted, and a rebuild re-indexes everything).  This
module imports nothing else of ours, so reading commands use it without loading the store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: An append indexes once its process has added this many unindexed ``prompts`` rows.
FTS_BATCH = 64
#: The ``_meta`` key holding the highest ``prompts.id`` in ``prompts_fts``.
INDEXED_KEY = "prompts_fts_indexed"


def indexed_upto(conn: sqlite3.Connection) -> int | None:
    """The highest ``prompts.id`` in the index; ``None`` for a file whose index is kept by a
    trigger (written before batches; its ``prompts`` projection is rebuilt when opened)."""
    try:
        row = conn.execute("SELECT value FROM _meta WHERE key = ?", (INDEXED_KEY,)).fetchone()
    except sqlite3.OperationalError:  # not a store (yet)
        return None
    return int(row[0]) if row is not None else None


def _top(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT max(id) FROM prompts").fetchone()[0] or 0


def behind(conn: sqlite3.Connection) -> bool:
    """Whether some ``prompts`` row is not in the index yet."""
    last = indexed_upto(conn)
    return last is not None and _top(conn) > last


def unindexed(conn: sqlite3.Connection) -> int:
    """How many ``prompts`` rows the index does not hold yet."""
    last = indexed_upto(conn)
    if last is None or _top(conn) <= last:
        return 0
    return conn.execute("SELECT count(*) FROM prompts WHERE id > ?", (last,)).fetchone()[0]


def index_pending(conn: sqlite3.Connection, limit: int | None = None) -> int:
    """Index the rows added since the last batch (the next ``limit`` of them); inside the
    caller's write transaction."""
    last = indexed_upto(conn)
    top = _top(conn)
    if last is None or top <= last:
        return 0
    if limit is not None:
        top = min(top, last + limit)
    added = conn.execute(
        "INSERT INTO prompts_fts(rowid, text, response_text, tool_calls) "
        "SELECT id, text, response_text, tool_calls FROM prompts WHERE id > ? AND id <= ?",
        (last, top),
    ).rowcount
    mark_indexed(conn, top)
    return added


def mark_indexed(conn: sqlite3.Connection, upto: int | None = None) -> None:
    """Record that the index holds every row up to ``upto`` (default: all of them)."""
    if upto is None:
        upto = _top(conn)
    conn.execute("INSERT OR REPLACE INTO _meta(key, value) VALUES (?, ?)", (INDEXED_KEY, str(upto)))


#: FTS5 options while a rebuild indexes every row: its pending terms held in memory up to
#: 64 MB (one segment per transaction of ``SETTLE_ROWS`` rows, not one per megabyte) and
#: no merging of segments as they come (later writes merge them, as FTS5 always does):
#: about a third less work for the index of 1,000,000 events.  FTS5 stores them in
#: ``prompts_fts_config``.
BULK_OPTIONS = (("hashsize", 64 * 1024 * 1024), ("automerge", 0))
#: FTS5's own defaults of those options, set back when the rebuild ends.
DEFAULT_OPTIONS = (("hashsize", 1024 * 1024), ("automerge", 4))
#: The entry a rebuild leaves among the work for its end (``catchup.restore_index``) to set
#: them back; a comment, so that any code that runs it as SQL does nothing.
END_BULK = "-- llm-events: the search index's options back to FTS5's defaults"


def begin_bulk(conn: sqlite3.Connection) -> None:
    """Set :data:`BULK_OPTIONS` on ``prompts_fts`` (inside the caller's transaction)."""
    for key, value in BULK_OPTIONS:
        conn.execute("INSERT INTO prompts_fts(prompts_fts, rank) VALUES (?, ?)", (key, value))


def end_bulk(conn: sqlite3.Connection) -> None:
    """Put FTS5's defaults back and leave ``prompts_fts_config`` as it was before
    :func:`begin_bulk`: setting them bumps the index's cookie, so every connection reads
    its options again, and finds none stored (the defaults)."""
    try:
        for key, value in DEFAULT_OPTIONS:
            conn.execute("INSERT INTO prompts_fts(prompts_fts, rank) VALUES (?, ?)", (key, value))
    except sqlite3.OperationalError:  # no index (a store whose prompts are not rebuilt yet)
        return
    conn.execute(
        f"DELETE FROM prompts_fts_config WHERE k IN ({','.join('?' * len(DEFAULT_OPTIONS))})",
        [key for key, _value in DEFAULT_OPTIONS],
    )


def catch_up(path: str | Path, busy_timeout_ms: int = 5000) -> int | None:
    """Index what is pending in the store at ``path``, in a transaction of its own.

    Returns the rows indexed, or ``None`` when the file cannot be written (read-only file or
    directory, busy past the timeout): the index then stays behind until a writer comes.
    """
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout_ms / 1000)
    except sqlite3.Error:
        return None
    try:
        if unindexed(conn) == 0:
            return 0  # nothing to do: no write lock taken
        conn.execute("BEGIN IMMEDIATE")
        try:
            added = index_pending(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return added
    except sqlite3.Error:
        return None
    finally:
        conn.close()

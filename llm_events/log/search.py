"""Full-text search over answered calls: prompt, answer and tool-call text (``prompts_fts``).

The CLI's ``search`` and scripts share it; filters mean what they mean in ``calls``
(:class:`~llm_events.log.queries.CallFilter`).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from .queries import CallFilter, QueryError, row_dicts


def fts_query(text: str) -> str:
    """User text -> an FTS5 query matching every word (quoted, so ``<`` or ``"`` are harmless)."""
    words = [w for w in re.split(r"\s+", text.strip()) if w]
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


#: ``search`` ranks at most this many matches, the newest (BM25 over every match of a common
#: word in a million-event store costs more than the whole command should).
RANK_WINDOW = 5000


def search(
    conn: sqlite3.Connection,
    text: str,
    flt: CallFilter | None = None,
    limit: int = 20,
    *,
    rank_window: int | None = RANK_WINDOW,
) -> list[dict[str, Any]]:
    """Answered calls whose prompt, answer or tool calls contain every word of ``text``, best
    match first.

    Ranking is BM25 over the newest ``rank_window`` matches (``None``: over all of them).
    """
    query = fts_query(text)
    if not query:
        raise QueryError("nothing to search for")
    flt = flt or CallFilter()
    where, args = flt.where("c")
    join = (
        ""
        if flt.empty
        else "JOIN prompts p ON p.id = f.rowid JOIN calls c ON c.call_id = p.call_id"
    )
    window = "" if rank_window is None else "ORDER BY f.rowid DESC LIMIT ?"
    window_args = [] if rank_window is None else [rank_window]
    # a store whose prompts projection predates tool calls (opened read-only, not migrated)
    tools = _has_column(conn, "prompts", "tool_calls")
    tool_cols = (
        "snippet(prompts_fts, 2, char(2), char(3), '…', 12) AS tool_snippet, "
        "p.tool_calls AS tool_calls"
        if tools
        else "NULL AS tool_snippet, NULL AS tool_calls"
    )
    # 1. candidates (the newest matches), 2. the best `limit` of them by rank, 3. snippets
    # for those rows only, each looked up by rowid (CROSS JOIN keeps that order)
    sql = f"""
        WITH candidates AS (
            SELECT f.rowid AS id, f.rank AS score FROM prompts_fts f {join}
            WHERE prompts_fts MATCH ? AND {where} {window}
        ),
        hits AS (SELECT id, score FROM candidates ORDER BY score LIMIT ?)
        SELECT p.call_id, p.timestamp, p.model, p.backend, hits.score AS score,
               snippet(prompts_fts, 0, '[', ']', '…', 12) AS prompt_snippet,
               snippet(prompts_fts, 1, char(2), char(3), '…', 12) AS answer_snippet,
               {tool_cols},
               p.text AS prompt, p.response_text AS answer
        FROM hits
        CROSS JOIN prompts_fts ON prompts_fts.rowid = hits.id
        JOIN prompts p ON p.id = hits.id
        WHERE prompts_fts MATCH ?
        ORDER BY hits.score
    """
    rows = row_dicts(conn.execute(sql, [query, *args, *window_args, limit, query]))
    for r in rows:
        # the answer's snippet, or its tool calls' when only they matched
        answer, tool = r["answer_snippet"] or "", r.pop("tool_snippet") or ""
        if "\x02" not in answer and "\x02" in tool:
            answer = tool if not r["answer"] else f"{answer} | {tool}"
        r["answer_snippet"] = answer.replace("\x02", "[").replace("\x03", "]")
    return rows


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(r[1] == column for r in conn.execute(f"PRAGMA table_info({table})"))

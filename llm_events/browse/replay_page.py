"""What the replay page (``/-/replays/{replay_id}``) shows: the run, counts per verdict, and
each changed or failed call with its prompt and both answers diffed word by word.

Every query goes through an index: ``replay_results(replay_id, verdict)`` for the run's rows,
the primary keys of ``calls`` and ``prompts(call_id)`` for each row's texts, and a page holds
at most :data:`PAGE` rows, so the page costs the same on any size of store.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any

from ..log.queries import QueryError
from .worddiff import word_diff

#: Rows per page.
PAGE = 50
VERDICTS = ("changed", "error", "same")


def find_replay(conn: sqlite3.Connection, prefix: str) -> str:
    """The full replay id for a unique prefix; ``QueryError`` when none or several match."""
    text = prefix.strip().lower()
    rows = conn.execute(
        "SELECT replay_id FROM replays WHERE replay_id >= ? AND replay_id < ? LIMIT 2",
        (text, text + "\U0010ffff"),
    ).fetchall()
    if not rows:
        # a run whose replay_started is missing still has results
        rows = conn.execute(
            "SELECT DISTINCT replay_id FROM replay_results WHERE replay_id >= ? AND replay_id < ? "
            "LIMIT 2",
            (text, text + "\U0010ffff"),
        ).fetchall()
    if not text or not rows:
        raise QueryError(f"no replay run with id {prefix!r} (list runs with `llm-events replays`)")
    if len(rows) > 1:
        raise QueryError(f"replay id prefix {prefix!r} is ambiguous: give more characters")
    return rows[0][0]


def replay_page(
    conn: sqlite3.Connection, replay_id: str, verdict: str | None = None, offset: int = 0
) -> dict[str, Any]:
    """The run, its counts, and one page of results (default: changed and error ones)."""
    run = _run(conn, replay_id)
    counts = dict(
        conn.execute(
            "SELECT verdict, count(*) FROM replay_results WHERE replay_id = ? GROUP BY verdict",
            (replay_id,),
        ).fetchall()
    )
    shown = [verdict] if verdict in VERDICTS else ["changed", "error"]
    marks = ",".join("?" * len(shown))
    rows = conn.execute(
        "SELECT id, source_call_id, replay_call_id, verdict, score, reason, compare, diff, "
        "latency_delta_ms, cost_delta FROM replay_results "
        f"WHERE replay_id = ? AND verdict IN ({marks}) ORDER BY id LIMIT ? OFFSET ?",
        (replay_id, *shown, PAGE + 1, offset),
    ).fetchall()
    names = [
        "id",
        "source_call_id",
        "replay_call_id",
        "verdict",
        "score",
        "reason",
        "compare",
        "diff",
        "latency_delta_ms",
        "cost_delta",
    ]
    results = [_result(conn, dict(zip(names, r, strict=True))) for r in rows[:PAGE]]
    return {
        "run": run,
        "replay_id": replay_id,
        "counts": {v: counts.get(v, 0) for v in VERDICTS},
        "total": sum(counts.values()),
        "verdict": verdict if verdict in VERDICTS else None,
        "results": results,
        "offset": offset,
        "more": len(rows) > PAGE,
        "page": PAGE,
    }


def _run(conn: sqlite3.Connection, replay_id: str) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM replays WHERE replay_id = ?", (replay_id,))
    row = cur.fetchone()
    if row is None:
        return {"replay_id": replay_id}
    run = dict(zip([d[0] for d in cur.description], row, strict=True))
    with contextlib.suppress(ValueError):
        run["selection"] = json.loads(run.get("selection") or "{}")
    return run


def _texts(conn: sqlite3.Connection, call_id: str | None) -> dict[str, Any]:
    """A call's prompt, answer and error (empty when the call is not in the store)."""
    if not call_id:
        return {}
    out: dict[str, Any] = {}
    row = conn.execute(
        "SELECT status, model, backend, error_type, error_message, latency_ms, cost, "
        "prompt_preview, response_preview FROM calls WHERE call_id = ?",
        (call_id,),
    ).fetchone()
    if row is not None:
        keys = [
            "status",
            "model",
            "backend",
            "error_type",
            "error_message",
            "latency_ms",
            "cost",
            "prompt",
            "answer",
        ]
        out.update(zip(keys, row, strict=True))
    full = conn.execute(
        "SELECT text, system, response_text FROM prompts WHERE call_id = ?", (call_id,)
    ).fetchone()
    if full is not None:
        out["prompt"], out["system"], out["answer"] = full
    return out


def _result(conn: sqlite3.Connection, r: dict[str, Any]) -> dict[str, Any]:
    recorded = _texts(conn, r["source_call_id"])
    new = _texts(conn, r["replay_call_id"])
    if r["verdict"] == "error" or new.get("status") == "error":
        left, right = [("same", recorded.get("answer") or "")], []
    else:
        left, right = word_diff(recorded.get("answer") or "", new.get("answer") or "")
    return {**r, "recorded": recorded, "new": new, "left": left, "right": right}

"""Statistics of calls per model and backend: counts, failures, retries, fallbacks, tokens,
cost and latency percentiles (the CLI's ``stats``; the dashboard shares ``percentile``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .queries import CallFilter, row_dicts


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (``None`` for an empty one)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def stats(conn: sqlite3.Connection, flt: CallFilter | None = None) -> dict[str, Any]:
    """Counts, failure rate, retries, fallbacks, tokens, cost, latency p50/p95 per model+backend.

    Returns ``{"groups": [...], "total": {...}}``; each entry has the same keys.
    """
    where, args = (flt or CallFilter()).where("c")
    groups: dict[tuple[Any, Any], dict[str, Any]] = {}
    latencies: dict[tuple[Any, Any], list[float]] = {}
    sql = f"""
        SELECT c.model, c.backend, count(*) AS calls,
               sum(c.status = 'ok') AS ok, sum(c.status = 'error') AS failed,
               sum(c.status NOT IN ('ok', 'error')) AS running,
               sum(c.retries) AS retries, sum(c.fallbacks > 0) AS fell_back,
               sum(c.fallbacks) AS fallbacks,
               sum(coalesce(c.input_tokens, 0)) AS input_tokens,
               sum(coalesce(c.output_tokens, 0)) AS output_tokens,
               sum(c.cost) AS cost
        FROM calls c WHERE {where}
        GROUP BY +c.model, +c.backend
    """  # unary +: group in a temp b-tree; scanning calls_model would ignore the time range
    for row in row_dicts(conn.execute(sql, args)):
        groups[(row["model"], row["backend"])] = row
    lat_sql = (
        f"SELECT c.model, c.backend, c.latency_ms FROM calls c "
        f"WHERE {where} AND c.latency_ms IS NOT NULL"
    )
    for model, backend, latency in conn.execute(lat_sql, args):
        latencies.setdefault((model, backend), []).append(latency)
    all_latencies: list[float] = []
    out = []
    for key, row in sorted(groups.items(), key=lambda kv: (-kv[1]["calls"], str(kv[0]))):
        values = sorted(latencies.get(key, []))
        all_latencies.extend(values)
        out.append(_finish_stats(row, values))
    total: dict[str, Any] = {"model": None, "backend": None}
    for name in (
        "calls",
        "ok",
        "failed",
        "running",
        "retries",
        "fell_back",
        "fallbacks",
        "input_tokens",
        "output_tokens",
    ):
        total[name] = sum(r[name] or 0 for r in out)
    costs = [r["cost"] for r in out if r["cost"] is not None]
    total["cost"] = sum(costs) if costs else None
    all_latencies.sort()
    return {"groups": out, "total": _finish_stats(total, all_latencies)}


def _finish_stats(row: dict[str, Any], latencies: list[float]) -> dict[str, Any]:
    for name in ("ok", "failed", "running", "retries", "fell_back", "fallbacks"):
        row[name] = row.get(name) or 0
    finished = row["ok"] + row["failed"]
    row["failure_rate"] = (row["failed"] / finished) if finished else None
    row["p50_ms"] = percentile(latencies, 50)
    row["p95_ms"] = percentile(latencies, 95)
    return row

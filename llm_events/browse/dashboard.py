"""The dashboard's figures: calls, errors, latency p50/p95, tokens and cost per day and model.

Two passes over the ``calls`` rows of the period (one grouped in SQL, one reading only the
latencies for the percentiles) and one indexed query for the newest failures.  Results are
kept per store and period until the ``calls`` projection moves on (its ``last_seq`` in
``_projections``), so a reload of an idle store costs one tiny query.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from ..log.queries import percentile, replay_call_sql

#: How many models get a series of their own; the rest are summed as "other".
TOP_MODELS = 8
NEWEST_FAILURES = 12

_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
_cache_lock = threading.Lock()


def _position(conn: sqlite3.Connection) -> Any:
    try:
        row = conn.execute("SELECT last_seq FROM _projections WHERE name = 'calls'").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def dashboard(
    conn: sqlite3.Connection, *, days: int = 30, include_replays: bool = False, key: Any = None
) -> dict[str, Any]:
    """The figures for the last ``days`` days (0: all time), replay calls left out by default."""
    cache_key = (key, days, include_replays, _position(conn))
    with _cache_lock:
        hit = _cache.get(cache_key)
    if hit is not None:
        return hit
    result = _compute(conn, days, include_replays)
    with _cache_lock:
        if len(_cache) > 32:
            _cache.clear()
        _cache[cache_key] = result
    return result


def _compute(conn: sqlite3.Connection, days: int, include_replays: bool) -> dict[str, Any]:
    conds, args = [], []
    if days:
        since = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d")
        conds.append("c.started_at >= ?")
        args.append(since)
    if not include_replays:
        conds.append(f"NOT ({replay_call_sql('c')})")
    where = " AND ".join(conds) or "1"
    grouped = conn.execute(
        "SELECT substr(c.started_at, 1, 10) AS day, c.model, count(*), "
        "sum(c.status = 'error'), sum(coalesce(c.input_tokens, 0)), "
        "sum(coalesce(c.output_tokens, 0)), sum(c.cost) "
        f"FROM calls c WHERE {where} GROUP BY day, c.model",
        args,
    ).fetchall()
    latencies: dict[str, list[float]] = {}
    for day, ms in conn.execute(
        f"SELECT substr(c.started_at, 1, 10), c.latency_ms FROM calls c "
        f"WHERE {where} AND c.latency_ms IS NOT NULL",
        args,
    ):
        latencies.setdefault(day, []).append(ms)
    failures = conn.execute(
        "SELECT c.call_id, c.started_at, c.model, c.backend, c.error_type, c.error_message, "
        f"c.attempts, c.prompt_preview FROM calls c WHERE c.status = 'error' AND {where} "
        "ORDER BY c.started_at DESC LIMIT ?",
        [*args, NEWEST_FAILURES],
    ).fetchall()

    day_list = sorted({r[0] for r in grouped if r[0]})
    index = {d: i for i, d in enumerate(day_list)}
    per_model: dict[str, dict[str, float]] = {}
    totals = {"calls": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0.0}
    per_day = {
        name: [0] * len(day_list) for name in ("calls", "errors", "input_tokens", "output_tokens")
    }
    cost_day = [0.0] * len(day_list)
    for day, model, n, errors, tin, tout, cost in grouped:
        if day not in index:
            continue
        i = index[day]
        per_day["calls"][i] += n
        per_day["errors"][i] += errors or 0
        per_day["input_tokens"][i] += tin or 0
        per_day["output_tokens"][i] += tout or 0
        cost_day[i] += cost or 0.0
        m = per_model.setdefault(model or "-", {"calls": 0, "errors": 0, "tokens": 0, "cost": 0.0})
        m["calls"] += n
        m["errors"] += errors or 0
        m["tokens"] += (tin or 0) + (tout or 0)
        m["cost"] += cost or 0.0
        totals["calls"] += n
        totals["errors"] += errors or 0
        totals["input_tokens"] += tin or 0
        totals["output_tokens"] += tout or 0
        totals["cost"] += cost or 0.0
    models = sorted(per_model, key=lambda m: (-per_model[m]["calls"], m))
    top = models[:TOP_MODELS]
    series_calls = {m: [0] * len(day_list) for m in top}
    series_cost = {m: [0.0] * len(day_list) for m in top}
    if len(models) > TOP_MODELS:
        series_calls["other"] = [0] * len(day_list)
        series_cost["other"] = [0.0] * len(day_list)
    for day, model, n, _errors, _tin, _tout, cost in grouped:
        if day not in index:
            continue
        name = (model or "-") if (model or "-") in series_calls else "other"
        series_calls[name][index[day]] += n
        series_cost[name][index[day]] += cost or 0.0
    p50, p95, all_ms = [], [], []
    for day in day_list:
        values = sorted(latencies.get(day, []))
        all_ms.extend(values)
        p50.append(percentile(values, 50))
        p95.append(percentile(values, 95))
    all_ms.sort()
    fail_names = [
        "call_id",
        "started_at",
        "model",
        "backend",
        "error_type",
        "error_message",
        "attempts",
        "prompt_preview",
    ]
    totals["p50_ms"] = percentile(all_ms, 50)
    totals["p95_ms"] = percentile(all_ms, 95)
    totals["failure_rate"] = totals["errors"] / totals["calls"] if totals["calls"] else None
    return {
        "days": day_list,
        "per_day": {**per_day, "cost": [round(c, 6) for c in cost_day], "p50": p50, "p95": p95},
        "calls_by_model": series_calls,
        "cost_by_model": {m: [round(c, 6) for c in v] for m, v in series_cost.items()},
        "models": [{"model": m, **per_model[m]} for m in models],
        "totals": totals,
        "failures": [dict(zip(fail_names, r, strict=True)) for r in failures],
    }

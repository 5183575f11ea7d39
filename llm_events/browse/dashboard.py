"""The dashboard's figures: calls, errors, latency p50/p95, tokens and cost per day and model.

Reading every ``calls`` row of a month costs about a second on a store of a million events,
so figures are kept per UTC day.  A day is read again only when it may have changed: today
and yesterday always, an older day when its fingerprint moves, that is its number of calls,
of failed calls or of running calls (three index-only counts over ``calls_started`` and
``calls_status``: an imported call, or a call closed later as interrupted, shows up there).
What no fingerprint sees is a cost or latency rewritten in place without a status change,
which only a ``rebuild`` after a pricing change does; a restart of ``browse`` clears it.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..log.lag import lag
from ..log.queries import replay_call_sql
from ..log.stats import percentile

#: How many models get a series of their own; the rest are summed as "other".
TOP_MODELS = 8
NEWEST_FAILURES = 12
#: Days this close to today (UTC) are always read again: their calls are still arriving.
LIVE_DAYS = 2

_lock = threading.Lock()


@dataclass
class _Day:
    """One day's figures, for application calls and for replay calls apart."""

    fingerprint: tuple[int, int, int]
    #: (model, is_replay) -> [calls, errors, input tokens, output tokens, cost, priced calls,
    #: answered calls without a price]
    groups: dict[tuple[str, bool], list[float]] = field(default_factory=dict)
    #: is_replay -> sorted latencies (ms)
    latencies: dict[bool, array] = field(default_factory=dict)


#: store key -> day -> figures
_days: dict[Any, dict[str, _Day]] = {}


def _indexed_by(conn: sqlite3.Connection, index: str) -> str:
    """``INDEXED BY index`` when the index is there: an upgrade or rebuild running in
    another process drops the secondary indexes and makes them again after the rows, and
    SQLite refuses a query that names a missing one ("no such index")."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)
    ).fetchone()
    return f"INDEXED BY {index}" if found else ""


def _fingerprints(conn: sqlite3.Connection, since: str) -> dict[str, tuple[int, int, int]]:
    counts: dict[str, list[int]] = {}
    for day, n in conn.execute(
        f"SELECT substr(started_at, 1, 10), count(*) FROM calls {_indexed_by(conn, 'calls_started')} "
        "WHERE started_at >= ? GROUP BY 1",
        (since,),
    ):
        counts[day] = [n, 0, 0]
    by_status = _indexed_by(conn, "calls_status")
    for i, status in ((1, "error"), (2, "running")):
        for day, n in conn.execute(
            f"SELECT substr(started_at, 1, 10), count(*) FROM calls {by_status} "
            "WHERE status = ? AND started_at >= ? GROUP BY 1",
            (status, since),
        ):
            counts.setdefault(day, [0, 0, 0])[i] = n
    return {d: (c[0], c[1], c[2]) for d, c in counts.items() if d}


def _read_day(conn: sqlite3.Connection, day: str, fingerprint: tuple[int, int, int]) -> _Day:
    start = day
    end = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    out = _Day(fingerprint)
    lat: dict[bool, list[float]] = {False: [], True: []}
    replay = replay_call_sql("c")
    for model, is_replay, status, tin, tout, cost, ms in conn.execute(
        f"SELECT c.model, {replay}, c.status, c.input_tokens, c.output_tokens, c.cost, "
        "c.latency_ms FROM calls c WHERE c.started_at >= ? AND c.started_at < ?",
        (start, end),
    ):
        key = (model or "-", bool(is_replay))
        g = out.groups.get(key)
        if g is None:
            g = out.groups[key] = [0, 0, 0, 0, 0.0, 0, 0]
        g[0] += 1
        g[1] += status == "error"
        g[2] += tin or 0
        g[3] += tout or 0
        g[4] += cost or 0.0
        g[5] += cost is not None
        g[6] += cost is None and status == "ok"
        if ms is not None:
            lat[bool(is_replay)].append(ms)
    out.latencies = {k: array("d", sorted(v)) for k, v in lat.items()}
    return out


def _day_figures(conn: sqlite3.Connection, key: Any, since: str) -> dict[str, _Day]:
    """Every day since ``since`` with calls, read again only where it may have changed."""
    today = datetime.now(UTC).date()
    live = (today - timedelta(days=LIVE_DAYS - 1)).isoformat()
    prints = _fingerprints(conn, since)
    with _lock:
        cached = dict(_days.get(key, {}))
    fresh: dict[str, _Day] = {}
    for day, fp in prints.items():
        hit = cached.get(day)
        if hit is not None and day < live and hit.fingerprint == fp:
            fresh[day] = hit
        else:
            fresh[day] = _read_day(conn, day, fp)
    with _lock:
        if len(_days) > 8:
            _days.clear()
        kept = _days.setdefault(key, {})
        kept.update(fresh)
    return fresh


def dashboard(
    conn: sqlite3.Connection, *, days: int = 30, include_replays: bool = False, key: Any = None
) -> dict[str, Any]:
    """The figures for the last ``days`` UTC days (0: all time), replay calls left out unless
    ``include_replays``.  ``key`` names the store (per-day figures are kept per key)."""
    since = (datetime.now(UTC).date() - timedelta(days=days - 1)).isoformat() if days else "0000"
    figures = _day_figures(conn, key, since)
    day_list = sorted(figures)
    kinds = (False, True) if include_replays else (False,)

    per_model: dict[str, dict[str, float]] = {}
    per_day = {n: [0] * len(day_list) for n in ("calls", "errors", "input_tokens", "output_tokens")}
    cost_day = [0.0] * len(day_list)
    by_model_day: dict[str, list[list[float]]] = {}
    p50: list[float | None] = []
    p95: list[float | None] = []
    all_ms: list[float] = []
    priced = unpriced = 0
    for i, day in enumerate(day_list):
        fig = figures[day]
        for (model, is_replay), group in fig.groups.items():
            if is_replay not in kinds:
                continue
            n, errors, tin, tout, cost, n_priced, n_unpriced = group
            priced += n_priced
            unpriced += n_unpriced
            per_day["calls"][i] += n
            per_day["errors"][i] += errors
            per_day["input_tokens"][i] += tin
            per_day["output_tokens"][i] += tout
            cost_day[i] += cost
            m = per_model.setdefault(
                model, {"calls": 0, "errors": 0, "tokens": 0, "cost": 0.0, "priced": 0}
            )
            m["calls"] += n
            m["errors"] += errors
            m["tokens"] += tin + tout
            m["cost"] += cost
            m["priced"] += n_priced
            series = by_model_day.setdefault(model, [[0] * len(day_list), [0.0] * len(day_list)])
            series[0][i] += n
            series[1][i] += cost
        values = sorted(v for k in kinds for v in fig.latencies.get(k, ()))
        all_ms.extend(values)
        p50.append(percentile(values, 50))
        p95.append(percentile(values, 95))
    # days with calls of the other kind only have no point
    keep = [i for i in range(len(day_list)) if per_day["calls"][i]]
    if len(keep) != len(day_list):
        day_list = [day_list[i] for i in keep]
        per_day = {k: [v[i] for i in keep] for k, v in per_day.items()}
        cost_day = [cost_day[i] for i in keep]
        p50 = [p50[i] for i in keep]
        p95 = [p95[i] for i in keep]
        by_model_day = {
            m: [[s[0][i] for i in keep], [s[1][i] for i in keep]] for m, s in by_model_day.items()
        }
    all_ms.sort()

    models = sorted(per_model, key=lambda m: (-per_model[m]["calls"], m))
    top = models[:TOP_MODELS]
    calls_by_model = {m: by_model_day[m][0] for m in top}
    cost_by_model = {m: [round(c, 6) for c in by_model_day[m][1]] for m in top}
    if len(models) > TOP_MODELS:
        rest = models[TOP_MODELS:]
        calls_by_model["other"] = [
            sum(by_model_day[m][0][i] for m in rest) for i in range(len(day_list))
        ]
        cost_by_model["other"] = [
            round(sum(by_model_day[m][1][i] for m in rest), 6) for i in range(len(day_list))
        ]
    totals: dict[str, Any] = {
        "calls": sum(per_day["calls"]),
        "errors": sum(per_day["errors"]),
        "input_tokens": sum(per_day["input_tokens"]),
        "output_tokens": sum(per_day["output_tokens"]),
        "cost": sum(cost_day),
        #: calls with a known price: with none, the cost is unknown, not $0
        "priced": priced,
        "unpriced": unpriced,
        "p50_ms": percentile(all_ms, 50),
        "p95_ms": percentile(all_ms, 95),
    }
    totals["failure_rate"] = totals["errors"] / totals["calls"] if totals["calls"] else None
    return {
        "days": day_list,
        "per_day": {**per_day, "cost": [round(c, 6) for c in cost_day], "p50": p50, "p95": p95},
        "calls_by_model": calls_by_model,
        "cost_by_model": cost_by_model,
        "models": [{"model": m, **per_model[m]} for m in models],
        "totals": totals,
        "failures": newest_failures(conn, since, include_replays),
        #: events the calls table has not caught up with (an upgrade or rebuild running)
        "behind": lag(conn, ["calls"]),
    }


def newest_failures(
    conn: sqlite3.Connection, since: str, include_replays: bool
) -> list[dict[str, Any]]:
    """The newest failed calls of the period (through ``calls_status``)."""
    replay = "" if include_replays else f"AND NOT ({replay_call_sql('c')})"
    names = [
        "call_id",
        "started_at",
        "model",
        "backend",
        "error_type",
        "error_message",
        "attempts",
        "prompt_preview",
    ]
    rows = conn.execute(
        f"SELECT {', '.join('c.' + n for n in names)} FROM calls c "
        f"WHERE c.status = 'error' AND c.started_at >= ? {replay} "
        "ORDER BY c.started_at DESC LIMIT ?",
        (since, NEWEST_FAILURES),
    ).fetchall()
    return [dict(zip(names, r, strict=True)) for r in rows]

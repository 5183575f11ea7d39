"""The dashboard's figures on a real store: per day and model, replay calls apart, and kept
per day only while nothing in that day changed."""

from __future__ import annotations

import sqlite3
import time

from llm_events import EventStore
from llm_events.browse.dashboard import dashboard
from llm_events.log import events as ev


def _call(
    store: EventStore, when: float, model: str, status: str = "ok", parent=None, cost=0.5
) -> str:
    cid = ev.new_id()
    ts = ev.now_iso(when)
    out = [
        ev.CallStarted(id=ev.new_id(), ts=ts, call_id=cid, client="x", parent_call_id=parent),
        ev.AttemptStarted(id=ev.new_id(), ts=ts, call_id=cid, attempt=1, backend="b", model=model),
    ]
    if status == "ok":
        out.append(
            ev.AttemptSucceeded(
                id=ev.new_id(),
                ts=ts,
                call_id=cid,
                attempt=1,
                backend="b",
                model=model,
                text="a",
                input_tokens=10,
                output_tokens=5,
                cost=cost,
                latency_ms=100.0,
            )
        )
    else:
        out.append(ev.AttemptFailed(id=ev.new_id(), ts=ts, call_id=cid, attempt=1, error_type="E"))
    out.append(
        ev.CallFinished(
            id=ev.new_id(),
            ts=ts,
            call_id=cid,
            status=status,
            attempts=1,
            backend="b",
            model=model,
            latency_ms=100.0,
        )
    )
    store.append(out)
    return cid


def test_figures_per_day_and_model_and_replays_apart(tmp_path):
    db = tmp_path / "d.db"
    store = EventStore(db)
    now = time.time()
    old = now - 5 * 86400
    first = _call(store, old, "m1")
    _call(store, old, "m1", status="error")
    _call(store, now, "m2")
    _call(store, now, "echo", parent=first)  # a replay's call
    store.close()
    conn = sqlite3.connect(db)
    d = dashboard(conn, days=30, key=db)
    assert len(d["days"]) == 2
    assert d["per_day"]["calls"] == [2, 1] and d["per_day"]["errors"] == [1, 0]
    assert d["totals"]["calls"] == 3 and d["totals"]["cost"] == 1.0
    assert {m["model"] for m in d["models"]} == {"m1", "m2"}
    assert d["calls_by_model"] == {"m1": [2, 0], "m2": [0, 1]}
    assert [f["model"] for f in d["failures"]] == ["m1"]
    with_replays = dashboard(conn, days=30, include_replays=True, key=db)
    assert with_replays["totals"]["calls"] == 4 and "echo" in with_replays["calls_by_model"]
    assert dashboard(conn, days=1, key=db)["totals"]["calls"] == 1  # today only

    # a call imported into the old day later: that day is read again
    store = EventStore(db)
    _call(store, old + 60, "m3")
    store.close()
    again = dashboard(conn, days=30, key=db)
    assert again["per_day"]["calls"] == [3, 1]
    assert "m3" in again["calls_by_model"]
    conn.close()


def test_a_cost_nobody_knows_is_not_zero(tmp_path):
    """Answered calls without a price are counted apart (the page says so instead of $0);
    a failed call costs nothing and is not one of them."""
    db = tmp_path / "d.db"
    store = EventStore(db)
    now = time.time()
    _call(store, now, "mine", cost=None)
    _call(store, now, "mine", status="error")
    store.close()
    conn = sqlite3.connect(db)
    t = dashboard(conn, days=30, key=db)["totals"]
    assert (t["calls"], t["priced"], t["unpriced"]) == (2, 0, 1)
    store = EventStore(db)
    _call(store, now, "priced", cost=0.25)
    store.close()
    t = dashboard(conn, days=30, key=db)["totals"]
    assert (t["calls"], t["priced"], t["unpriced"], t["cost"]) == (3, 1, 1, 0.25)
    conn.close()


def test_the_dashboard_answers_while_an_upgrade_rebuilds_the_calls_table(tmp_path):
    """An upgrade (or ``rebuild``) in another process empties ``calls``, refills it, and
    makes its indexes last: meanwhile the dashboard shows what is there and says so (it
    answered 500, "no such index: calls_started")."""
    db = tmp_path / "d.db"
    store = EventStore(db)
    now = time.time()
    for _ in range(3):
        _call(store, now, "m1")
    store.close()
    conn = sqlite3.connect(db)
    with conn:  # the state a rebuild is in before its secondary indexes come back
        conn.execute("DROP INDEX calls_started")
        conn.execute("DROP INDEX calls_status")
        conn.execute("UPDATE _projections SET last_seq = 2 WHERE name = 'calls'")
    d = dashboard(conn, days=30, key=db)
    assert d["totals"]["calls"] == 3 and d["behind"] > 0
    conn.close()

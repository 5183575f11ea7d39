"""A catch-up folded outside the write lock (``catchup.plan_pending``) is written only if
the checkpoints are still those it was folded from; else it is folded anew.  Whatever comes
between the fold and its write (appends, another store catching up, a count SQLite cannot
hold), the tables equal a full rebuild, and nothing is projected from an uncommitted event.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_events import EventStore
from llm_events.log import catchup, salvage

from .test_catchup_folds import _call, _tables


@pytest.fixture(autouse=True)
def _no_background_catch_up(monkeypatch):
    """The folds here are the test's: no store's background thread catches up meanwhile
    (it reads the flag when it starts, with the store's first write connection)."""
    monkeypatch.setattr(EventStore, "follow_in_background", False)


def _plan(store: EventStore, chunk: int = 500) -> catchup.Plan:
    return catchup.plan_pending(store.conn(), store.projections, chunk)


def _write(store: EventStore, plan: catchup.Plan, refold: bool) -> int | None:
    with store._write_transaction() as conn:
        return store._write_plan(conn, plan, 500, refold=refold)


def _calls(path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT call_id, status, last_seq FROM calls ORDER BY 1").fetchall()
    finally:
        conn.close()


def test_a_plan_folded_before_another_store_caught_up_is_not_written(db_path):
    a, b = EventStore(db_path), EventStore(db_path)
    events = _call(1)
    a.append(events)
    plan = _plan(a)
    assert plan.read == len(events)
    assert _calls(db_path) == []  # folded, nothing written yet
    b.catch_up()  # moves the checkpoints: a's plan is stale
    with a._write_transaction() as conn:
        assert catchup.write_planned(conn, plan) is False
    catchup.forget(a.projections)
    a.append(_call(2))
    a.catch_up()
    a.close()
    b.close()
    assert [r[:2] for r in _calls(db_path)] == [("c0001", "ok"), ("c0002", "ok")]
    caught_up = _tables(db_path)
    with EventStore(db_path) as store:
        store.rebuild()
    assert _tables(db_path) == caught_up


def test_a_plan_holds_only_events_committed_when_it_was_folded(db_path):
    store = EventStore(db_path)
    events = _call(1)
    store.append(events[:2])  # the prompt and call_started
    plan = _plan(store)
    store.append(events[2:])  # committed after the fold
    assert _write(store, plan, refold=False) == 2
    assert _calls(db_path) == [("c0001", "running", 2)]
    store.catch_up()
    assert _calls(db_path) == [("c0001", "ok", 5)]
    store.close()


def test_a_plan_whose_count_sqlite_cannot_hold_is_folded_again_under_the_lock(db_path):
    store = EventStore(db_path)
    salvage.drain()
    store.append(_call(1, tokens=2**70))
    plan = _plan(store)
    assert _write(store, plan, refold=False) == 5  # written by the fold under the lock
    reports = [r for r in salvage.drain() if "2**63-1" in str(r)]
    store.close()
    assert len(reports) == 2  # the calls row and the prompts row
    caught_up = _tables(db_path)
    assert caught_up["calls"][0][13] is None
    with EventStore(db_path) as rebuilt:
        rebuilt.rebuild()
    assert _tables(db_path) == caught_up


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    failures=st.lists(st.integers(0, 2), min_size=1, max_size=5),
)
def test_plans_written_late_by_two_stores_in_any_order_equal_a_rebuild(tmp_path, data, failures):
    """Two stores on one file append calls in random steps; each may fold a plan, and
    writes it some steps later (or never), after appends and the other's catch-ups."""
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "plans.db"
    queues = [_call(i, failures=f) for i, f in enumerate(failures)]
    stores = [EventStore(path), EventStore(path)]
    plans: list[catchup.Plan | None] = [None, None]
    while any(queues):
        open_calls = [q for q in queues if q]
        q = open_calls[data.draw(st.integers(0, len(open_calls) - 1))]
        n = data.draw(st.integers(1, len(q)))
        stores[data.draw(st.integers(0, 1))].append(q[:n])
        del q[:n]
        k = data.draw(st.integers(0, 1))
        action = data.draw(st.sampled_from(["none", "plan", "write", "catch_up"]))
        if action == "plan" and plans[k] is None:
            plans[k] = _plan(stores[k], chunk=data.draw(st.sampled_from([1, 3, 500])))
        elif action == "write" and plans[k] is not None:
            _write(stores[k], plans[k], refold=data.draw(st.booleans()))
            plans[k] = None
        elif action == "catch_up" and plans[k] is None:
            stores[k].catch_up(chunk=data.draw(st.sampled_from([1, 2, 500])))
    for k, plan in enumerate(plans):
        if plan is not None:
            _write(stores[k], plan, refold=True)
    stores[0].catch_up()
    for s in stores:
        s.close()
    caught_up = _tables(path)
    assert [r[3] for r in caught_up["calls"]] == ["ok"] * len(failures)
    with EventStore(path) as store:
        store.rebuild()
    assert _tables(path) == caught_up


def test_catch_ups_racing_the_background_thread_equal_a_rebuild(db_path, monkeypatch):
    """Reads catching up in the caller's thread while the background thread folds the same
    appends: the folds take turns (they share the projections' caches), a plan made stale
    by the other is folded anew, and the tables equal a rebuild."""
    monkeypatch.setattr(EventStore, "follow_in_background", True)
    store = EventStore(db_path)
    for i in range(120):
        events = _call(i, failures=i % 2)
        store.append(events[:3])
        if i % 3 == 0:
            store.catch_up()
        store.append(events[3:])
        if i % 2 == 0:
            store.catch_up()
    store.close()
    caught_up = _tables(db_path)
    assert [r[3] for r in caught_up["calls"]] == ["ok"] * 120
    assert len(caught_up["prompts"]) == 120
    with EventStore(db_path) as rebuilt:
        rebuilt.rebuild()
    assert _tables(db_path) == caught_up

"""replay.run on a real store: 50 echo calls replayed against a client that differs for some."""

from __future__ import annotations

import json
import sqlite3

import pytest

import replay
from llm_events.log import events as ev

from .test_replay_clients import differs_for_multiples_of_five, record_calls


@pytest.fixture
def fifty(store) -> list[str]:
    return record_calls(50)


def test_fifty_calls_get_the_right_verdicts(store, db_path, fifty):
    report = replay.run(store, differs_for_multiples_of_five, concurrency=4)

    assert report.status == "completed"
    assert report.counts == {"same": 40, "changed": 10, "error": 0}
    assert report.exit_code(max_changed=10) == 0
    assert report.exit_code(max_changed=9) == 1
    conn = sqlite3.connect(db_path)
    rows = dict(
        conn.execute(
            "SELECT source_call_id, verdict FROM replay_results WHERE replay_id = ?",
            (report.replay_id,),
        ).fetchall()
    )
    expected = {cid: ("changed" if i % 5 == 0 else "same") for i, cid in enumerate(fifty)}
    assert rows == expected
    changed = report.result(fifty[5])
    assert (
        changed.diff
        == "-question #5 about billing\n+a different answer to question #5 about billing"
    )
    assert 0 < changed.score < 1


def test_a_run_is_bracketed_and_summarised(store, db_path, fifty):
    report = replay.run(store, "echo", select={"limit": 5})
    types = [s.event.type_name for s in store.iter_events(call_id=report.replay_id)]
    assert types == ["replay_started"] + ["replay_compared"] * 5 + ["replay_finished"]
    finished = list(store.iter_events(call_id=report.replay_id, types=["replay_finished"]))[0].event
    assert finished.status == "completed"
    assert finished.counts == {"same": 5, "changed": 0, "error": 0, "skipped": 0}
    row = (
        sqlite3.connect(db_path)
        .execute("SELECT status, against, compare, total, same, changed, error FROM replays")
        .fetchone()
    )
    assert row == ("completed", "echo", "exact", 5, 5, 0, 0)


def test_replayed_calls_are_ordinary_linked_calls(store, db_path, fifty):
    report = replay.run(store, "echo", select={"ids": [fifty[3]]})
    result = report.results[0]
    conn = sqlite3.connect(db_path)
    parent, tags, status, backend = conn.execute(
        "SELECT parent_call_id, tags, status, backend FROM calls WHERE call_id = ?",
        (result.replay_call_id,),
    ).fetchone()
    assert parent == fifty[3]
    assert json.loads(tags) == ["replay", f"replay:{report.replay_id}"]
    assert (status, backend) == ("ok", "echo")


def test_the_prompt_is_rebuilt_exactly_with_origin_replay(store, fifty):
    report = replay.run(store, "echo", select={"ids": [fifty[7]]})
    new_call = report.results[0].replay_call_id

    def prompt_of(call_id: str) -> ev.PromptBuilt:
        events = store.call_events(call_id)
        assert isinstance(events[0].event, ev.PromptBuilt)
        return events[0].event

    old, new = prompt_of(fifty[7]), prompt_of(new_call)
    assert new.origin == "replay"
    for field in ("system", "user", "examples", "tags", "metadata", "vector_confidence"):
        assert getattr(new, field) == getattr(old, field), field
    assert new.examples  # the builder put context in: it was carried over


def test_replay_calls_are_not_selected_again(store, fifty):
    first = replay.run(store, "echo")
    second = replay.run(store, "echo")
    assert first.total == second.total == 50
    with_replays = replay.run(store, "echo", select={"include_replays": True, "limit": 1000})
    assert with_replays.total == 150


def test_deltas_per_call_and_in_total(store, fifty):
    from .test_replay_clients import with_tokens

    report = replay.run(store, with_tokens, select={"limit": 4})
    conn = store.conn()
    recorded_out = 0
    for result in report.results:
        (out,) = conn.execute(
            "SELECT output_tokens FROM calls WHERE call_id = ?", (result.source_call_id,)
        ).fetchone()
        recorded_out += out
        assert result.output_tokens_delta == 20 - out
        assert result.cost_delta == 0.5  # echo is free; the candidate said 0.5
        assert isinstance(result.latency_delta_ms, float)
    assert report.totals["cost"] == 2.0
    assert report.totals["output_tokens"] == 4 * 20 - recorded_out


def test_user_comparator_by_name(store, fifty):
    report = replay.run(
        store,
        differs_for_multiples_of_five,
        compare="tests.test_replay_clients:same_length",
        select={"limit": 10},
    )
    assert report.counts == {"same": 8, "changed": 2, "error": 0}
    assert report.compare == "tests.test_replay_clients:same_length"


def test_bad_arguments_fail_before_anything_is_written(store, fifty):
    before = store.count()
    with pytest.raises(ValueError, match="unknown comparator 'fuzzy'"):
        replay.run(store, "echo", compare="fuzzy")
    with pytest.raises(ValueError, match="unknown client spec"):
        replay.run(store, "nope")
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        replay.run(store, "echo", concurrency=0)
    with pytest.raises(replay.SelectionError, match="unknown selection key colour"):
        replay.run(store, "echo", select={"colour": "red"})
    assert store.count() == before


def test_interrupt_then_resume_in_python(store, fifty):
    from .test_replay_clients import number

    def stops_at_20(prompt):
        if number(prompt) == 20:
            raise KeyboardInterrupt
        return prompt.user

    with pytest.raises(replay.ReplayInterrupted) as info:
        replay.run(store, stops_at_20, concurrency=1, select={"limit": 30})
    first = info.value.report
    assert first.status == "interrupted"
    assert first.counts["same"] == 20
    finished = next(store.iter_events(call_id=first.replay_id, types=["replay_finished"])).event
    assert (finished.status, finished.counts["same"]) == ("interrupted", 20)

    resumed = replay.run(store, "echo", resume=first.replay_id)
    assert resumed.replay_id == first.replay_id
    assert (resumed.status, resumed.total, resumed.planned) == ("completed", 30, 10)
    assert resumed.counts == {"same": 30, "changed": 0, "error": 0}
    compared = [
        s.event.source_call_id
        for s in store.iter_events(call_id=first.replay_id, types=["replay_compared"])
    ]
    assert sorted(compared) == sorted(fifty[:30])  # each call compared exactly once

"""Catching up folds a call's row once per batch, from the row this process last wrote or
as a new one: when another process stored the row first (the call's events spread over
batches two stores applied), the batch is folded again into the stored row.  Whatever the
chunks and whichever store applies them, the tables equal a full rebuild."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_events import EventStore
from llm_events.log import events as ev
from llm_events.log import salvage

TABLES = ("calls", "prompts", "tool_calls")


def _call(i: int, *, failures: int = 0, tokens: int = 7) -> list[ev.Event]:
    """One call's events in the order a recorder writes them: a prompt, started, attempts
    (``failures`` failed, each followed by a retry), an answer, finished."""
    pid, cid = f"p{i:04d}", f"c{i:04d}"
    out: list[ev.Event] = [
        ev.PromptBuilt(id=pid, ts="2026-01-01T00:00:00Z", prompt_id=pid, user=f"question {i}"),
        ev.CallStarted(id=f"s{i}", ts="2026-01-01T00:00:01Z", call_id=cid, prompt_id=pid),
    ]
    for a in range(1, failures + 2):
        out.append(
            ev.AttemptStarted(
                id=f"a{i}-{a}",
                ts="2026-01-01T00:00:02Z",
                call_id=cid,
                attempt=a,
                backend="openai",
                model="gpt-4o-mini",
            )
        )
        if a <= failures:
            out.append(
                ev.AttemptFailed(
                    id=f"f{i}-{a}",
                    ts="2026-01-01T00:00:03Z",
                    call_id=cid,
                    attempt=a,
                    error_type="Timeout",
                    message="slow",
                )
            )
            out.append(
                ev.RetryScheduled(
                    id=f"r{i}-{a}", ts="2026-01-01T00:00:03Z", call_id=cid, attempt=a, delay_s=0.1
                )
            )
    out.append(
        ev.AttemptSucceeded(
            id=f"ok{i}",
            ts="2026-01-01T00:00:04Z",
            call_id=cid,
            attempt=failures + 1,
            backend="openai",
            model="gpt-4o-mini",
            text=f"answer {i}",
            input_tokens=tokens,
            output_tokens=3,
        )
    )
    out.append(
        ev.CallFinished(
            id=f"d{i}",
            ts="2026-01-01T00:00:05Z",
            call_id=cid,
            status="ok",
            attempts=failures + 1,
            latency_ms=12.5,
        )
    )
    return out


def _tables(path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
    finally:
        conn.close()


def test_a_call_started_by_one_store_and_finished_by_another_is_folded_into_one_row(db_path):
    a, b = EventStore(db_path), EventStore(db_path)
    events = _call(1, failures=1)
    a.append(events[:4])  # prompt, started, first attempt, its failure
    a.catch_up()
    b.append(events[4:])  # the retry, the second attempt, the answer, finished
    b.catch_up()  # b never wrote this call's row: its insert finds a's
    a.close()
    b.close()
    conn = sqlite3.connect(db_path)
    row = conn.execute(
        "SELECT status, attempts, failures, retries, error_type, input_tokens, first_seq, "
        "last_seq, prompt_preview, response_preview FROM calls"
    ).fetchall()
    conn.close()
    assert row == [("ok", 2, 1, 1, None, 7, 2, 8, "question 1", "answer 1")]
    caught_up = _tables(db_path)
    with EventStore(db_path) as store:
        store.rebuild()
    assert _tables(db_path) == caught_up


def test_a_count_past_sqlite_integers_is_reported_once_per_table_whichever_store_applies_it(
    db_path,
):
    a, b = EventStore(db_path), EventStore(db_path)
    events = _call(1, tokens=2**70)
    salvage.drain()
    a.append(events[:3])
    a.catch_up()
    b.append(events[3:])  # the answer with 2**70 input tokens, to a row b did not write
    b.catch_up()
    reports = [r for r in salvage.drain() if "2**63-1" in str(r)]
    a.close()
    b.close()
    assert len(reports) == 2  # the calls row and the prompts row, not the insert b tried
    caught_up = _tables(db_path)
    assert caught_up["calls"][0][13] is None  # input_tokens: NULL, not a failed catch-up
    with EventStore(db_path) as store:
        store.rebuild()
    assert _tables(db_path) == caught_up


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    failures=st.lists(st.integers(0, 2), min_size=1, max_size=6),
)
def test_catching_up_in_any_chunks_from_two_stores_equals_a_rebuild(tmp_path, data, failures):
    """Calls interleaved (each in its own order), appended and caught up by two stores on one
    file in random steps and chunks: a call's events land in batches applied by either."""
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "two.db"
    queues = [_call(i, failures=f) for i, f in enumerate(failures)]
    stores = [EventStore(path), EventStore(path)]
    for s in stores:
        s.follow_in_background = False
    while any(queues):
        open_calls = [q for q in queues if q]
        q = open_calls[data.draw(st.integers(0, len(open_calls) - 1))]
        n = data.draw(st.integers(1, len(q)))
        writer = stores[data.draw(st.integers(0, 1))]
        writer.append(q[:n])
        del q[:n]
        if data.draw(st.booleans()):
            stores[data.draw(st.integers(0, 1))].catch_up(
                chunk=data.draw(st.sampled_from([1, 2, 3, 500]))
            )
    stores[0].catch_up()
    for s in stores:
        s.close()
    caught_up = _tables(path)
    assert len(caught_up["calls"]) == len(failures)
    assert [r[3] for r in caught_up["calls"]] == ["ok"] * len(failures)
    with EventStore(path) as store:
        store.rebuild()
    assert _tables(path) == caught_up


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), failures=st.lists(st.integers(0, 2), min_size=1, max_size=4))
def test_a_call_whose_events_come_in_any_order_catches_up_to_what_a_rebuild_gives(
    tmp_path, data, failures
):
    """A prompt recorded after its call, an end before its answer: each fold reads only the
    log before the event it folds, so catching up between the appends equals a rebuild."""
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "any-order.db"
    events = [e for i, f in enumerate(failures) for e in _call(i, failures=f)]
    events = data.draw(st.permutations(events))
    store = EventStore(path)
    store.follow_in_background = False
    while events:
        n = data.draw(st.integers(1, len(events)))
        store.append(events[:n])
        del events[:n]
        if data.draw(st.booleans()):
            store.catch_up(chunk=data.draw(st.sampled_from([1, 2, 500])))
    store.close()  # catches up the rest
    caught_up = _tables(path)
    with EventStore(path) as rebuilt:
        rebuilt.rebuild()
    assert _tables(path) == caught_up

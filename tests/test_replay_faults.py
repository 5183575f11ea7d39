"""Faults: a candidate that raises, hangs or answers nonsense; nothing to replay; old stores."""

from __future__ import annotations

import sqlite3
import time

import replay
from llm_events.log import events as ev

from .test_replay_clients import faulty, json_answers, record_calls


def reasons(report) -> dict[str, tuple[str, str]]:
    return {r.source_call_id: (r.verdict, r.reason) for r in report.results}


def test_raise_hang_and_malformed_are_errors_and_the_run_goes_on(store, db_path):
    calls = record_calls(8)
    t0 = time.monotonic()
    report = replay.run(store, faulty, timeout=0.5, concurrency=2)
    assert time.monotonic() - t0 < 2.5  # the hung call did not hold the run up

    got = reasons(report)
    assert got[calls[1]] == ("error", "RuntimeError: backend exploded")
    assert got[calls[2]] == ("error", "TimeoutError: no answer within 0.5s (--timeout)")
    assert got[calls[3]][0] == "error"
    assert got[calls[3]][1].startswith("TypeError: a client returned int")
    assert [got[c][0] for c in calls[:1] + calls[4:]] == ["same"] * 5
    assert report.counts == {"same": 5, "changed": 0, "error": 3}
    assert report.exit_code(max_changed=3) == 0

    # the failed calls are recorded like any call, linked to their originals
    conn = sqlite3.connect(db_path)
    failed = report.result(calls[1]).replay_call_id
    assert conn.execute(
        "SELECT status, error_type, parent_call_id FROM calls WHERE call_id = ?", (failed,)
    ).fetchone() == ("error", "RuntimeError", calls[1])
    hung = report.result(calls[2]).replay_call_id
    assert hung is not None  # its call_started was written before the request left


def test_malformed_json_is_an_error_with_the_reason(store):
    from llm_events import client_from_spec

    calls = record_calls(6, client=client_from_spec("tests.test_replay_clients:json_recorded"))
    report = replay.run(store, json_answers, compare="json")
    assert report.counts == {"same": 5, "changed": 0, "error": 1}
    assert reasons(report)[calls[4]] == (
        "error",
        "replayed answer is not JSON (Expecting value): 'Sure! Here is the JSON you asked for.'",
    )


def test_empty_selection_writes_nothing(store):
    record_calls(3)
    before = store.count()
    report = replay.run(store, "echo", select={"model": "no-such-model"})
    assert report.status == "empty"
    assert report.total == 0 and report.results == []
    assert (
        report.to_text() == "no recorded calls match the selection (model=no-such-model, status=ok)"
    )
    assert store.count() == before
    assert store.count("replay_started") == 0


def _append_call(store, call_id: str, prompt_id: str | None) -> None:
    now = ev.now_iso
    store.append(
        [
            ev.CallStarted(
                id=ev.new_id(), ts=now(), call_id=call_id, prompt_id=prompt_id, client="old"
            ),
            ev.AttemptStarted(id=ev.new_id(), ts=now(), call_id=call_id, attempt=1, backend="old"),
            ev.AttemptSucceeded(id=ev.new_id(), ts=now(), call_id=call_id, attempt=1, text="hi"),
            ev.CallFinished(id=ev.new_id(), ts=now(), call_id=call_id, status="ok", attempts=1),
        ]
    )


def test_calls_without_prompt_built_are_skipped_with_a_reason(store):
    good = record_calls(2)
    _append_call(store, "call-without-prompt", None)
    _append_call(store, "call-with-lost-prompt", "no-such-event")
    store.append(  # a call that never finished (the process died mid-request)
        [ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id="still-running", prompt_id="x")]
    )
    report = replay.run(store, "echo", select={"status": None})  # every call, running too
    assert report.counts == {"same": 2, "changed": 0, "error": 0}
    assert dict(report.skipped) == {
        "call-without-prompt": "no prompt_built recorded for this call "
        "(recorded before prompts were logged)",
        "call-with-lost-prompt": "its prompt_built event no-such-event is missing from the store",
        "still-running": "the recorded call never finished (status running)",
    }
    assert report.to_dict()["skipped"] == 3
    assert "Skipped:" in report.to_text()
    assert {r.source_call_id for r in report.results} == set(good)
    finished = next(store.iter_events(call_id=report.replay_id, types=["replay_finished"])).event
    assert finished.counts["skipped"] == 3


def test_a_store_from_before_replay_events_existed(tmp_path):
    """An old file (no replays table, no replay events) is migrated and replayed."""
    from llm_events import EventStore

    path = tmp_path / "old.db"
    s = EventStore(path)
    _append_call(s, "legacy-call", None)
    s.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE replays")
    conn.execute("DELETE FROM _projections WHERE name = 'replays'")
    conn.commit()
    conn.close()
    report = replay.run(str(path), "echo")
    assert report.skipped == [
        (
            "legacy-call",
            "no prompt_built recorded for this call (recorded before prompts were logged)",
        )
    ]
    assert report.status == "completed"


def test_a_failing_comparator_is_an_error_verdict(store):
    record_calls(2)
    report = replay.run(store, "echo", compare="tests.test_replay_clients:broken_comparator")
    assert report.counts["error"] == 2
    assert report.results[0].reason.startswith("comparator failed: TypeError")

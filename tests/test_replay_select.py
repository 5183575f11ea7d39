"""Selecting recorded calls: filters, limit, seeded sample, streaming order."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from click.testing import CliRunner

from llm_events import client_from_spec
from llm_events.cli import main
from replay import Selection, SelectionError, select_calls
from replay.select import count_calls, normalize_time

from .test_replay_clients import record_calls


def ids(store, **filters) -> list[str]:
    sel = Selection(**filters)
    got = [c.call_id for c in select_calls(store, sel)]
    assert count_calls(store, sel) == len(got)
    return got


def test_filters_by_model_backend_tag_status(store):
    echo = record_calls(4, tags_for=lambda i: ["even"] if i % 2 == 0 else ["odd"])
    upper = record_calls(3, start=10, client=client_from_spec("echo:shout"))
    assert ids(store) == echo + upper
    assert ids(store, model="shout") == upper
    assert ids(store, backend="echo", model="echo") == echo
    assert ids(store, tags=["even"]) == [echo[0], echo[2]]
    assert ids(store, tags=["even", "odd"]) == []
    assert ids(store, status="error") == []
    assert ids(store, status="ok") == echo + upper
    assert ids(store, ids=[upper[1], echo[0]]) == [echo[0], upper[1]]


def test_time_range_and_relative_times(store):
    calls = record_calls(3)
    store.catch_up()
    started = [
        store.conn().execute("SELECT started_at FROM calls WHERE call_id=?", (c,)).fetchone()[0]
        for c in calls
    ]
    assert ids(store, since=started[1]) == calls[1:]
    assert ids(store, until=started[1]) == calls[:1]
    assert ids(store, since="1h") == calls
    assert ids(store, until="1h") == []
    assert normalize_time("2025-01-31T00:00Z") == "2025-01-31T00:00:00.000000Z"
    assert normalize_time("2025-01-31T14:00+02:00") == "2025-01-31T12:00:00.000000Z"
    with pytest.raises(SelectionError, match="bad --since: cannot read time 'soon'"):
        Selection(since="soon")


@pytest.fixture
def in_tokyo(monkeypatch):
    """A local zone far from UTC (UTC+9, no daylight saving)."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_filters_read_as_the_calls_listing_reads_them(store, in_tokyo):
    """Same words, same calls: `llm-events calls` shows what a replay will select."""
    calls = record_calls(3)
    store.catch_up()
    started = [
        store.conn().execute("SELECT started_at FROM calls WHERE call_id=?", (c,)).fetchone()[0]
        for c in calls
    ]
    # the second call's start, written as a Tokyo wall-clock time without a zone
    local = datetime.fromisoformat(started[1].replace("Z", "+00:00")).astimezone()
    naive = local.replace(tzinfo=None).isoformat()
    assert normalize_time(naive) == started[1]
    assert ids(store, since=naive) == calls[1:]
    listed = CliRunner().invoke(
        main, ["calls", "--db", str(store.path), "--since", naive, "--model", "ech*", "--json"]
    )
    assert [c["call_id"] for c in json.loads(listed.output)] == calls[:0:-1]  # newest first
    assert ids(store, since=naive, model="ech*") == calls[1:]


def test_limit_and_seeded_sample(store):
    calls = record_calls(30)
    assert ids(store, limit=5) == calls[:5]
    a = ids(store, sample=7, seed=1)
    assert len(a) == 7 and a == sorted(a, key=calls.index)  # recorded order kept
    assert ids(store, sample=7, seed=1) == a
    assert ids(store, sample=7, seed=2) != a
    assert ids(store, sample=100) == calls
    assert ids(store, sample=7, seed=1, limit=3) == a[:3]


def test_streams_in_chunks(store):
    calls = record_calls(25)
    assert [c.call_id for c in select_calls(store, Selection(chunk=4))] == calls


def test_a_selection_round_trips_through_replay_started():
    sel = Selection(model="m", tags=("a",), limit=3, sample=2, seed=5, max_seq=10)
    assert Selection.from_dict(sel.to_dict()) == sel
    assert Selection().describe() == "status=ok"  # the answered calls, by default
    assert Selection(status=None).describe() == "all recorded calls"
    # a run recorded before status defaulted to ok selected every status; resumed, it still does
    assert Selection.from_dict({"model": "m"}).status is None
    with pytest.raises(SelectionError, match="limit must be 0 or more"):
        Selection(limit=-1)

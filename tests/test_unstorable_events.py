"""An event that cannot be encoded is refused to the caller that gave it, and only to it.

Held (``defer``) and batch-mode events used to be encoded when their commit came: one
prompt whose metadata held an ``object()`` failed that commit, went back on the held list
and failed every later append of the process (the good events with it), and in batch mode
the whole batch of other callers' events was dropped.
"""

from __future__ import annotations

import sqlite3

import pytest

from llm_events import EventStore, UnstorableValueError
from llm_events.log import events as ev


def _prompt(prompt_id: str, **metadata: object) -> ev.PromptBuilt:
    return ev.PromptBuilt(id=ev.new_id(), ts=ev.now_iso(), prompt_id=prompt_id, metadata=metadata)


def _started(call_id: str, prompt_id: str) -> ev.CallStarted:
    return ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id=call_id, prompt_id=prompt_id)


def _stored_types(path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [t for (t,) in conn.execute("SELECT type FROM events ORDER BY seq")]
    finally:
        conn.close()


def test_a_held_event_that_cannot_be_stored_is_refused_and_later_appends_still_commit(tmp_path):
    path = tmp_path / "s.db"
    store = EventStore(path)
    store.defer([_prompt("good")])
    bad = _prompt("bad", when=object())
    with pytest.raises(UnstorableValueError) as raised:
        store.defer([bad])
    assert str(raised.value) == (
        f"prompt_built event {bad.id} cannot be stored: Encoding objects of type object is "
        "unsupported; none of these 1 events was written"
    )
    store.append([_started("c1", "good")])
    store.append([_started("c2", "good")])
    store.close()
    assert _stored_types(path) == ["prompt_built", "call_started", "call_started"]


def test_an_append_with_one_bad_event_writes_none_of_its_events(tmp_path):
    path = tmp_path / "s.db"
    store = EventStore(path)
    with pytest.raises(UnstorableValueError, match="none of these 2 events was written"):
        store.append([_started("c1", "p"), _prompt("p", n=object())])
    store.append([_started("c2", "p")])
    store.close()
    assert _stored_types(path) == ["call_started"]


def test_in_batch_mode_a_bad_event_leaves_the_rest_of_the_batch_committed(tmp_path):
    path = tmp_path / "s.db"
    store = EventStore(path, batch=True, batch_interval=60)  # nothing commits on its own
    store.append([_started("c1", "p")])
    with pytest.raises(UnstorableValueError):
        store.append([_prompt("p", n=object())])
    store.defer([_prompt("p2")])
    store.flush()  # no background error to report: the bad event never entered the batch
    store.close()
    assert _stored_types(path) == ["call_started", "prompt_built"]

"""Catching up decodes only what projections read: a prompt in the fields its tables hold,
and each projection only the event types it folds; what it derives is what the whole events
gave, a malformed field is still read leniently and reported, and a rebuild of one
projection equals the rows catching up made."""

from __future__ import annotations

import pytest

from llm_events import EventStore
from llm_events.log import events as ev
from llm_events.log import salvage
from tests.helpers import read_db


def _call(store: EventStore, prompt: ev.PromptBuilt, text: str = "Thirty days.") -> str:
    call_id = ev.new_id()
    ts = ev.now_iso()
    store.append([prompt])
    store.append(
        ev.answered_call_events(
            prompt_id=prompt.prompt_id,
            ts=ts,
            client="c",
            backend="echo",
            model="echo",
            success={"text": text, "input_tokens": 3, "output_tokens": 2},
            call_id=call_id,
        )
    )
    return call_id


def _prompt(**fields) -> ev.PromptBuilt:
    pid = ev.new_id()
    base = {"system": "Be brief.", "user": "What is the refund window?", "tags": ["faq"]}
    return ev.PromptBuilt(id=pid, ts=ev.now_iso(), prompt_id=pid, **{**base, **fields})


def test_a_prompt_projects_the_same_whether_its_unread_fields_are_sound_or_not(db_path):
    store = EventStore(db_path)
    salvage.drain()
    sound = _call(store, _prompt(context=[ev.ContextItem(text="kb", score=0.5)]))
    # written by a "simulated older writer": a context that is not a list of items, which
    # no table reads
    odd = _call(store, _prompt(context="not a list", messages=7))
    store.close()
    conn = read_db(db_path)
    rows = conn.execute(
        "SELECT call_id, prompt, system, examples, outcome_tags, response_text FROM prompts "
        "ORDER BY id"
    ).fetchall()
    assert rows == [
        (sound, "What is the refund window?", "Be brief.", "[]", '["faq"]', "Thirty days."),
        (odd, "What is the refund window?", "Be brief.", "[]", '["faq"]', "Thirty days."),
    ]
    previews = conn.execute("SELECT prompt_preview FROM calls ORDER BY first_seq").fetchall()
    assert previews == [("What is the refund window?",)] * 2
    conn.close()


def test_a_prompt_with_a_malformed_field_a_table_reads_is_read_leniently_and_reported(db_path):
    store = EventStore(db_path)
    salvage.drain()
    bad = _prompt(tags="faq", vector_confidence="0.5")
    call_id = _call(store, bad)
    store.close()
    conn = read_db(db_path)
    assert conn.execute(
        "SELECT call_id, prompt, vector_confidence, outcome_tags FROM prompts"
    ).fetchall() == [(call_id, "What is the refund window?", 0.5, "[]")]
    conn.close()
    assert [event_id for event_id, _what in salvage.drain()] == [bad.id]


def test_rebuilding_one_projection_equals_what_catching_up_made(db_path):
    store = EventStore(db_path)
    for i in range(30):
        _call(store, _prompt(user=f"question {i}"), text=f"answer {i}")
    store.flush()
    conn = read_db(db_path)
    tables = ("calls", "prompts", "tool_calls", "replays")
    before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    assert len(before["prompts"]) == 30
    for name in ("prompts", "calls", "tool_calls", "replays"):
        assert store.rebuild(only=[name]) == store.last_seq()
        after = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
        assert after == before, name
    store.close()
    conn.close()


def test_a_rebuild_indexes_every_answer_for_search_in_transactions_of_settle_rows(
    db_path, monkeypatch
):
    from llm_events.log import following as store_module

    store = EventStore(db_path)
    for i in range(12):
        _call(store, _prompt(user=f"refund question {i}"), text=f"answer {i}")
    store.flush()
    monkeypatch.setattr(store_module, "SETTLE_ROWS", 5)
    from llm_events.log import fts

    batches = []
    real = fts.index_pending

    def counted(conn, limit=None):
        batches.append(real(conn, limit))
        return batches[-1]

    monkeypatch.setattr(fts, "index_pending", counted)
    store.rebuild(chunk=1000)
    assert batches == [5, 5, 2]  # at the end, SETTLE_ROWS per transaction
    conn = read_db(db_path)
    hits = conn.execute("SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'refund'").fetchall()
    assert len(hits) == 12
    assert conn.execute("SELECT value FROM _meta WHERE key = 'prompts_fts_indexed'").fetchone() == (
        str(conn.execute("SELECT max(id) FROM prompts").fetchone()[0]),
    )
    conn.close()
    store.close()


INDEXES = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY 1"


def test_a_rebuild_makes_the_indexes_after_the_rows_even_when_it_fails_or_is_killed(
    db_path, monkeypatch
):
    from llm_events.log.projections import CallsProjection

    store = EventStore(db_path)
    for i in range(6):
        _call(store, _prompt(user=f"q {i}"))
    store.flush()
    conn = read_db(db_path)
    indexes = conn.execute(INDEXES).fetchall()
    assert ("calls_model",) in indexes and ("tool_calls_name",) in indexes
    during = []
    store.rebuild(chunk=10, progress=lambda n: during.append(conn.execute(INDEXES).fetchall()))
    assert ("calls_model",) not in during[0] and ("events_call_id",) in during[0]
    assert conn.execute(INDEXES).fetchall() == indexes

    real = CallsProjection.apply
    monkeypatch.setattr(CallsProjection, "apply", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        store.rebuild()
    monkeypatch.setattr(CallsProjection, "apply", real)
    assert conn.execute(INDEXES).fetchall() == indexes  # made again as the rebuild failed

    # killed half-way: the next process to open the file makes them
    from llm_events.log import catchup

    with store._write_transaction() as w:
        catchup.defer_indexes(w, store.projections[:1])
    assert ("calls_model",) not in conn.execute(INDEXES).fetchall()
    store.close()
    EventStore(db_path).close()
    assert conn.execute(INDEXES).fetchall() == indexes
    assert conn.execute("SELECT * FROM _meta WHERE key = 'deferred_indexes'").fetchall() == []
    conn.close()

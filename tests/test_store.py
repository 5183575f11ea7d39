"""The append-only store: triggers, the hash chain and verify, schema versions, rebuild, batch."""

from __future__ import annotations

import sqlite3

import pytest

import llm_events
from llm_events import EventStore, StoreError
from llm_events.log import events as ev
from llm_events.log.store import STORE_SCHEMA_VERSION


def record_calls(db_path, builder, n=5):
    client = llm_events.client_from_spec("echo")
    return [
        client.generate(builder.build_prompt(f"question {i}"), context_builder=builder).call_id
        for i in range(n)
    ]


def tamper(db_path, *statements):
    """Change the file behind the triggers' back: drop them, change, re-create them."""
    conn = sqlite3.connect(db_path)
    triggers = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type='trigger' AND tbl_name='events'"
    ).fetchall()
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    for stmt in statements:
        conn.execute(stmt)
    for (sql,) in triggers:
        conn.execute(sql)
    conn.commit()
    conn.close()


def test_update_and_delete_are_refused(db_path, builder):
    record_calls(db_path, builder, 1)
    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE"):
        conn.execute("UPDATE events SET payload = '{}' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE"):
        conn.execute("DELETE FROM events")
    conn.close()


def test_intact_store_verifies(db_path, builder):
    record_calls(db_path, builder)
    result = EventStore(db_path, readonly=True).verify()
    assert result.ok and result.checked == 25 and result.first_bad_seq is None


@pytest.mark.parametrize(
    ("statements", "bad_seq", "reason"),
    [
        (
            [
                "UPDATE events SET payload = replace(payload, 'question 2', 'question X') WHERE seq = 11"
            ],
            11,
            "altered",
        ),
        (["DELETE FROM events WHERE seq = 7"], 7, "missing"),
        (
            [
                "UPDATE events SET seq = -1 WHERE seq = 4",
                "UPDATE events SET seq = 4 WHERE seq = 5",
                "UPDATE events SET seq = 5 WHERE seq = -1",
            ],
            4,
            "does not follow",
        ),
        (["DELETE FROM events WHERE seq >= 24"], 24, "removed from the end"),
        (["UPDATE events SET ts = '2020-01-01T00:00:00.000000Z' WHERE seq = 3"], 3, "altered"),
    ],
)
def test_verify_names_the_first_bad_seq(db_path, builder, statements, bad_seq, reason):
    record_calls(db_path, builder)
    llm_events.recording.config.reset()
    tamper(db_path, *statements)
    result = EventStore(db_path, readonly=True).verify()
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert reason in result.reason


def test_newer_schema_is_refused(db_path, builder):
    record_calls(db_path, builder, 1)
    llm_events.recording.config.reset()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="written by a newer llm-events"):
        EventStore(db_path)


def test_not_an_llm_events_file_is_refused(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE responses (id TEXT)")
    conn.commit()
    with pytest.raises(StoreError, match="not an llm-events store"):
        EventStore(other)
    assert sqlite3.connect(other).execute(
        "SELECT name FROM sqlite_master WHERE type='table'"
    ).fetchall() == [("responses",)]


def test_original_promptdb_file_is_migrated(tmp_path):
    old = tmp_path / "prompts.db"
    conn = sqlite3.connect(old)
    conn.execute(
        "CREATE TABLE prompts(id INTEGER PRIMARY KEY, text TEXT, examples TEXT, "
        "vector_confidences TEXT, outcome_tags TEXT, response_raw TEXT, response_parsed TEXT, "
        "response_text TEXT, model TEXT, timestamp TEXT)"
    )
    conn.execute(
        "INSERT INTO prompts VALUES (1, 'old question', '[\"ex\"]', '[0.5]', '[\"t1\"]', "
        "'{\"model\": \"gpt\"}', '{\"a\": 1}', 'old answer', 'gpt', '2024-01-02T03:04:05')"
    )
    conn.commit()
    conn.close()
    db = llm_events.PromptDB("m", path=old)
    (log,) = db.fetch_logs()
    assert (log["text"], log["response_text"], log["model"]) == (
        "old question",
        "old answer",
        "gpt",
    )
    assert log["outcome_tags"] == '["t1"]' and log["vector_confidence"] == 0.5
    assert db.fetch_logs(tag="t1") and not db.fetch_logs(tag="t2")
    assert db.store.verify().ok
    assert sqlite3.connect(old).execute("SELECT count(*) FROM prompts_legacy").fetchone() == (1,)


def test_unknown_event_types_are_skipped_by_projections(store, builder):
    record_calls(store.path, builder, 1)
    future = b'{"type":"model_swapped","id":"x-1","ts":"2030-01-01T00:00:00.000000Z","v":9,"call_id":"c"}'
    decoded = ev.decode(future, "model_swapped")
    assert isinstance(decoded, ev.UnknownEvent) and decoded.payload["v"] == 9
    # written by a "newer version": insert the row with a valid chain
    from llm_events.log.store import row_hash

    conn = sqlite3.connect(store.path)
    seq, prev = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    h = row_hash(prev, seq + 1, "x-1", "model_swapped", "c", decoded.ts, future.decode())
    conn.execute(
        "INSERT INTO events VALUES (?,?,?,?,?,?,?,?)",
        (seq + 1, "x-1", "model_swapped", "c", decoded.ts, future.decode(), prev, h),
    )
    conn.execute("UPDATE _meta SET value=? WHERE key='head'", (f"{seq + 1}:{h}",))
    conn.commit()
    assert store.rebuild() == seq + 1
    assert store.verify().ok
    assert [type(s.event).__name__ for s in store.iter_events()][-1] == "UnknownEvent"


def test_rebuild_reproduces_the_incremental_projections(store, builder, monkeypatch):
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)
    record_calls(store.path, builder, 3)

    class Down(llm_events.LLMClient):
        def _generate(self, prompt, *, context_builder):
            raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        llm_events.with_retry(
            lambda: Down().generate(builder.build_prompt("x"), context_builder=builder), attempts=2
        )
    store.flush()  # the search index is filled in batches: flush brings it up to date
    conn = sqlite3.connect(store.path)
    before = {
        t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
        for t in ("calls", "prompts", "replay_results")
    }
    fts_before = conn.execute(
        "SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'question'"
    ).fetchall()
    conn.close()
    store.rebuild()
    conn = sqlite3.connect(store.path)
    after = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in before}
    assert after == before
    assert len(before["calls"]) == 4 and len(before["prompts"]) == 3
    assert (
        conn.execute("SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'question'").fetchall()
        == fts_before
    )
    # new appends after a rebuild still reach the FTS index
    record_calls(store.path, builder, 1)
    store.flush()
    assert (
        len(
            conn.execute(
                "SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'question'"
            ).fetchall()
        )
        == 4
    )


def test_batch_mode_commits_on_flush_and_close(tmp_path):
    path = tmp_path / "batch.db"
    store = EventStore(path, batch=True, batch_interval=60)
    events = [ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id=f"c{i}") for i in range(100)]
    store.append(events)
    assert sqlite3.connect(path).execute("SELECT count(*) FROM events").fetchone() == (0,)
    store.flush()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM calls").fetchone() == (100,)
    store.append(events[:0] + [ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id="last")])
    store.close()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM events").fetchone() == (101,)
    assert EventStore(path, readonly=True).verify().ok


def test_import_style_append_ignores_existing_ids(store):
    events = [ev.CallStarted(id=f"id-{i}", ts=ev.now_iso(), call_id=f"c{i}") for i in range(3)]
    store.append(events, ignore_existing=True)
    store.append(
        events + [ev.CallStarted(id="id-9", ts=ev.now_iso(), call_id="c9")], ignore_existing=True
    )
    assert store.count() == 4
    assert store.verify().ok


def test_reading_by_type_call_and_time(store, builder):
    ids = record_calls(store.path, builder, 3)
    assert [s.event.type_name for s in store.call_events(ids[1])] == [
        "prompt_built",
        "call_started",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    assert len(list(store.iter_events(types=["call_finished"], chunk=2))) == 3
    first_ts = next(store.iter_events()).event.ts
    assert len(list(store.iter_events(since=first_ts))) == 15
    assert list(store.iter_events(until=first_ts)) == []
    assert [s.seq for s in store.iter_events(after_seq=10, until_seq=12)] == [11, 12]


def test_batch_mode_through_configure_records_calls_on_flush(db_path, builder):
    import llm_events

    llm_events.configure(batch=True)
    client = llm_events.client_from_spec("echo")
    b = llm_events.ContextBuilder()
    results = [client.generate(b.build_prompt(f"q{i}"), context_builder=b) for i in range(20)]
    llm_events.flush()
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM calls WHERE status='ok'").fetchone() == (20,)
    assert {c for (c,) in conn.execute("SELECT call_id FROM prompts")} == {
        r.call_id for r in results
    }


def test_batch_queue_is_bounded_when_producers_outrun_the_writer(tmp_path):
    path = tmp_path / "bounded.db"
    store = EventStore(path, batch=True, batch_interval=60, batch_max=100)
    for i in range(1000):
        store.append([ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id=f"c{i}")])
        assert len(store._queue) < 200
    store.close()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM calls").fetchone() == (1000,)


def test_a_projection_whose_version_changed_is_rebuilt_on_open(db_path, builder):
    import llm_events

    record_calls(db_path, builder, 2)
    llm_events.recording.config.reset()
    conn = sqlite3.connect(db_path)
    # as a file written by the previous version left it: prompts v1 held the prompt as JSON
    conn.execute('UPDATE prompts SET prompt = \'{"user": "old layout"}\'')
    conn.execute("UPDATE _projections SET version = 1 WHERE name = 'prompts'")
    conn.commit()
    conn.close()
    store = EventStore(db_path)
    rows = store.conn().execute("SELECT prompt, text FROM prompts ORDER BY id").fetchall()
    assert rows == [("question 0", "question 0"), ("question 1", "question 1")]
    from llm_events.log.projections import PromptsProjection

    assert store.conn().execute(
        "SELECT version FROM _projections WHERE name = 'prompts'"
    ).fetchone() == (PromptsProjection.version,)


def test_schema_1_file_gets_the_sparse_type_index_and_stays_readable(db_path, builder):
    from llm_events.log.queries import open_readonly

    record_calls(db_path, builder, 2)
    llm_events.recording.config.reset()
    conn = sqlite3.connect(db_path)
    # as schema 1 left it: events_type covered every event type
    conn.execute("DROP INDEX events_type")
    conn.execute("CREATE INDEX events_type ON events(type, seq)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    reader = open_readonly(db_path)  # reading commands read schema 1 as it is
    assert reader.execute("SELECT count(*) FROM calls").fetchone() == (2,)
    reader.close()

    store = EventStore(db_path)
    conn = store.conn()
    assert conn.execute("PRAGMA user_version").fetchone() == (STORE_SCHEMA_VERSION,)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events_type'").fetchone()
    assert "WHERE type = 'route_chosen' OR" in sql
    # a sparse type is found through the index, a per-call type by a scan in seq order
    plan = " ".join(
        r[-1]
        for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM events WHERE type = 'attempt_failed' "
            "ORDER BY seq DESC LIMIT 5"
        )
    )
    assert "USING COVERING INDEX events_type" in plan
    assert [s.event.type_name for s in store.iter_events(types=["call_finished"])] == [
        "call_finished",
        "call_finished",
    ]
    store.close()


def test_a_rebuild_that_fails_half_way_is_finished_by_the_next_catch_up(
    store, builder, monkeypatch
):
    from llm_events.log.projections import CallsProjection

    record_calls(store.path, builder, 4)
    store.flush()
    conn = sqlite3.connect(store.path)
    before = conn.execute("SELECT * FROM calls ORDER BY call_id").fetchall()
    real_apply = CallsProjection.apply
    seen = []

    def failing_apply(self, c, batch):
        seen.append(batch[0][0])
        if len(seen) == 3:
            raise RuntimeError("disk on fire")
        return real_apply(self, c, batch)

    monkeypatch.setattr(CallsProjection, "apply", failing_apply)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.rebuild(chunk=2)
    assert seen == [1, 3, 5]  # chunks arrive in seq order
    monkeypatch.setattr(CallsProjection, "apply", real_apply)
    # the chunks before the failure stayed (each is its own transaction, so the write lock
    # is never held long); the checkpoint says where it stopped, and catching up finishes
    store.catch_up()
    assert conn.execute("SELECT * FROM calls ORDER BY call_id").fetchall() == before
    assert store.rebuild(chunk=3) == 20
    assert conn.execute("SELECT * FROM calls ORDER BY call_id").fetchall() == before
    conn.close()

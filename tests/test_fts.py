"""The search index (``prompts_fts``) is filled in batches, a little behind ``prompts``."""

from __future__ import annotations

import sqlite3
import time

from click.testing import CliRunner

import llm_events
from llm_events.cli import main
from llm_events.log import fts
from llm_events.log import writer as write_path


def record(builder, n, start=0):
    client = llm_events.client_from_spec("echo")
    ids = [
        client.generate(builder.build_prompt(f"question {i}"), context_builder=builder).call_id
        for i in range(start, start + n)
    ]
    llm_events.open_store().catch_up()  # prompts follows the log; the index follows prompts
    return ids


def matches(db_path, word="question"):
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(
            "SELECT count(*) FROM prompts_fts WHERE prompts_fts MATCH ?", (word,)
        ).fetchone()[0]
    finally:
        conn.close()


def unindexed(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return fts.unindexed(conn)
    finally:
        conn.close()


def integrity_ok(db_path):
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("INSERT INTO prompts_fts(prompts_fts) VALUES ('integrity-check')")
        return True
    finally:
        conn.close()


def test_answers_wait_for_a_batch_and_are_indexed_at_close(db_path, builder, monkeypatch):
    monkeypatch.setattr(write_path, "IDLE_S", 3600.0)  # no background indexing here
    record(builder, 3)
    assert matches(db_path) == 0
    assert unindexed(db_path) == 3
    llm_events.open_store(db_path).close()
    assert matches(db_path) == 3
    assert unindexed(db_path) == 0
    assert integrity_ok(db_path)


def test_the_append_that_fills_a_batch_indexes_it(db_path, builder, monkeypatch):
    monkeypatch.setattr(write_path, "IDLE_S", 3600.0)
    record(builder, fts.FTS_BATCH - 1)
    assert unindexed(db_path) == fts.FTS_BATCH - 1
    record(builder, 1, start=fts.FTS_BATCH)
    assert unindexed(db_path) == 0
    assert matches(db_path) == fts.FTS_BATCH
    assert integrity_ok(db_path)


def test_the_background_thread_indexes_once_appends_pause(db_path, builder):
    record(builder, 2)
    deadline = time.monotonic() + 10
    while unindexed(db_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert unindexed(db_path) == 0
    assert matches(db_path) == 2


def test_search_brings_the_index_up_to_date_first(db_path, builder, monkeypatch):
    monkeypatch.setattr(write_path, "IDLE_S", 3600.0)
    ids = record(builder, 2)
    assert matches(db_path) == 0
    result = CliRunner().invoke(main, ["search", "question", "--full", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert all(call_id in result.output for call_id in ids)
    assert "note:" not in result.output
    assert unindexed(db_path) == 0


def test_search_says_what_it_could_not_index(db_path, builder, monkeypatch):
    monkeypatch.setattr(write_path, "IDLE_S", 3600.0)
    record(builder, 2)
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock throughout
    try:
        result = CliRunner().invoke(main, ["search", "question", "--db", str(db_path)])
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.exit_code == 0, result.output
    assert (
        "note: the 2 newest answered calls are not in the search index yet "
        "(the store could not be written to index them; the next write to it does)"
    ) in result.output
    assert "no matches" in result.output


def test_a_file_indexed_by_the_old_trigger_is_rebuilt_not_indexed_twice(db_path, builder):
    record(builder, 2)
    llm_events.recording.config.reset()
    conn = sqlite3.connect(db_path)
    # as prompts projection 2 left a file: no batch mark, every row indexed by a trigger
    conn.execute("DELETE FROM _meta WHERE key = ?", (fts.INDEXED_KEY,))
    conn.execute("UPDATE _projections SET version = 2 WHERE name = 'prompts'")
    conn.commit()
    assert fts.index_pending(conn) == 0  # no mark: nothing is indexed a second time
    conn.close()
    llm_events.EventStore(db_path).close()  # opening rebuilds the projection
    assert matches(db_path) == 2
    assert unindexed(db_path) == 0
    assert integrity_ok(db_path)


def test_close_does_not_wait_long_for_the_index_when_the_file_is_locked(
    db_path, builder, monkeypatch
):
    monkeypatch.setattr(write_path, "IDLE_S", 3600.0)
    record(builder, 2)
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        llm_events.open_store(db_path).close()  # no error: the index is derived data
        waited = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert waited < 10  # it gives up after about a second, not the 30 s busy timeout
    assert unindexed(db_path) == 2  # left for the next writer...
    assert fts.catch_up(db_path) == 2  # ...or `search`
    assert matches(db_path) == 2

"""``tool_calls`` is a projection table: one row per tool call of each recorded answer,
equal after a rebuild, served newest-first and by call or function from indexes, and made
from the old view when a store written by an older version is opened."""

from __future__ import annotations

import sqlite3

from llm_events import ContextBuilder, EventStore, client_from_spec, flush
from tests.helpers import read_db

#: The view older versions created (llm_events.log.views before tool_calls was projected).
OLD_VIEW = (
    "CREATE VIEW tool_calls AS SELECT\n    "
    "e.seq, e.ts, e.call_id,\n    "
    "json_extract(e.payload, '$.attempt') AS attempt,\n    "
    "c.key AS position,\n    "
    "json_extract(c.value, '$.id') AS tool_call_id,\n    "
    "json_extract(c.value, '$.name') AS name,\n    "
    "json_extract(c.value, '$.arguments') AS arguments\n"
    "FROM events e, json_each(e.payload, '$.tool_calls') c\n"
    "WHERE e.type = 'attempt_succeeded'"
)
ALL = "SELECT * FROM tool_calls ORDER BY seq, position"


def record(spec: str, text: str) -> str:
    builder = ContextBuilder()
    result = client_from_spec(spec).generate(builder.build_prompt(text), context_builder=builder)
    return result.call_id


def test_a_call_with_two_tool_calls_projects_two_rows(db_path):
    record("echo", "no tools here")
    first = record("tests.helpers:forecast_call", "And on Saturday?")
    second = record("tests.helpers:forecast_sunday", "And on Sunday?")
    flush()
    conn = read_db(db_path)
    (seq,) = conn.execute(
        "SELECT seq FROM events WHERE call_id = ? AND type = 'attempt_succeeded'", (second,)
    ).fetchone()
    rows = conn.execute(
        "SELECT seq, call_id, attempt, position, tool_call_id, name, arguments FROM tool_calls "
        "ORDER BY seq DESC, position"
    ).fetchall()
    assert rows == [
        (seq, second, 1, 0, "c1", "get_forecast",
         '{"city": "Paris", "day": "sunday", "units": "metric"}'),
        (seq, second, 1, 1, "c2", "get_weather", '{"city": "Paris"}'),
        (rows[2][0], first, 1, 0, "call_2", "get_forecast",
         '{"city": "Paris", "day": "saturday", "units": "metric"}'),
    ]  # fmt: skip
    ts = conn.execute("SELECT ts FROM events WHERE seq = ?", (seq,)).fetchone()[0]
    assert conn.execute("SELECT DISTINCT ts FROM tool_calls WHERE seq = ?", (seq,)).fetchall() == [
        (ts,)
    ]

    # what Datasette's pages ask: newest first (the key, read backwards), one call's, one
    # function's (their indexes); none sorts in a temporary b-tree
    def plan(sql: str, *args: str) -> str:
        return " | ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))

    newest = plan("SELECT * FROM tool_calls ORDER BY seq DESC LIMIT 50")
    by_call = plan("SELECT * FROM tool_calls WHERE call_id = ? ORDER BY seq DESC", first)
    by_name = plan("SELECT * FROM tool_calls WHERE name = ? ORDER BY seq DESC", "get_weather")
    assert newest == "SCAN tool_calls"
    assert by_call.startswith("SEARCH tool_calls USING INDEX tool_calls_call (call_id=?)")
    assert by_name.startswith("SEARCH tool_calls USING INDEX tool_calls_name (name=?)")
    assert "TEMP B-TREE" not in by_call + by_name
    conn.close()


def test_tool_calls_after_a_rebuild_equal_the_caught_up_rows(db_path):
    for _ in range(3):
        record("tests.helpers:forecast_sunday", "And on Sunday?")
        record("echo", "plain")
    flush()
    conn = read_db(db_path)
    caught_up = conn.execute(ALL).fetchall()
    assert len(caught_up) == 6
    store = EventStore(db_path)
    assert store.rebuild(only=["tool_calls"]) == store.last_seq()
    store.rebuild()
    store.close()
    assert conn.execute(ALL).fetchall() == caught_up
    conn.close()


def test_a_store_with_the_old_view_gets_the_table_with_the_same_rows(db_path):
    record("tests.helpers:forecast_sunday", "And on Sunday?")
    record("tests.helpers:forecast_call", "And on Saturday?")
    flush()
    # as an older version left the file: a view, and no checkpoint for a tool_calls table
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("DROP TABLE tool_calls")
    conn.execute(OLD_VIEW)
    conn.execute("DELETE FROM _projections WHERE name = 'tool_calls'")
    from_view = conn.execute(ALL).fetchall()
    assert len(from_view) == 3
    conn.close()

    EventStore(db_path).close()  # a writer of this version opens it: the upgrade
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT type FROM sqlite_master WHERE name = 'tool_calls'").fetchall() == [
        ("table",)
    ]
    assert conn.execute(ALL).fetchall() == from_view
    assert conn.execute(
        "SELECT last_seq = (SELECT max(seq) FROM events) FROM _projections "
        "WHERE name = 'tool_calls'"
    ).fetchone() == (1,)
    conn.close()
    # and it keeps following the log
    record("tests.helpers:forecast_call", "And next week?")
    flush()
    conn = read_db(db_path)
    assert conn.execute("SELECT count(*) FROM tool_calls").fetchone() == (4,)
    conn.close()

"""Datasette: the metadata matches the schema, and a real server serves every table, view,
canned query and search, as JSON and as HTML, read-only, with answers shown as text."""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from llm_events.browse.datasette import (
    METADATA_DB_NAME,
    datasette_command,
    load_metadata,
    metadata_for,
)
from llm_events.log import processes
from llm_events.log.views import VIEWS
from tests.cli_support import XSS, Browse, SampleStore, make_sample_store

ROOT = Path(__file__).resolve().parent.parent
DB = "mystore"  # not "events": the metadata must follow the file's name


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> SampleStore:
    return make_sample_store(tmp_path_factory.mktemp("datasette") / f"{DB}.db", rich=True)


@pytest.fixture(scope="module")
def server(sample):
    browse = Browse(sample.path).wait()
    yield browse
    browse.stop()


def meta_db() -> dict:
    return load_metadata()["databases"][METADATA_DB_NAME]


def shown_tables() -> list[str]:
    return [name for name, t in meta_db()["tables"].items() if not t.get("hidden")]


# --- the metadata file ------------------------------------------------------------------------


def test_metadata_is_valid_json_and_shipped_identically():
    root = (ROOT / "datasette-metadata.json").read_bytes()
    shipped = (ROOT / "llm_events" / "datasette-metadata.json").read_bytes()
    assert root == shipped, (
        "edit datasette-metadata.json at the root, then copy it into llm_events/"
    )
    meta = json.loads(root)
    assert meta["title"] and meta["description"]
    assert load_metadata() == meta


def schema(db: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(db)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")
        ]
        return {n: {r[1] for r in conn.execute(f"PRAGMA table_info([{n}])")} for n in names}
    finally:
        conn.close()


def test_metadata_names_only_what_exists_and_describes_everything(sample):
    """Fails when the schema and datasette-metadata.json drift apart, in either direction."""
    actual = schema(sample.path)
    tables = meta_db()["tables"]
    for name, t in tables.items():
        assert name in actual, f"metadata names table/view {name!r} that the store lacks"
        for column in t.get("columns", {}):
            assert column in actual[name], f"metadata names column {name}.{column} that is missing"
        for facet in t.get("facets", []):
            col = facet if isinstance(facet, str) else next(iter(facet.values()))
            assert col in actual[name], f"facet {name}.{col} names a missing column"
        for key in ("sort_desc", "sort", "label_column"):
            if key in t:
                assert t[key] in actual[name], f"{key} of {name} names a missing column"
        if "fts_table" in t:
            assert t["fts_table"] in actual
    for name, columns in actual.items():
        assert name in tables, f"table/view {name!r} has no entry in datasette-metadata.json"
        t = tables[name]
        assert t.get("description"), f"{name} has no description"
        if not t.get("hidden"):
            missing = columns - set(t.get("columns", {}))
            assert not missing, f"columns of {name} without a description: {sorted(missing)}"
    assert set(VIEWS) <= set(actual)


def test_canned_queries_run_on_a_store(sample):
    conn = sqlite3.connect(sample.path)
    queries = meta_db()["queries"]
    assert {
        "failed_calls",
        "retried_calls",
        "fallback_calls",
        "call_timeline",
        "slowest_calls",
        "cost_per_model_per_day",
        "replay_regressions",
    } <= set(queries)
    for name, q in queries.items():
        assert q.get("title") and q.get("description"), name
        params = set(re.findall(r":(\w+)", q["sql"]))
        assert params == set(q.get("params", [])), f"{name}: params {params}"
        conn.execute(q["sql"], dict.fromkeys(params, "x")).fetchall()
        # a call's events are found through events_call_id, never by scanning every event
        # of a type through the partial events_type index (seconds per row on big stores)
        plan = " ".join(
            r[-1]
            for r in conn.execute(f"EXPLAIN QUERY PLAN {q['sql']}", dict.fromkeys(params, "x"))
        )
        assert "USING INDEX events_type" not in plan, f"{name}: {plan}"


def test_metadata_is_renamed_for_the_store_file():
    meta = metadata_for("/some/where/prod-logs.db")
    assert list(meta["databases"]) == ["prod-logs"]
    assert metadata_for("/x/events.db")["databases"].keys() == {"events"}


def test_a_large_store_opens_events_without_the_type_facet(sample, monkeypatch):
    """Counting the types of 1M events reads the whole log: Datasette's facet only timed
    out, costing every page of ``events`` its time limit."""
    from llm_events.browse import datasette as ds

    small = metadata_for(sample.path)["databases"][DB]["tables"]["events"]
    assert small["facets"] == ["type"]
    monkeypatch.setattr(ds, "TYPE_FACET_MAX_EVENTS", 10)
    large = metadata_for(sample.path)["databases"][DB]["tables"]["events"]
    assert "facets" not in large and "?_facet=type counts anyway" in large["description"]


def test_browse_command_is_read_only_on_localhost(tmp_path):
    cmd = datasette_command(tmp_path / "x.db", tmp_path / "m.json", port=9999)
    assert cmd[1:5] == ["-P", "-m", "datasette", "serve"]
    assert "--immutable" not in cmd and "-i" not in cmd
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--port") + 1] == "9999"


# --- a real server ----------------------------------------------------------------------------


@pytest.mark.parametrize("table", shown_tables())
def test_every_table_and_view_as_json_and_html(server, table):
    data = server.json(f"/{DB}/{table}.json?_shape=objects")
    assert "rows" in data
    if table in ("events", "calls", "prompts") or table.startswith("events_"):
        assert data["rows"], f"{table} is empty"
    status, page = server.get(f"/{DB}/{table}")
    assert status == 200
    description = meta_db()["tables"][table]["description"]
    assert description in html.unescape(page)


def test_newest_first_and_facets(server, sample):
    calls = server.json(f"/{DB}/calls.json?_shape=objects")
    started = [r["started_at"] for r in calls["rows"]]
    assert started == sorted(started, reverse=True)
    assert calls["rows"][0]["call_id"] in sample.replay_call_ids  # the replay came last
    facets = calls["facet_results"]
    assert {"status", "model", "backend", "started_at"} <= set(facets)
    status = {r["value"]: r["count"] for r in facets["status"]["results"]}
    assert status == {"ok": 13, "error": 1}  # the demo's 10, the agent's call, 3 replay calls
    events = server.json(f"/{DB}/events.json?_shape=objects")
    seqs = [r["seq"] for r in events["rows"]]
    assert seqs == sorted(seqs, reverse=True)
    types = {r["value"] for r in events["facet_results"]["type"]["results"]}
    assert {"fallback_taken", "retry_scheduled", "attempt_failed"} <= types
    errors = server.json(f"/{DB}/calls.json?_shape=objects&status=error")
    assert [r["call_id"] for r in errors["rows"]] == [sample.failed_call_id]


def test_dense_event_views_open_uncounted_and_count_on_request(server, sample):
    """Counting a view of a type every call writes reads the whole log (seconds on 1M
    events), so its page opens with ``_nocount=1``; ``?_count=1`` counts; sparse views are
    counted through their index as usual."""
    import http.client

    with sqlite3.connect(sample.path) as conn:
        counts = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type"))
    link = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    link.request("GET", f"/{DB}/events_prompt_built?user__contains=a")
    answer = link.getresponse()
    answer.read()
    link.close()
    assert answer.status == 302
    assert answer.getheader("location") == (
        f"/{DB}/events_prompt_built?user__contains=a&_nocount=1"
    )
    n = counts["prompt_built"]
    status, page = server.get(f"/{DB}/events_prompt_built")
    assert status == 200 and "<td" in page
    assert f"<h3>{n} rows" not in page and "add ?_count=1 to count" in html.unescape(page)
    status, page = server.get(f"/{DB}/events_prompt_built?_count=1")
    assert status == 200 and f"<h3>{n} rows" in page
    status, page = server.get(f"/{DB}/events_attempt_failed")
    failed = counts["attempt_failed"]
    assert status == 200 and f"<h3>{failed} row{'s' if failed != 1 else ''}" in page


def canned(server, name: str, **params: str) -> list[dict]:
    from urllib.parse import urlencode

    query = urlencode({**params, "_shape": "objects"})
    data = server.json(f"/{DB}/{name}.json?{query}")
    status, page = server.get(f"/{DB}/{name}?{urlencode(params)}")
    assert status == 200, page[:300]
    assert meta_db()["queries"][name]["title"] in html.unescape(page)
    return data["rows"]


def test_canned_queries_answer_the_audit_questions(server, sample):
    assert [r["call_id"] for r in canned(server, "failed_calls")] == [sample.failed_call_id]
    assert [r["call_id"] for r in canned(server, "retried_calls")] == [
        sample.agent_call_id,  # retried, then fell back
        sample.retried_call_id,
    ]
    fell_back = canned(server, "fallback_calls")
    assert sample.fallback_call_id in {r["call_id"] for r in fell_back}
    assert all("->" in r["switches"] for r in fell_back)
    slowest = canned(server, "slowest_calls")
    assert slowest[0]["latency_ms"] == max(r["latency_ms"] for r in slowest)
    per_day = canned(server, "cost_per_model_per_day")
    assert sum(r["calls"] for r in per_day) == 14
    assert sum(r["by_replays"] for r in per_day) == 3  # replays cost money too: counted, named
    assert canned(server, "replay_regressions") == []
    assert canned(server, "replay_regressions", replay_id="nope") == []


def test_call_timeline_query_takes_an_id_prefix(server, sample):
    assert canned(server, "call_timeline") == []  # no id: the form, no rows
    # the 18-character short id `calls` prints: 13 characters are only the millisecond,
    # which two calls recorded back to back can share
    rows = canned(server, "call_timeline", call_id=sample.fallback_call_id[:18])
    assert [r["type"] for r in rows] == [
        "prompt_built",
        "call_started",
        "route_chosen",
        "attempt_started",
        "attempt_failed",
        "fallback_taken",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    assert rows[0]["ms"] == 0 and all(r["ms"] >= 0 for r in rows)
    assert [r["ms"] for r in rows] == sorted(r["ms"] for r in rows)
    assert {r["call_id"] for r in rows} == {sample.fallback_call_id}


def test_search_over_prompts_and_answers(server, sample):
    data = server.json(f"/{DB}/prompts.json?_search=refund&_shape=objects")
    assert data["rows"] and all(
        "refund" in (r["text"] + r["response_text"]).lower() for r in data["rows"]
    )
    hits = canned(server, "search_answers", q="refund annual")
    # matches are marked with \x02 ... \x03, shown as <mark> (brackets can be in the text)
    assert hits and "\x02refund\x03" in hits[0]["prompt"]
    # the replays' copies of the refund question are left out: the recorded call only
    assert not {h["call_id"] for h in hits} & set(sample.replay_call_ids)
    status, page = server.get(f"/{DB}/search_answers?q=refund+annual")
    assert "<mark>refund</mark>" in page
    assert canned(server, "search_answers", q=XSS)[0]["call_id"] == sample.xss_call_id
    status, page = server.get(f"/{DB}/prompts?_search=invoices")
    assert status == 200 and "<mark>invoices</mark>" in page.lower()  # the ranked query


def test_call_ids_link_to_their_call_page(server, sample):
    status, page = server.get(f"/{DB}/failed_calls")
    assert status == 200
    assert f'href="/-/calls/{sample.failed_call_id}"' in page
    # the calls table's primary key too (Datasette would link it to the row page)
    status, page = server.get(f"/{DB}/calls")
    assert f'href="/-/calls/{sample.failed_call_id}"' in page
    status, page = server.get(f"/{DB}/replays")
    assert f'href="/-/replays/{sample.replay_id}"' in page


def test_answers_render_as_text_never_as_html(server, sample):
    escaped = html.escape(XSS, quote=False)
    pages = [
        f"/{DB}/prompts",
        f"/{DB}/calls",
        f"/{DB}/events_prompt_built",
        f"/{DB}/events_attempt_succeeded",
        f"/{DB}/call_timeline?call_id={sample.xss_call_id}",
        f"/{DB}/events",
    ]
    for path in pages:
        status, page = server.get(path)
        assert status == 200
        assert XSS not in page, f"unescaped script tag on {path}"
        assert "alert(1)" in page and ("&lt;script&gt;" in page), path
    assert escaped in server.get(f"/{DB}/prompts")[1]


def test_server_is_read_only_and_sees_new_rows(server, sample):
    from urllib.parse import quote

    status, body = server.get(f"/{DB}.json?sql={quote('delete from calls')}")
    assert status != 200 or "error" in body.lower()
    status, body = server.get(f"/{DB}.json?sql={quote('insert into _meta values (1, 2)')}")
    assert status != 200 or "error" in body.lower()
    before = server.json(f"/{DB}/calls.json?_size=0")["filtered_table_rows_count"]
    # another process appends while Datasette runs: the new call shows up
    from llm_events import ContextBuilder, EventStore, client_from_spec
    from llm_events.recording.recorder import call_options

    store = EventStore(sample.path)
    try:
        b = ContextBuilder(store=store)
        with call_options(store=store):
            client_from_spec("echo").generate(b.build_prompt("late arrival"), context_builder=b)
    finally:
        store.close()
    after = server.json(f"/{DB}/calls.json?_size=0")["filtered_table_rows_count"]
    assert after == before + 1


def test_browse_errors_are_one_line(tmp_path):
    from click.testing import CliRunner

    from llm_events.cli import main

    missing = CliRunner().invoke(main, ["browse", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 1 and missing.output.startswith("Error: no event store at")
    make_sample_store(tmp_path / "x.db")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        busy = CliRunner().invoke(main, ["browse", "--db", str(tmp_path / "x.db"), "-p", str(port)])
    assert busy.exit_code == 1
    assert busy.output == f"Error: port {port} on 127.0.0.1 is in use: pass --port N (or 0)\n"
    printed = CliRunner().invoke(
        main, ["browse", "--db", str(tmp_path / "x.db"), "--print-command"]
    )
    assert printed.exit_code == 0 and " -m datasette serve " in printed.output
    opened = CliRunner().invoke(
        main, ["browse", "--db", str(tmp_path / "x.db"), "-p", "0", "--open", "--print-command"]
    )
    assert opened.exit_code == 0
    assert opened.output.rstrip().endswith("--open")
    assert "--port 0 " not in opened.output  # 0: a free port was picked


def test_browse_adds_views_to_an_older_store(tmp_path):
    from llm_events.browse.datasette import ensure_views

    db = tmp_path / "old.db"
    make_sample_store(db)
    conn = sqlite3.connect(db)
    for name in VIEWS:
        conn.execute(f"DROP VIEW {name}")
    conn.commit()
    conn.close()
    assert sorted(ensure_views(db)) == sorted(VIEWS)
    assert ensure_views(db) == []


def test_browse_updates_a_view_an_older_version_defined(tmp_path):
    from llm_events.browse.datasette import ensure_views

    db = tmp_path / "old.db"
    make_sample_store(db)
    conn = sqlite3.connect(db)
    conn.execute("DROP VIEW events_call_started")  # as version 0.1 (event schema 1) made it
    conn.execute(
        "CREATE VIEW events_call_started AS SELECT seq, ts, call_id, "
        "json_extract(payload, '$.client') AS client FROM events WHERE type = 'call_started'"
    )
    conn.commit()
    assert ensure_views(db) == ["events_call_started"]
    columns = [r[1] for r in conn.execute("PRAGMA table_info(events_call_started)")]
    assert columns[-3:] == ["host", "pid", "source"]
    host, pid = conn.execute("SELECT host, pid FROM events_call_started LIMIT 1").fetchone()
    conn.close()
    assert (host, pid) == (processes.current().host, os.getpid())

"""``calls``, ``show``, ``tail``, ``search``, ``stats`` on a real store file (CliRunner)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_events.cli import COMMANDS, main
from tests.cli_support import XSS, SampleStore, make_sample_store


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    return make_sample_store(tmp_path_factory.mktemp("listing") / "sample.db")


def run(sample: SampleStore | None, *args: str, columns: int = 120):
    db = ["--db", str(sample.path)] if sample is not None else []
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(main, [*args, *db])


def one_line_error(result, fragment: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.output
    assert fragment in errors[0]


# --- calls -----------------------------------------------------------------------------------


def test_calls_lists_newest_first_in_an_aligned_table(sample):
    result = run(sample, "calls")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    header = lines[0].split()
    assert header[:5] == ["CALL", "STARTED", "STATUS", "MODEL", "BACKEND"]
    assert len(lines) == 1 + 10
    # newest first: the echo call recorded last is on top
    assert lines[1].startswith(sample.xss_call_id[:18])
    assert lines[-1].startswith(sample.call_ids[0][:18])
    # columns line up: STATUS starts at the same offset on every row
    col = lines[0].index("STATUS")
    assert {line[col : col + 5].strip() for line in lines[1:]} <= {"ok", "error"}
    failed = next(line for line in lines if line.startswith(sample.failed_call_id[:18]))
    assert " error " in failed and "ContentRefused" in failed


def test_calls_fit_the_terminal_and_full_shows_everything(sample):
    narrow = run(sample, "calls", columns=100)
    assert all(len(line) <= 100 for line in narrow.output.splitlines())
    assert "…" in narrow.output
    full = run(sample, "calls", "--full", columns=100)
    assert sample.xss_call_id in full.output  # the whole id
    assert XSS in full.output  # the whole prompt preview


def test_calls_filters(sample):
    def ids(*args: str) -> list[str]:
        result = run(sample, "calls", "--json", *args)
        assert result.exit_code == 0, result.output
        return [c["call_id"] for c in json.loads(result.output)]

    assert ids("--status", "error") == [sample.failed_call_id]
    assert len(ids("-n", "3")) == 3
    assert len(ids("-n", "0")) == 10  # 0: all
    assert ids("--tag", "xss") == [sample.xss_call_id]
    assert len(ids("--tag", "demo")) == 9
    assert len(ids("--tag", "high_roi")) >= 1  # a tag of the prompt, not the call
    small = ids("--model", "small*")
    assert small and all(
        c["model"] == "small-q4"
        for c in json.loads(run(sample, "calls", "--json", "--model", "small*").output)
    )
    assert ids("--backend", "echo") == [sample.xss_call_id]
    assert len(ids("--since", "1h")) == 10
    assert len(ids("--since", "2000-01-01")) == 10
    assert ids("--until", "2000-01-01T00:00") == []


def test_calls_json_objects_carry_call_id_and_parsed_tags(sample):
    result = run(sample, "calls", "--json", "--status", "error")
    (call,) = json.loads(result.output)
    assert call["call_id"] == sample.failed_call_id
    assert call["status"] == "error"
    assert call["tags"] == ["demo"]
    assert call["fallbacks"] == 1 and call["error_type"] == "ContentRefused"


def test_calls_with_no_match_says_so(sample):
    result = run(sample, "calls", "--model", "nope")
    assert result.exit_code == 0
    assert "no calls match" in result.output


@pytest.mark.parametrize("since", ["yesterday", "2h30", "2026-13-45", "-3d"])
def test_bad_since_is_one_line(sample, since):
    one_line_error(run(sample, "calls", "--since", since), "bad --since", code=2)


def test_missing_store_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["calls", "--db", str(tmp_path / "none.db")])
    one_line_error(result, "no event store at")


def test_corrupt_store_is_one_line(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    for args in (["calls"], ["show", "01"], ["stats"], ["search", "x"], ["tail"], ["export"]):
        result = CliRunner().invoke(main, [*args, "--db", str(bad)])
        one_line_error(result, str(bad) if args[0] != "x" else "")


def test_foreign_sqlite_file_is_one_line(tmp_path):
    import sqlite3

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE birds (name)")
    one_line_error(
        CliRunner().invoke(main, ["calls", "--db", str(other)]), "not an llm-events store"
    )


# --- show ------------------------------------------------------------------------------------


def test_show_a_fallback_timeline_by_prefix(sample):
    # the 18-character short id `calls` prints: 13 characters are only the millisecond,
    # which two calls recorded back to back can share
    result = run(sample, "show", sample.fallback_call_id[:18])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"call {sample.fallback_call_id}\n")
    assert "status    ok (2 attempt(s), 0 retries, 1 fallback(s))" in out
    timeline = out.split("\ntimeline\n")[1].split("\n\n")[0].splitlines()
    labels = [line[13:34].strip() for line in timeline]
    assert labels == [
        "prompt built",
        "call started",
        "route chosen",
        "attempt 1 started",
        "attempt 1 failed",
        "fallback",
        "attempt 2 started",
        "attempt 2 succeeded",
        "call finished",
    ]
    assert timeline[0].strip().startswith("+0.0ms")
    assert "ServiceUnavailable (HTTP 503, retryable" in out
    assert "remote-sim:large-2025 -> local-sim:small-q4" in out
    assert "\nprompt\n" in out and "\nanswer\n" in out
    assert "[small] " in out.split("\nanswer\n")[1]


def test_show_a_failed_and_a_retried_call(sample):
    failed = run(sample, "show", sample.failed_call_id).output
    assert "status    error" in failed
    assert "error     ContentRefused: the local model refuses" in failed
    assert "\nanswer\n" not in failed
    retried = run(sample, "show", sample.retried_call_id).output
    assert "retry scheduled" in retried
    assert "attempt 2 succeeded" in retried


def test_show_json_has_the_call_and_every_event(sample):
    result = run(sample, "show", sample.fallback_call_id, "--json")
    data = json.loads(result.output)
    assert data["call"]["call_id"] == sample.fallback_call_id
    types = [e["type"] for e in data["events"]]
    assert types[0] == "prompt_built" and types[-1] == "call_finished"
    assert "fallback_taken" in types
    assert data["events"][0]["offset_ms"] == 0
    assert all(e["offset_ms"] >= 0 for e in data["events"])
    assert data["answer"]["response_text"].startswith("[small]")


def test_show_unknown_and_ambiguous_ids(sample):
    one_line_error(run(sample, "show", "ffffffff"), "no call with id 'ffffffff'")
    one_line_error(run(sample, "show", "0"), "is ambiguous")


def test_show_full_prints_context_items(sample):
    short = run(sample, "show", sample.fallback_call_id).output
    full = run(sample, "show", sample.fallback_call_id, "--full").output
    conn = sqlite3.connect(sample.path)
    (items, sources) = conn.execute(
        "SELECT json_array_length(p.payload, '$.context'), "
        "(SELECT group_concat(json_extract(value, '$.source')) "
        " FROM json_each(p.payload, '$.context')) "
        "FROM calls c JOIN events p ON p.id = c.prompt_id WHERE c.call_id LIKE ?",
        (sample.fallback_call_id + "%",),
    ).fetchone()
    conn.close()
    assert items >= 1
    assert f"context:  {items} items" in short
    assert f"context ({items} items):" in full
    assert all(f"- {source}" in full for source in sources.split(","))


# --- tail ------------------------------------------------------------------------------------


def test_tail_prints_the_newest_events(sample):
    result = run(sample, "tail", "-n", "5")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == 5
    assert "call finished" in lines[-1]
    seqs = [int(line.split()[0]) for line in lines]
    assert seqs == sorted(seqs)


def test_tail_filters_and_json(sample):
    lines = run(sample, "tail", "-n", "50", "--type", "attempt_failed").output.splitlines()
    assert lines and all("failed" in line for line in lines)
    events = [json.loads(x) for x in run(sample, "tail", "-n", "3", "--json").output.splitlines()]
    assert [e["type"] for e in events][-1] == "call_finished"
    assert all("seq" in e and "id" in e for e in events)
    tagged = run(sample, "tail", "-n", "100", "--tag", "xss", "--json").output.splitlines()
    assert {json.loads(x)["call_id"] for x in tagged} == {sample.xss_call_id}


# --- search ----------------------------------------------------------------------------------


def test_search_ranks_and_marks_matches(sample):
    result = run(sample, "search", "refund")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["CALL", "TIME", "MODEL"]
    assert len(lines) >= 2 and all("[refund]" in line.lower() for line in lines[1:])


def test_search_takes_any_text_without_query_syntax_errors(sample):
    result = run(sample, "search", "<script>alert(1)</script>", "--json")
    assert result.exit_code == 0, result.output
    (hit,) = json.loads(result.output)
    assert hit["call_id"] == sample.xss_call_id
    assert hit["prompt"] == "Does the pricing page render <script>alert(1)</script> safely?"
    for text in ('"', "AND OR", "*", "foo:bar", "(x"):
        assert run(sample, "search", text).exit_code == 0


def test_search_without_match_and_with_filters(sample):
    none = run(sample, "search", "zebra")
    assert none.exit_code == 0 and "no matches" in none.output
    hits = json.loads(run(sample, "search", "refund", "--model", "large-2025", "--json").output)
    assert hits and {h["model"] for h in hits} == {"large-2025"}


# --- stats -----------------------------------------------------------------------------------


def test_stats_summarises_per_model_and_backend(sample):
    result = run(sample, "stats")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("10 calls: 1 failed (10.0%), 1 retries, 2 fell back")
    header = lines[2].split()
    assert header[:6] == ["MODEL", "BACKEND", "CALLS", "FAILED", "FAIL%", "RETRIES"]
    assert any(line.startswith("echo-1") for line in lines)
    assert lines[-1].startswith("(all)")


def test_stats_json_and_since(sample):
    data = json.loads(run(sample, "stats", "--since", "1d", "--json").output)
    assert data["total"]["calls"] == 10
    assert data["total"]["failed"] == 1
    assert data["total"]["p50_ms"] <= data["total"]["p95_ms"]
    by = {(g["model"], g["backend"]): g for g in data["groups"]}
    assert by[("small-q4", "local-sim")]["fallbacks"] == 2
    assert data["since"].endswith("Z")
    assert "no calls match" in run(sample, "stats", "--until", "2001-01-01").output


# --- every command ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "--db" in result.output or name == "replay"


def test_listing_uses_llm_events_db_from_the_environment(db_path: Path):
    make_sample_store(db_path)
    result = CliRunner().invoke(main, ["calls", "-n", "1"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 2


def test_reading_queries_follow_the_store_schema(tmp_path):
    import sqlite3

    from llm_events.log.queries import READS_SCHEMA
    from llm_events.log.store import STORE_SCHEMA_VERSION

    assert READS_SCHEMA == STORE_SCHEMA_VERSION
    newer = tmp_path / "newer.db"
    make_sample_store(newer)
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION + 1}")
    conn.close()
    one_line_error(
        CliRunner().invoke(main, ["calls", "--db", str(newer)]), "written by a newer llm-events"
    )


def test_search_ranks_the_newest_matches_unless_told_to_rank_all(sample):
    from llm_events.log.queries import open_readonly
    from llm_events.log.search import search

    conn = open_readonly(sample.path)
    try:
        everything = search(conn, "data", rank_window=None)
        newest_two = search(conn, "data", rank_window=2)
    finally:
        conn.close()
    assert len(everything) > 2 and len(newest_two) == 2
    assert {r["call_id"] for r in newest_two} <= {r["call_id"] for r in everything}
    ranked_all = json.loads(run(sample, "search", "data", "--rank-all", "--json").output)
    assert [r["call_id"] for r in ranked_all] == [r["call_id"] for r in everything]

"""The rough edges a new user found in the CLI (issue 13), each with its exact output and exit
status, and replay traffic kept apart from application traffic in the listings."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_events.cli import main
from tests.cli_support import SampleStore, console_script, make_sample_store


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    return make_sample_store(tmp_path_factory.mktemp("edges") / "sample.db", rich=True)


def cli(*args: str, db: Path | None = None, columns: int = 120):
    extra = ["--db", str(db)] if db is not None else []
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(
        main, [*args, *extra], prog_name="llm-events"
    )


def params_of_last_attempt(db: Path) -> dict:
    conn = sqlite3.connect(db)
    try:
        (payload,) = conn.execute(
            "SELECT payload FROM events WHERE type = 'attempt_started' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return json.loads(payload)["params"]


# --- prompt -----------------------------------------------------------------------------------


def test_prompt_model_parameters_are_sent_and_recorded_not_a_traceback(tmp_path):
    db = tmp_path / "p.db"
    ok = cli("prompt", "hi", "-m", "echo", "-o", "temperature", "0", db=db)
    assert (ok.exit_code, ok.stdout, ok.stderr) == (0, "hi\n", "")
    assert params_of_last_attempt(db) == {"temperature": 0}
    other = cli("prompt", "hi", "-m", "echo", "-o", "foo", "bar", db=db)
    assert (other.exit_code, other.stdout) == (0, "hi\n")
    assert params_of_last_attempt(db) == {"foo": "bar"}
    bad = cli("prompt", "hi", "-m", "echo", "-o", "base_url", "http://127.0.0.1:9", db=db)
    assert bad.exit_code == 1
    assert bad.stderr == (
        "Error: the echo client takes no option 'base_url' (client options: api_key, base_url, "
        "connect_timeout, log_prompts, timeout; any other -o is a model parameter)\n"
    )


def test_prompt_json_and_calls_json_say_tokens_estimated_alike(tmp_path):
    db = tmp_path / "p.db"
    answer = json.loads(cli("prompt", "hi", "-m", "echo", "--json", db=db).stdout)
    assert answer["tokens_estimated"] is True  # was 1
    (call,) = json.loads(cli("calls", "--json", db=db).stdout)
    assert call["tokens_estimated"] is True


def test_a_cassette_miss_says_what_differs(tmp_path):
    cassette = tmp_path / "copy.db"
    assert (
        cli(
            "prompt", "What is the refund window?", "-m", "echo", "-s", "Be brief.", db=cassette
        ).exit_code
        == 0
    )
    miss = cli(
        "prompt",
        "What is the refund window?",
        "-m",
        f"recorded:{cassette}",
        "-s",
        "Answer in French.",
        db=tmp_path / "other.db",
    )
    assert miss.exit_code == 1
    (line,) = miss.stderr.splitlines()
    assert line.startswith(
        f"Error: no recorded answer in {cassette} for prompt 'What is the refund window?'; "
        "nearest recorded prompt: 'What is the refund window?' (similarity 0."
    )
    assert line.endswith(
        "; same user text, but the system prompt differs: 'Be brief.' recorded, "
        "'Answer in French.' now) (recorded as call " + line.rsplit("(recorded as call ", 1)[1]
    )


# --- tail, show, rebuild: errors and wording -----------------------------------------------------

TYPES = (
    "prompt_built, call_started, route_chosen, attempt_started, attempt_failed, "
    "retry_scheduled, fallback_taken, attempt_succeeded, call_finished, replay_started, "
    "replay_compared, replay_finished"
)


def test_tail_refuses_an_unknown_event_type(sample):
    result = cli("tail", "--type", "attempt_faild", db=sample.path)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: bad --type: unknown event type 'attempt_faild': did you mean "
        f"attempt_failed? the types are {TYPES}\n"
    )


def test_tail_follow_with_an_unknown_type_stops_at_once(sample):
    """With -f it used to wait for ever for events that cannot come."""
    done = subprocess.run(
        [console_script(), "tail", "-f", "--type", "nope", "--db", str(sample.path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("Error: bad --type: unknown event type 'nope'")


def test_show_says_answered_only_for_an_answered_call(sample, tmp_path):
    failed = cli("show", sample.failed_call_id, db=sample.path).stdout.splitlines()
    assert "  last tried local-sim / small-q4" in failed
    assert not any(line.startswith("  answered") for line in failed)
    ok = cli("show", sample.fallback_call_id, db=sample.path).stdout.splitlines()
    assert "  answered  local-sim / small-q4" in ok
    # a running call: only asked so far
    from llm_events import EventStore
    from llm_events.log import events as ev

    db = tmp_path / "running.db"
    store = EventStore(db)
    store.append(
        [
            ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id="run-1", client="x"),
            ev.AttemptStarted(
                id=ev.new_id(),
                ts=ev.now_iso(),
                call_id="run-1",
                attempt=1,
                backend="openai",
                model="gpt-4o",
            ),
        ]
    )
    store.close()
    running = cli("show", "run-1", db=db).stdout.splitlines()
    assert "  asked     openai / gpt-4o" in running


def test_rebuild_only_help_and_error_name_the_same_projections(sample):
    from llm_events.cli.store_commands import PROJECTIONS
    from llm_events.log.projections import default_projections

    assert list(PROJECTIONS) == [p.name for p in default_projections()]
    help_text = cli("rebuild", "--help").stdout
    assert "projection (calls, prompts, tool_calls, replay_results, replays)" in " ".join(
        help_text.split()
    )
    bad = cli("rebuild", "--only", "call", db=sample.path)
    assert bad.exit_code == 2
    assert bad.stderr == (
        "Error: bad --only: 'call' is not a projection; the projections are calls, prompts, "
        "tool_calls, replay_results, replays\n"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["calls", "--nope"],
            "Error: No such option '--nope'. (Did you mean one of: '--model', '--since'?); "
            "see 'llm-events calls --help'\n",
        ),
        (["nosuch"], "Error: No such command 'nosuch'; see 'llm-events --help'\n"),
        (["show"], "Error: Missing argument 'CALL_ID'; see 'llm-events show --help'\n"),
        (["calls", "-n", "x"], "Error: bad -n/--limit: 'x' is not a whole number\n"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(sample, args, expected):
    result = cli(*args, db=sample.path)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", expected)


def test_since_errors_read_the_same_in_calls_and_replay(sample):
    reason = (
        "cannot read time 'lastweek': use a duration like 30m, 2h, 3d, 1w or an ISO date like "
        "2026-01-31 or 2026-01-31T09:00"
    )
    for command in (["calls"], ["stats"], ["search", "x"], ["replay", "--against", "echo"]):
        result = cli(*command, "--since", "lastweek", db=sample.path)
        assert result.exit_code == 2, command
        assert result.stderr == f"Error: bad --since: {reason}\n"


# --- replay -------------------------------------------------------------------------------------


@pytest.fixture
def replay_store(tmp_path) -> Path:
    """A copy of the sample (the replay tests write to it)."""
    db = tmp_path / "r.db"
    make_sample_store(db)
    return db


def test_replay_leaves_calls_that_failed_when_recorded_out_by_default(replay_store):
    default = json.loads(cli("replay", "--against", "echo", "--json", db=replay_store).stdout)
    assert {k: v for k, v in default["selection"].items() if k != "max_seq"} == {"status": "ok"}
    assert default["total"] == 9  # the sample's 10 calls but the one that failed
    assert all(r["source_call_id"] for r in default["results"])
    every = json.loads(
        cli("replay", "--against", "echo", "--status", "all", "--json", db=replay_store).stdout
    )
    assert every["selection"]["status"] is None and every["total"] == 10
    # a call named by id is replayed whatever its status
    conn = sqlite3.connect(replay_store)
    (failed,) = conn.execute("SELECT call_id FROM calls WHERE status = 'error'").fetchone()
    conn.close()
    named = json.loads(
        cli("replay", "--against", "echo", "--id", failed, "--json", db=replay_store).stdout
    )
    assert named["total"] == 1 and named["results"][0]["source_call_id"] == failed


def test_replay_takes_m_and_n_like_the_other_commands(replay_store):
    result = cli(
        "replay", "--against", "echo", "-m", "large-2025", "-n", "2", "--json", db=replay_store
    )
    report = json.loads(result.stdout)
    selection = {k: v for k, v in report["selection"].items() if k != "max_seq"}
    assert selection == {"model": "large-2025", "status": "ok", "limit": 2}
    assert report["total"] == 2


def test_replay_report_fits_the_terminal_and_full_shows_both_answers(replay_store):
    narrow = cli("replay", "--against", "echo", "--max-changed", "100", db=replay_store, columns=70)
    assert narrow.exit_code == 0
    lines = narrow.stdout.splitlines()
    worst = lines[lines.index("Worst differences:") + 1 :]
    assert worst and all(len(line) <= 70 for line in worst if line.startswith("    "))
    recorded = [line for line in worst if line.startswith("    recorded: ")]
    new = [line for line in worst if line.startswith("    new:      ")]
    assert recorded and len(recorded) == len(new)
    assert any(line.endswith("…") for line in recorded)  # cut to the width
    full = cli(
        "replay", "--against", "echo", "--max-changed", "100", "--full", db=replay_store, columns=70
    )
    text = full.stdout
    assert "    recorded: [large] Refunds are possible within 30 days" in text
    assert max(len(line) for line in text.splitlines()) > 70  # nothing cut


# --- replay traffic apart -------------------------------------------------------------------------


def test_listings_leave_replay_calls_out_unless_asked(sample):
    calls = json.loads(cli("calls", "-n", "0", "--json", db=sample.path).stdout)
    assert not {c["call_id"] for c in calls} & set(sample.replay_call_ids)
    assert len(calls) == 11
    everything = json.loads(
        cli("calls", "-n", "0", "--json", "--include-replays", db=sample.path).stdout
    )
    assert set(sample.replay_call_ids) <= {c["call_id"] for c in everything}
    assert len(everything) == 14
    stats = json.loads(cli("stats", "--json", db=sample.path).stdout)
    assert stats["total"]["calls"] == 11
    assert (
        json.loads(cli("stats", "--json", "--include-replays", db=sample.path).stdout)["total"][
            "calls"
        ]
        == 14
    )
    hits = json.loads(cli("search", "refund", "--json", db=sample.path).stdout)
    assert hits and not {h["call_id"] for h in hits} & set(sample.replay_call_ids)
    more = json.loads(cli("search", "refund", "--json", "--include-replays", db=sample.path).stdout)
    assert len(more) > len(hits)
    tail = cli("tail", "-n", "0", "--json", db=sample.path)
    assert tail.exit_code == 0
    keys = {
        json.loads(line).get("call_id")
        for line in cli("tail", "-n", "500", "--json", db=sample.path).stdout.splitlines()
    }
    assert not keys & set(sample.replay_call_ids)
    assert sample.replay_id not in keys  # nor the run's own events
    keys_all = {
        json.loads(line).get("call_id") or json.loads(line).get("replay_id")
        for line in cli(
            "tail", "-n", "500", "--json", "--include-replays", db=sample.path
        ).stdout.splitlines()
    }
    assert set(sample.replay_call_ids) <= keys_all and sample.replay_id in keys_all


def test_replays_lists_the_runs(sample):
    result = cli("replays", db=sample.path)
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "REPLAY",
        "STARTED",
        "STATUS",
        "AGAINST",
        "COMPARE",
        "TOTAL",
        "SAME",
        "CHANGED",
        "ERROR",
        "SKIPPED",
    ]
    assert row.startswith(sample.replay_id[:18] + "  ")
    assert row.split()[3:] == ["completed", "echo", "exact", "3", "0", "3", "0", "0"]
    (run,) = json.loads(cli("replays", "--json", db=sample.path).stdout)
    assert run["replay_id"] == sample.replay_id and run["changed"] == 3
    assert run["selection"]["limit"] == 3
    empty = cli("replays", "--since", "2099-01-01", db=sample.path)
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, "", "no replay runs match\n")


def test_help_of_every_command_is_there():
    for command in ("replays", "replay", "tail", "calls"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "Usage: llm-events " + command in result.stdout
    assert "--include-replays" in cli("calls", "--help").stdout
    assert "--full" in cli("replay", "--help").stdout
    assert sys.executable  # the suite runs the commands in-process and as a real process

"""``llm-events replay`` as users and CI run it: reports, exit codes, errors, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_events import EventStore, record_interrupted
from llm_events.cli import main

from .helpers import read_db
from .test_replay_clients import record_calls

ROOT = Path(__file__).resolve().parent.parent
DIFFERS = "tests.test_replay_clients:differs_for_multiples_of_five"


def invoke(*args: str):
    return CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)


@pytest.fixture
def fifty(store) -> list[str]:
    return record_calls(50)


def test_exit_status_follows_max_changed(fifty):
    within = invoke("--against", DIFFERS, "--max-changed", "10")
    assert within.exit_code == 0, within.output
    assert "10 changed, 0 error, 0 skipped" in within.stdout
    assert "  changed         10" in within.stdout
    assert "Worst differences:" in within.stdout

    over = invoke("--against", DIFFERS, "--max-changed", "9")
    assert over.exit_code == 1
    assert over.stderr == "over the limit: 10 changed + 0 error > --max-changed 9\n"

    assert invoke("--against", "echo").exit_code == 0  # default --max-changed 0


def test_json_report(fifty):
    result = invoke("--against", DIFFERS, "--json", "--max-changed", "50")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert (report["same"], report["changed"], report["error"]) == (40, 10, 0)
    assert report["status"] == "completed" and report["total"] == 50
    assert len(report["results"]) == 50
    by_source = {r["source_call_id"]: r for r in report["results"]}
    assert by_source[fifty[10]]["verdict"] == "changed"
    assert by_source[fifty[11]]["verdict"] == "same"
    assert set(by_source[fifty[10]]) >= {"replay_call_id", "score", "diff", "latency_delta_ms"}


def test_markdown_report(fifty, tmp_path):
    out = tmp_path / "replay.md"
    result = invoke("--against", DIFFERS, "--markdown", str(out), "--max-changed", "10")
    assert result.exit_code == 0
    assert f"Markdown report written to {out}" in result.stdout
    md = out.read_text()
    assert md.startswith("### ⚠️ Replay `")
    assert "| same | 40 |\n| changed | 10 |\n| error | 0 |" in md
    assert "```diff\n-question #0 about billing\n+a different answer" in md


def test_selection_options_reach_the_replay(fifty):
    result = invoke("--against", "echo", "--sample", "5", "--seed", "3", "--json")
    assert json.loads(result.stdout)["same"] == 5
    result = invoke("--against", "echo", "--id", fifty[2], "--id", fifty[4], "--json")
    assert [r["source_call_id"] for r in json.loads(result.stdout)["results"]] in (
        [fifty[2], fifty[4]],
        [fifty[4], fifty[2]],
    )


def test_empty_selection_is_a_clear_message_and_exit_0(fifty, db_path):
    result = invoke("--against", "echo", "--model", "gpt-nothing")
    assert result.exit_code == 0
    assert result.stdout == "no recorded calls match the selection (model=gpt-nothing, status=ok)\n"
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM events WHERE type LIKE 'replay%'").fetchone() == (0,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--against", "nope"], "Error: unknown client spec 'nope'"),
        ([], "Error: missing --against SPEC"),
        (
            ["--against", "echo", "--since", "soon"],
            "Error: bad --since: cannot read time 'soon'",
        ),
        (["--against", "echo", "--id", "no-such-call"], "Error: no recorded call 'no-such-call'"),
        (["--against", "echo", "--compare", "fuzzy"], "Error: unknown comparator 'fuzzy'"),
        (["--resume", "no-such-replay"], "Error: no replay 'no-such-replay'"),
        (["--resume", "x", "--model", "m"], "Error: --resume reuses the replay's own selection"),
        (["--against", "echo", "--db", "/nonexistent/x.db"], "Error: no event store at"),
    ],
)
def test_usage_and_store_errors_exit_2_in_one_line(fifty, args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_click_validation_exits_2(fifty):
    assert invoke("--against", "echo", "--concurrency", "0").exit_code == 2
    assert invoke("--against", "echo", "--timeout", "0").exit_code == 2


def test_help_explains_every_option():
    result = CliRunner().invoke(main, ["replay", "--help"])
    assert result.exit_code == 0
    for option in (
        "--against", "--model", "--backend", "--tag", "--status", "--since", "--until",
        "--id", "--limit", "--sample", "--seed", "--compare", "--threshold", "--concurrency",
        "--timeout", "--max-changed", "--json", "--markdown", "--resume", "--db",
    ):  # fmt: skip
        assert option in result.output
    assert "Exit status: 0 when changed + error answers are within --max-changed" in result.output


# --- real processes ----------------------------------------------------------------------


def _env(db: Path, delay: float) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LLM_EVENTS_DB=str(db), PYTHONPATH=str(ROOT), REPLAY_TEST_DELAY=str(delay))
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from llm_events.cli import main; main()", *args]


def _wait_for_results(db: Path, n: int, proc: subprocess.Popen, limit: float = 20.0) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            conn = sqlite3.connect(db)
            got = conn.execute("SELECT count(*) FROM replay_results").fetchone()[0]
            conn.close()
        except sqlite3.OperationalError:
            got = 0
        if got >= n:
            return got
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} results after {limit}s")


def _replay_row(db: Path) -> tuple:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT replay_id, status FROM replays").fetchone()
    finally:
        conn.close()


def _replay_calls(db: Path, replay_id: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT count(*) FROM calls WHERE tags LIKE ?", (f'%"replay:{replay_id}"%',)
        ).fetchone()[0]
    finally:
        conn.close()


def test_sigkill_mid_run_leaves_a_valid_store_and_resume_skips_done_calls(db_path):
    calls = record_calls(40)
    proc = subprocess.Popen(
        _cli("replay", "--against", "tests.test_replay_clients:slow", "--concurrency", "2"),
        env=_env(db_path, 0.1),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for_results(db_path, 6, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    verify = subprocess.run(_cli("verify"), env=_env(db_path, 0), capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("ok: ")

    replay_id, status = _replay_row(db_path)
    assert status == "running"  # no replay_finished: the process died
    conn = sqlite3.connect(db_path)
    done = conn.execute("SELECT count(*) FROM replay_results").fetchone()[0]
    assert 6 <= done < 40
    in_flight = {r for (r,) in conn.execute("SELECT call_id FROM calls WHERE status='running'")}
    conn.close()
    calls_before = _replay_calls(db_path, replay_id)

    # the next process that records into the store closes the run and its calls in flight
    closed = record_interrupted(EventStore(db_path))
    assert sorted(closed) == sorted([*in_flight, replay_id])
    conn = read_db(db_path)
    assert conn.execute(
        "SELECT status, same + changed + error FROM replays WHERE replay_id = ?", (replay_id,)
    ).fetchone() == ("interrupted", done)
    conn.close()

    resumed = subprocess.run(
        _cli("replay", "--resume", replay_id, "--json"),
        env=_env(db_path, 0),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert (report["replay_id"], report["same"], report["total"]) == (replay_id, 40, 40)
    assert sorted(r["source_call_id"] for r in report["results"]) == sorted(calls)
    # only the calls not yet compared were sent again
    assert _replay_calls(db_path, replay_id) - calls_before == 40 - done
    assert _replay_row(db_path) == (replay_id, "completed")


def test_ctrl_c_records_replay_finished_interrupted(db_path):
    record_calls(30)
    proc = subprocess.Popen(
        _cli("replay", "--against", "tests.test_replay_clients:slow", "--concurrency", "2"),
        env=_env(db_path, 0.2),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_results(db_path, 2, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    replay_id, status = _replay_row(db_path)
    assert status == "interrupted"
    assert f"continue with `llm-events replay --resume {replay_id}`" in err
    assert out.startswith(f"replay {replay_id}: ")
    conn = sqlite3.connect(db_path)
    finished = conn.execute(
        "SELECT json_extract(payload, '$.status') FROM events WHERE type = 'replay_finished'"
    ).fetchall()
    assert finished == [("interrupted",)]

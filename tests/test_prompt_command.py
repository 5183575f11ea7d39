"""`llm-events prompt`: one recorded call, retries of retryable errors, clear one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from llm_events.cli import main

from .backend_helpers import (
    SECRET,
    base_url,
    broken_stream,
    events,
    events_text,
    openai_completion,
    openai_sse,
    server_fixtures,
    types,
)
from .conftest import cli_env
from .helpers import read_db

PATH = "/v1/chat/completions"

shared_server, server = server_fixtures()


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def test_prompt_against_a_local_openai_server(server, db_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", base_url(server, "/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.expect_request(PATH).respond_with_json(openai_completion("Hello from the server"))
    result = invoke(
        "prompt",
        "hi",
        "-m",
        "openai:gpt-4o-mini",
        "-s",
        "Be brief.",
        "-o",
        "temperature",
        "0.2",
        "-o",
        "stop",
        '["END"]',
        "-o",
        "json",
        "true",
    )
    assert result.exit_code == 0, result.output
    assert result.output == "Hello from the server\n"
    body = json.loads(server.log[0][0].data)
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (body["temperature"], body["stop"]) == (0.2, ["END"])
    assert body["response_format"] == {"type": "json_object"}
    assert events(db_path, "attempt_started")[0]["params"] == {
        "temperature": 0.2,
        "stop": ["END"],
        "json": True,
    }
    assert types(db_path)[-1] == "call_finished"
    assert SECRET not in events_text(db_path)


def test_installed_console_script(server, db_path):
    """The command from the issue, run as users run it: a real process, env settings."""
    server.expect_request(PATH).respond_with_json(openai_completion("ok from a process"))
    env = cli_env(db_path)
    env.update(OPENAI_BASE_URL=base_url(server, "/v1"), OPENAI_API_KEY=SECRET)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from llm_events.cli import main; main()",
            "prompt",
            "hi",
            "-m",
            "openai:gpt-4o-mini",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok from a process\n"
    assert types(db_path) == [
        "call_started",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]


def test_429_then_success_is_one_call_with_a_retry(server, db_path):
    server.expect_ordered_request(PATH).respond_with_json(
        {"error": {"message": "Rate limit reached", "type": "requests"}},
        status=429,
        headers={"Retry-After": "1"},
    )
    server.expect_ordered_request(PATH).respond_with_json(openai_completion("after the wait"))
    result = invoke(
        "prompt",
        "hi",
        "-m",
        "openai:gpt-4o-mini",
        "-o",
        "base_url",
        base_url(server, "/v1"),
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["text"] == "after the wait"
    assert (out["attempts"], out["retries"], out["status"]) == (2, 1, "ok")
    assert out["cost"] is not None
    assert types(db_path) == [
        "call_started",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    assert {e["call_id"] for e in events(db_path) if "call_id" in e} == {out["call_id"]}
    assert events(db_path, "retry_scheduled")[0]["delay_s"] == 1.0
    assert "retrying: attempt 1/3 failed (RateLimitError" in result.stderr


def test_400_is_one_line_error_without_retry(server, db_path):
    server.expect_request(PATH).respond_with_json(
        {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error"}},
        status=400,
    )
    result = invoke(
        "prompt", "hi", "-m", "openai:gpt-4o-mini", "-o", "base_url", base_url(server, "/v1")
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: openai: HTTP 400: Invalid value")
    assert "recorded as call" in lines[0]
    assert "Traceback" not in result.output
    assert len(server.log) == 1 and "retry_scheduled" not in types(db_path)


def test_retries_are_bounded(server, db_path):
    server.expect_request(PATH).respond_with_json({"error": {"message": "boom"}}, status=500)
    result = invoke(
        "prompt",
        "hi",
        "-m",
        "openai:gpt-4o-mini",
        "-o",
        "base_url",
        base_url(server, "/v1"),
        "--retries",
        "1",
        "--retry-delay",
        "0.01",
        "--json",
    )
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["error_type"] == "ServerError" and out["status_code"] == 500 and out["retryable"]
    assert len(server.log) == 2
    assert events(db_path, "call_finished")[0]["status"] == "error"


def test_unknown_spec_and_bad_option_are_clear_errors():
    result = invoke("prompt", "hi", "-m", "nosuchbackend:model")
    assert result.exit_code == 2 and "unknown client spec" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    result = invoke("prompt", "hi", "-m", "llm:markov", "-o", "temperature", "1")
    assert result.exit_code == 1
    assert "has no option for 'temperature'" in result.stderr


def test_llm_markov_end_to_end(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    result = invoke(
        "prompt", "the cat sat on the mat", "-m", "llm:markov", "-o", "length", "4", "--json"
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["text"].split()) == 4
    assert (out["backend"], out["model"], out["cost"]) == ("llm", "markov", 0.0)
    assert events(db_path, "attempt_started")[0]["params"] == {"length": 4}


def _stream(server, *extra: str):
    return invoke(
        "prompt",
        "hi",
        "-m",
        "openai:gpt-4o-mini",
        "-o",
        "base_url",
        base_url(server, "/v1"),
        "--retry-delay",
        "0",
        "--stream",
        *extra,
    )


def test_stream_prints_the_answer_as_it_arrives_and_retries_before_any_text(server, db_path):
    server.expect_ordered_request(PATH).respond_with_json(
        {"error": {"message": "overloaded"}}, status=503
    )
    server.expect_ordered_request(PATH).respond_with_data(
        openai_sse(["Hel", "lo", "!"]), content_type="text/event-stream"
    )
    result = _stream(server)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hello!\n"
    assert "retrying: attempt 1/3 failed (ServerError" in result.stderr
    assert json.loads(server.log[1][0].data)["stream"] is True
    assert types(db_path) == [
        "call_started",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    assert events(db_path, "attempt_succeeded")[0]["text"] == "Hello!"
    assert events(db_path, "attempt_started")[1]["params"] == {"stream": True}


def test_stream_broken_after_text_is_not_retried(server, db_path):
    server.expect_request(PATH).respond_with_handler(
        broken_stream([openai_sse(["Once upon"], done=False)])
    )
    result = _stream(server)
    assert result.exit_code == 1
    assert result.stdout == "Once upon\n"  # what arrived, then the error on stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "recorded as call" in line
    assert len(server.log) == 1  # printed text cannot be taken back: no retry
    failed = events(db_path, "attempt_failed")
    assert [(e["error_type"], e["partial_text"]) for e in failed] == [
        ("StreamInterrupted", "Once upon")
    ]
    assert events(db_path, "call_finished")[0]["status"] == "error"


def test_stream_and_json_do_not_mix(server):
    result = _stream(server, "--json")
    assert result.exit_code == 2
    assert "--stream prints text as it arrives and --json at the end: use one" in result.stderr
    assert server.log == []


def test_ctrl_c_exits_130_naming_the_recorded_call(db_path):
    import signal
    import sqlite3
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**cli_env(db_path), "PYTHONPATH": str(root), "REPLAY_TEST_DELAY": "30"}
    # Ctrl-C raises KeyboardInterrupt even where the test runner's parent ignores SIGINT
    cli = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from llm_events.cli import main; main()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", cli, "prompt", "hello", "-m", "tests.test_replay_clients:slow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the request is under way
        try:
            if db_path.exists() and "attempt_started" in types(db_path):
                break
        except sqlite3.OperationalError:  # the store is still being created
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    conn = read_db(db_path)
    call_id, status, error_type = conn.execute(
        "SELECT call_id, status, error_type FROM calls"
    ).fetchone()
    conn.close()
    assert (out, err) == ("", f"interrupted (recorded as call {call_id})\n")
    assert (status, error_type) == ("error", "KeyboardInterrupt")

"""``llm-events proxy`` as a real process: refusals, start-up line, SIGTERM, SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from llm_events.log.store import EventStore

from .cli_support import console_script
from .fake_upstream import OPENAI_TEXT, FakeUpstream, Scripted
from .proxy_support import OPENAI_KEY, call_events, finished_calls


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script(), "proxy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "Error: refusing to listen on 0.0.0.0 without --token"),
        (["--host", "192.168.1.20"], "Error: refusing to listen on 192.168.1.20 without --token"),
        (["--upstream", "vllm"], "Error: --upstream expects NAME=URL, got 'vllm'"),
        (["--upstream", "vllm=gpu:8000"], "Error: upstream 'vllm': URL must start with http"),
        (["--inject-key", "openai=LLM_EVENTS_UNSET_VAR"], "$LLM_EVENTS_UNSET_VAR is not set"),
        (["--inject-key", "nope=HOME"], "--inject-key nope=HOME: no upstream named nope"),
    ],
)
def test_refusals_are_one_line_and_exit_2(args, message, db_path):
    """Option values the proxy cannot work with are usage errors, as in every command."""
    r = run_cli(*args, "--db", str(db_path))
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not db_path.exists()


class ProxyProcess:
    """``llm-events proxy --port 0`` in a subprocess; ``url`` from its start-up line."""

    def __init__(self, db: Path, upstream: str, *extra: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                console_script(),
                "proxy",
                "--port",
                "0",
                "--db",
                str(db),
                "--upstream",
                f"openai={upstream}/v1",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline()
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.first_line)
        if found is None:
            self.proc.kill()
            raise AssertionError(f"no start-up line: {self.first_line!r} {self.proc.stderr.read()}")
        self.url = found.group(1)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err


def test_startup_line_access_log_and_graceful_sigterm_mid_stream(db_path):
    with FakeUpstream() as up:
        proxy = ProxyProcess(db_path, up.url)
        assert f"recording to {db_path}" in proxy.first_line
        assert f"openai={up.url}/v1" in proxy.first_line
        up.script(Scripted(delay_s=0.15))
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
        }
        with (
            httpx.Client() as client,
            client.stream("POST", proxy.url + "/v1/chat/completions", json=body) as response,
        ):
            chunks = response.iter_raw()
            received = next(chunks)
            proxy.proc.send_signal(signal.SIGTERM)  # in flight: it must finish first
            received += b"".join(chunks)
        assert received.endswith(b"data: [DONE]\n\n")
        code, err = proxy.stop()
    assert code == 0
    assert "method=POST path=/v1/chat/completions upstream=openai status=200" in err
    assert "Traceback" not in err
    store = EventStore(db_path)
    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    assert events["call_finished"][0].status == "ok"
    assert events["attempt_succeeded"][0].text == OPENAI_TEXT


def test_sigkill_mid_stream_then_restart_closes_the_call_as_interrupted(db_path):
    with FakeUpstream() as up:
        proxy = ProxyProcess(db_path, up.url)
        up.script(Scripted(delay_s=0.5))
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "killed"}], stream=True
        )
        next(iter(stream))
        proxy.proc.kill()
        proxy.proc.wait(30)
        with pytest.raises(Exception):  # noqa: B017 - the stream breaks as a direct one would
            for _ in stream:
                pass
        store = EventStore(db_path)
        (running,) = [s.event.call_id for s in store.iter_events(types=["call_started"])]
        assert finished_calls(store, 1, timeout=0) == []
        store.close()
        again = ProxyProcess(db_path, up.url)
        code, err = again.stop(signal.SIGINT)
    assert code == 0, err
    assert "closed 1 call(s) left running by an ended process as Interrupted" in err
    store = EventStore(db_path)
    events = call_events(store, running)
    assert events["prompt_built"][0].user == "killed"
    assert events["call_finished"][0].error_type == "Interrupted"
    assert events["attempt_failed"][0].error_type == "Interrupted"


def test_help_explains(db_path):
    r = run_cli("--help")
    assert r.returncode == 0
    for phrase in (
        "OPENAI_BASE_URL=http://127.0.0.1:8787/v1",
        "--upstream",
        "--token",
        "--inject-key",
        "--timeout",
    ):
        assert phrase in r.stdout


def test_module_entry_point_help():
    r = subprocess.run(
        [sys.executable, "-m", "llm_events", "proxy", "--help"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "recording reverse proxy" in r.stdout


def test_timeout_reaches_the_workers_and_the_store_verifies(db_path):
    """``--timeout`` (here 0.5 s, two workers): a silent upstream is a 504 for the SDK, the
    call is recorded, and ``llm-events verify`` passes on the store."""
    from .raw_upstream import RawUpstream

    with RawUpstream(lambda conn, head, body: up.wait_closed(conn, 10)) as up:
        proxy = ProxyProcess(db_path, up.url, "--timeout", "0.5", "--workers", "2")
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.status_code == 504
        assert info.value.body["code"] == "upstream_timeout"
        code, err = proxy.stop()
    assert code == 0, err
    assert "status=504" in err and "Traceback" not in err
    store = EventStore(db_path)
    (call_id,) = finished_calls(store, 1)
    assert call_events(store, call_id)["attempt_failed"][0].error_type == "ReadTimeout"
    store.close()
    r = subprocess.run(
        [console_script(), "verify", "--db", str(db_path)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr

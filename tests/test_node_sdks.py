"""The recording proxy with another language's clients: the official OpenAI and Anthropic
Node SDKs (tests/node) send every recorded exchange of the corpus through the proxy.

What the application gets from the SDK through the proxy (the answer, every streamed chunk,
the request id, the error it raised) must be what it gets straight from the upstream, and the
store must hold the call as the Python SDKs' tests check it.  The SDKs are installed with
``npm ci`` from ``tests/node/package-lock.json`` the first time (skipped where Node or npm is
missing, saying so).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_events.capture.server import ProxySettings, ProxyThread, build_app

from . import corpus
from .proxy_support import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    call_events,
    finished_calls,
    parsed_answer,
    store_bytes,
    stream_reports_error,
)

NODE_DIR = Path(__file__).parent / "node"
CASES = corpus.proxied_cases()


class NodeSDKs:
    """One ``node sdk_call.mjs`` process for the session: a JSON line in, a JSON line out."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen(
            [node, str(NODE_DIR / "sdk_call.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, case: corpus.Case, base: str) -> dict:
        key = ANTHROPIC_KEY if case.provider == "anthropic" else OPENAI_KEY
        body = corpus.request_body(case)
        args = {"provider": case.provider, "base": base, "body": body, "key": key}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the Node SDK process ended (its stderr is above)"
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def sdks() -> Iterator[NodeSDKs]:
    """The Node SDKs of package-lock.json (installed beside the script the first time)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are not installed: the Node SDK tests need them")
    with open(NODE_DIR / ".install.lock", "w") as lock:  # one xdist worker installs
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                pytest.skip(f"npm ci in {NODE_DIR} failed: {done.stderr.strip()[-500:]}")
    process = NodeSDKs(node)
    yield process
    process.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_node_sdk_through_the_proxy(sdks, case, store, db_path):
    with corpus.serve(case) as server:
        direct = sdks.call(case, server.url)
        s = ProxySettings(upstreams={"openai": server.url + "/v1", "anthropic": server.url})
        with ProxyThread(build_app(s, store)) as proxy:
            via = sdks.call(case, proxy.url)
        sent = server.requests[-1]
    assert via == direct
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers.get("x-stainless-lang") == "js"  # the Node SDK sent it
    failed = case.status >= 400 or stream_reports_error(case)
    if case.status >= 400:
        assert via["error"]["status"] == case.status
    else:
        assert via["answer" if not case.stream else "chunks"], via

    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    assert events["call_started"][0].source == "proxy"
    assert events["call_finished"][0].status == ("error" if failed else "ok")
    if failed:
        attempt = events["attempt_failed"][0]
        if case.status >= 400:
            assert attempt.status_code == case.status
        else:  # the error event the stream carried
            assert attempt.error_code or attempt.provider_error_type
    else:
        ok, want = events["attempt_succeeded"][0], parsed_answer(case)
        assert ok.text == want.text
        assert [(t.id, t.name, t.arguments) for t in ok.tool_calls] == [
            (t.id, t.name, t.arguments) for t in want.tool_calls
        ]
        assert (ok.finish_reason, ok.response_id) == (want.finish_reason, want.response_id)
    store.flush()
    everything = store_bytes(db_path)
    assert OPENAI_KEY.encode() not in everything and ANTHROPIC_KEY.encode() not in everything

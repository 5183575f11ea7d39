"""Stores for the CLI, Datasette and browser tests: the demo session plus a few known calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

XSS = "<script>alert(1)</script>"
XSS_QUESTION = f"Does the pricing page render {XSS} safely?"


@dataclass
class SampleStore:
    path: Path
    failed_call_id: str
    fallback_call_id: str
    retried_call_id: str
    xss_call_id: str
    call_ids: list[str]
    #: a schema-3 call (conversation with a tool call): rate limited, retried, failed again,
    #: fell back; a script tag in a tool argument, its model name and a tag
    agent_call_id: str = ""
    #: a replay run over three calls against echo (answers changed) and its calls
    replay_id: str = ""
    replay_call_ids: tuple[str, ...] = ()


XSS_MODEL = f"small{XSS}"


def _agent_call(store) -> str:
    """Append the events of a tool-using call that was retried, then fell back (schema 3)."""
    from llm_events.log import conversation as cv
    from llm_events.log import events as ev

    def ts(ms: float) -> str:
        return ev.now_iso(t0 + ms / 1000)

    import time

    t0 = time.time()
    pid, cid = ev.new_id(), ev.new_id()
    args = '{"city": "Paris", "note": "' + XSS.replace('"', '\\"') + '"}'
    messages = [
        cv.Message(role="system", parts=[cv.TextPart(content="You book trips. Use tools.")]),
        cv.Message(role="user", parts=[cv.TextPart(content="What is the weather in Paris?")]),
        cv.Message(
            role="assistant",
            parts=[cv.ToolCallPart(id="call_1", name="get_weather", arguments=args)],
        ),
        cv.Message(
            role="tool",
            parts=[cv.ToolCallResponsePart(id="call_1", response={"temp_c": 18, "sky": "clear"})],
        ),
    ]
    tools = [
        cv.ToolDefinition(
            name="get_weather",
            description="Current weather for a city",
            parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        )
    ]
    common = {"call_id": cid}
    events = [
        ev.PromptBuilt(
            id=pid,
            ts=ts(0),
            prompt_id=pid,
            user="What is the weather in Paris?",
            system="You book trips. Use tools.",
            messages=messages,
            tools=tools,
            tags=["agent"],
            origin="test",
        ),
        ev.CallStarted(
            id=ev.new_id(),
            ts=ts(1),
            prompt_id=pid,
            client="router(remote|local)",
            tags=["agent", XSS],
            host="testhost",
            pid=4242,
            source="application",
            **common,
        ),
        ev.AttemptStarted(
            id=ev.new_id(),
            ts=ts(2),
            attempt=1,
            backend="remote-sim",
            model="large-2025",
            params={"temperature": 0},
            **common,
        ),
        ev.AttemptFailed(
            id=ev.new_id(),
            ts=ts(120),
            attempt=1,
            backend="remote-sim",
            error_type="RateLimited",
            message="429 Too Many Requests: slow down",
            retryable=True,
            status_code=429,
            latency_ms=118.0,
            error_code="rate_limit_exceeded",
            provider_error_type="requests",
            request_id="req_ratelimited_1",
            **common,
        ),
        ev.RetryScheduled(
            id=ev.new_id(),
            ts=ts(121),
            attempt=1,
            delay_s=0.25,
            error_type="RateLimited",
            **common,
        ),
        ev.AttemptStarted(
            id=ev.new_id(),
            ts=ts(372),
            attempt=2,
            backend="remote-sim",
            model="large-2025",
            params={"temperature": 0},
            **common,
        ),
        ev.AttemptFailed(
            id=ev.new_id(),
            ts=ts(530),
            attempt=2,
            backend="remote-sim",
            error_type="ServiceUnavailable",
            message="503 the model is overloaded",
            retryable=True,
            status_code=503,
            latency_ms=157.0,
            **common,
        ),
        ev.FallbackTaken(
            id=ev.new_id(),
            ts=ts(531),
            from_backend="remote-sim",
            to_backend="local-sim",
            reason="ServiceUnavailable",
            **common,
        ),
        ev.AttemptStarted(
            id=ev.new_id(),
            ts=ts(532),
            attempt=3,
            backend="local-sim",
            model=XSS_MODEL,
            **common,
        ),
        ev.AttemptSucceeded(
            id=ev.new_id(),
            ts=ts(830),
            attempt=3,
            backend="local-sim",
            model=XSS_MODEL,
            text='{"answer": "18 °C and clear in Paris", "source": "get_weather"}',
            input_tokens=212,
            output_tokens=31,
            cached_tokens=128,
            reasoning_tokens=12,
            latency_ms=297.5,
            finish_reason="stop",
            request_id="req_local_3",
            reasoning=[cv.ReasoningPart(content="The tool said 18 C; answer briefly.")],
            tool_calls=[cv.ToolCallPart(id="call_2", name="book_trip", arguments=args)],
            **common,
        ),
        ev.CallFinished(
            id=ev.new_id(),
            ts=ts(831),
            status="ok",
            attempts=3,
            backend="local-sim",
            model=XSS_MODEL,
            latency_ms=830.0,
            **common,
        ),
    ]
    store.append(events)
    return cid


def make_sample_store(path: Path, *, rich: bool = False) -> SampleStore:
    """Record the demo session and one echo call whose prompt (and answer) hold a script tag;
    ``rich``: also a schema-3 tool-using call (:func:`_agent_call`) and a replay run."""
    from llm_events import ContextBuilder, EventStore, client_from_spec
    from llm_events.cli.demo_session import run_demo
    from llm_events.recording.recorder import call_options

    store = EventStore(path)
    try:
        report = run_demo(store, retry_delay=0.0)
        builder = ContextBuilder(store=store)
        with call_options(store=store, tags=["xss"]) as opts:
            prompt = builder.build_prompt(XSS_QUESTION)
            client_from_spec("echo:echo-1").generate(prompt, context_builder=builder)
        agent, replay_id, replay_calls = "", "", ()
        if rich:
            agent = _agent_call(store)
            store.flush()
            import replay

            run = replay.run(store, "echo", select={"tags": ["demo"], "limit": 3}, batch=False)
            replay_id = run.replay_id
            replay_calls = tuple(
                r[0]
                for r in store.conn().execute(
                    "SELECT replay_call_id FROM replay_results WHERE replay_id = ? ORDER BY id",
                    (replay_id,),
                )
            )
        conn = store.conn()
        retried = conn.execute(
            "SELECT call_id FROM calls WHERE retries > 0 ORDER BY started_at LIMIT 1"
        ).fetchone()[0]
        all_ids = [
            r[0]
            for r in conn.execute(
                "SELECT call_id FROM calls WHERE parent_call_id IS NULL ORDER BY started_at"
            )
        ]
    finally:
        store.close()
    assert report.failed_call_id and report.fallback_call_id
    return SampleStore(
        path=path,
        failed_call_id=report.failed_call_id,
        fallback_call_id=report.fallback_call_id,
        retried_call_id=retried,
        xss_call_id=opts.call_ids[0],
        call_ids=all_ids,
        agent_call_id=agent,
        replay_id=replay_id,
        replay_call_ids=replay_calls,
    )


def console_script() -> str:
    """The installed ``llm-events`` script of the interpreter running the tests."""
    import shutil
    import sys

    here = Path(sys.executable).parent / "llm-events"
    return str(here) if here.exists() else (shutil.which("llm-events") or "llm-events")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browse:
    """``llm-events browse`` running in a subprocess on a free port."""

    def __init__(self, db: Path, cwd: Path | None = None) -> None:
        import subprocess
        import tempfile

        self.db = db
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # its log goes to a file: a pipe nobody reads fills after some 64 KB of access
        # log lines, and the server then hangs on its next write
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by stop)
        self.proc = subprocess.Popen(
            [console_script(), "browse", "--db", str(db), "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
        )

    def output(self) -> str:
        """What the server has printed so far."""
        self.log.seek(0)
        return self.log.read()

    def wait(self, timeout: float = 30.0) -> Browse:
        import time
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"browse exited: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.base}/-/versions.json", timeout=2):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("datasette did not start in time")

    def get(self, path: str) -> tuple[int, str]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as r:
                return r.status, r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")

    def json(self, path: str):
        import json

        status, body = self.get(path)
        assert status == 200, f"{path}: HTTP {status}: {body[:500]}"
        return json.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

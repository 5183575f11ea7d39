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


def make_sample_store(path: Path) -> SampleStore:
    """Record the demo session and one echo call whose prompt (and answer) hold a script tag."""
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
        conn = store.conn()
        retried = conn.execute(
            "SELECT call_id FROM calls WHERE retries > 0 ORDER BY started_at LIMIT 1"
        ).fetchone()[0]
        all_ids = [r[0] for r in conn.execute("SELECT call_id FROM calls ORDER BY started_at")]
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

        self.db = db
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [console_script(), "browse", "--db", str(db), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
        )

    def wait(self, timeout: float = 30.0) -> Browse:
        import time
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"browse exited: {self.proc.stdout.read()}")
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
        if self.proc.stdout is not None:
            self.proc.stdout.close()

"""Shared bits of the backend tests: canned protocol bodies, broken streams, event readers."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .helpers import read_db

#: The fake key the tests send; it must never reach the events table.
SECRET = "sk-test-SECRETKEY1234567890"


def events(db: Path, type_: str | None = None) -> list[dict[str, Any]]:
    """The recorded event payloads, in commit order (optionally of one type)."""
    conn = read_db(db)
    try:
        rows = conn.execute("SELECT type, payload FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()
    out = [json.loads(p) for t, p in rows if type_ is None or t == type_]
    return out


def types(db: Path) -> list[str]:
    return [e["type"] for e in events(db) if e["type"] != "prompt_built"]


def events_text(db: Path) -> str:
    """Everything stored in the file's tables, as text (to look for leaked secrets)."""
    conn = read_db(db)
    try:
        parts = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in conn.execute(f"SELECT * FROM [{table}]"):
                parts.append(" ".join(str(v) for v in row))
        return "\n".join(parts)
    finally:
        conn.close()


def free_port() -> int:
    """A port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openai_completion(
    text: str = "Hello!",
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 12,
    completion_tokens: int = 3,
    cached: int | None = None,
    reasoning: int | None = None,
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def openai_sse(pieces: Iterable[str], *, usage: bool = True, done: bool = True) -> str:
    lines = []
    for piece in pieces:
        chunk = {
            "id": "chatcmpl-2",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        lines.append(f"data: {json.dumps(chunk)}\n\n")
    if done:
        final = {
            "id": "chatcmpl-2",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        lines.append(f"data: {json.dumps(final)}\n\n")
        if usage:
            tail = {
                "id": "chatcmpl-2",
                "model": "gpt-4o-mini",
                "choices": [],
                "usage": {
                    "prompt_tokens": 9,
                    "completion_tokens": 2,
                    "prompt_tokens_details": {"cached_tokens": 4},
                },
            }
            lines.append(f"data: {json.dumps(tail)}\n\n")
        lines.append("data: [DONE]\n\n")
    return "".join(lines)


def broken_stream(parts: Iterable[str], content_type: str = "text/event-stream"):
    """A handler that sends ``parts`` and then drops the connection mid-body."""
    data = [p.encode() for p in parts]

    def handler(request: Request) -> Response:
        def body():
            yield from data
            raise ConnectionAbortedError("test: connection cut mid-stream")

        # A Content-Length longer than what is sent: the client sees the body cut short.
        return Response(body(), content_type=content_type, headers={"Content-Length": "100000"})

    return handler


def slow(seconds: float, payload: dict[str, Any]):
    """A handler that answers only after ``seconds`` (to trigger read timeouts).

    Call ``handler.finish(server)`` at the end of the test: it lets the handler answer now
    and waits until it has, so its request does not land in the next test's log.
    """
    import threading
    import time

    release = threading.Event()

    def handler(request: Request) -> Response:
        release.wait(seconds)
        return Response(json.dumps(payload), content_type="application/json")

    def finish(server: HTTPServer, expected: int = 1) -> None:
        release.set()
        deadline = time.monotonic() + 5
        while len(server.log) < expected and time.monotonic() < deadline:
            time.sleep(0.01)

    handler.finish = finish  # type: ignore[attr-defined]
    return handler


@contextlib.contextmanager
def serve() -> Iterator[HTTPServer]:
    """A real HTTP server on 127.0.0.1 (a free port), speaking whatever the test sets up."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    # Do not wait, on stop, for keep-alive connections that clients still hold open.
    server.server.block_on_close = False
    server.server.daemon_threads = True
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def base_url(server: HTTPServer, path: str = "") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def server_fixtures():
    """``(shared_server, server)`` fixtures for a test module: ``shared_server, server = ...``.

    One real server per module (starting and stopping one costs about half a second); each
    test gets it with no expectations and an empty request log.
    """

    @pytest.fixture(scope="module")
    def shared_server() -> Iterator[HTTPServer]:
        with serve() as s:
            yield s

    @pytest.fixture
    def server(shared_server: HTTPServer) -> Iterator[HTTPServer]:
        shared_server.clear()
        yield shared_server
        shared_server.clear()

    return shared_server, server

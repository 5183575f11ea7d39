"""A fake provider on 127.0.0.1 for the proxy and transport tests (and bench_proxy).

An ASGI app served by uvicorn on a thread.  It answers the OpenAI chat completions and
Anthropic messages paths with bodies shaped as the providers' API references show them
(streamed as SSE when the request asks), and anything else with a small JSON echo.  Tests
script faults with :meth:`FakeUpstream.script`: a status with headers and body, a stream cut
off after some chunks, or a slow stream.  Every request it received is kept in ``seen``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Shapes from the OpenAI API reference (chat completion object) and Anthropic's (message).
OPENAI_TEXT = "Hello! How can I assist you today? \u00e9\u2014 ok"
ANTHROPIC_TEXT = "Hi! My name is Claude. \u00e9\u2014 ok"


def openai_body(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": OPENAI_TEXT,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035",
    }


def openai_chunks(model: str) -> list[bytes]:
    pieces = ["Hello", "! How can I assist", " you today? ", "\u00e9\u2014 ok"]
    base = {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": model,
        "system_fingerprint": "fp_44709d6fcb",
    }
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    out += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
        }
    )
    frames = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode() for c in out]
    frames.append(b"data: [DONE]\n\n")
    return frames


def anthropic_body(model: str) -> dict[str, Any]:
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": ANTHROPIC_TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503},
    }


def anthropic_chunks(model: str) -> list[bytes]:
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **anthropic_body(model),
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 25, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi! My name"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": " is Claude. \u00e9\u2014 ok"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 15},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [
        f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
        for name, data in events
    ]


@dataclass
class Scripted:
    """One scripted answer: ``status``/``headers``/``body``, or a stream ``cut_after``
    that many chunks, or ``delay_s`` between chunks."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    cut_after: int | None = None
    delay_s: float = 0.0


class UpstreamApp:
    def __init__(self) -> None:
        self.scripted: deque[Scripted] = deque()
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.keep = True

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        if self.keep:
            with self.lock:
                self.seen.append(
                    {
                        "method": scope["method"],
                        "path": path,
                        "headers": headers,
                        "body": body,
                        "query": scope.get("query_string", b"").decode(),
                    }
                )
        with self.lock:
            script = self.scripted.popleft() if self.scripted else Scripted()
        if script.body is not None:
            await self._send(send, script.status, script.body, script.headers)
            return
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            req = {}
        model = req.get("model", "gpt-4o-mini") if isinstance(req, dict) else "x"
        anthropic = path.endswith("/v1/messages")
        if isinstance(req, dict) and req.get("stream"):
            chunks = anthropic_chunks(model) if anthropic else openai_chunks(model)
            await self._stream(send, chunks, script)
            return
        if path.endswith("/chat/completions"):
            payload = openai_body(model)
        elif anthropic:
            payload = anthropic_body(model)
        else:
            payload = {
                "object": "list",
                "data": [{"id": "gpt-4o-mini", "object": "model"}],
                "path": path,
            }
        extra = {
            "x-request-id": "req_fake_1",
            "request-id": "req_fake_1",
            "x-ratelimit-remaining-requests": "99",
        }
        await self._send(
            send, script.status, json.dumps(payload).encode(), {**extra, **script.headers}
        )

    async def _send(self, send: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
        h = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        h += [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": h})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, send: Any, chunks: list[bytes], script: Scripted) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": script.status,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"x-request-id", b"req_fake_stream"),
                    (b"request-id", b"req_fake_stream"),
                ],
            }
        )
        for i, chunk in enumerate(chunks):
            if script.cut_after is not None and i >= script.cut_after:
                raise ConnectionAbortedError("fake upstream cuts the stream off")
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if script.delay_s:
                await asyncio.sleep(script.delay_s)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class FakeUpstream:
    """The fake provider served on a thread; ``url`` is its base (``http://127.0.0.1:N``)."""

    def __init__(self) -> None:
        import socket

        import uvicorn

        self.app = UpstreamApp()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, log_level="critical", lifespan="on", server_header=False, date_header=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def script(self, *answers: Scripted) -> None:
        with self.app.lock:
            self.app.scripted.extend(answers)

    @property
    def seen(self) -> list[dict[str, Any]]:
        return self.app.seen

    def __enter__(self) -> FakeUpstream:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


if __name__ == "__main__":  # a separate process for benchmarks: prints its port
    import sys

    import uvicorn

    up = UpstreamApp()
    up.keep = False
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    s.listen(2048)
    print(s.getsockname()[1], flush=True)
    uvicorn.Server(
        uvicorn.Config(
            up, log_level="critical", server_header=False, date_header=False, backlog=2048
        )
    ).run(sockets=[s])

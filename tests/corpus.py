"""The corpus of recorded provider responses (tests/data/providers) and a server that replays them.

Each case is a directory ``tests/data/providers/<provider>/<case>/`` holding ``response.body``
(the bytes the server sent), ``response.json`` (status, headers, content type, whether it is a
stream, where it came from) and, when the source had it, ``request.json`` (the request body).
SOURCES.md lists every case and its origin.

``serve(case)`` replays a case from a real HTTP server on 127.0.0.1, streams in small chunks
that split multi-byte UTF-8 characters and SSE lines, so parsers meet what the network gives.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).parent / "data" / "providers"
PROVIDERS = ("openai_chat", "openai_responses", "anthropic", "ollama", "vllm")
# Headers the replaying server sets itself (it sends the body decoded, with its own framing).
_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection"}


@dataclass(frozen=True)
class Case:
    """One recorded exchange: the response bytes, their metadata and the request body if known."""

    provider: str
    name: str
    body: bytes
    meta: dict
    request: dict | None

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.name}"

    @property
    def status(self) -> int:
        return int(self.meta["status"])

    @property
    def stream(self) -> bool:
        return bool(self.meta["stream"])

    @property
    def content_type(self) -> str:
        return self.meta.get("content_type") or "application/octet-stream"

    @property
    def path(self) -> str:
        """The URL path the request went to (from ``request_line``), e.g. ``/v1/chat/completions``."""
        url = (self.meta.get("request_line") or {}).get("url") or "/"
        rest = url.split("://", 1)[-1]
        return "/" + rest.split("/", 1)[1] if "/" in rest else "/"

    def headers(self) -> dict[str, str]:
        """Recorded response headers less the framing ones the replaying server sets itself.

        A name recorded twice in different cases (``Access-Control-Expose-Headers`` and
        ``access-control-expose-headers``) becomes one header with the values joined by ", ",
        which HTTP defines as the same thing, so ``response.headers.get(name)`` matches.
        """
        merged: dict[str, str] = {}
        spelling: dict[str, str] = {}
        for key, value in self.meta["headers"].items():
            if key.lower() in _FRAMING:
                continue
            first = spelling.setdefault(key.lower(), key)
            merged[first] = f"{merged[first]}, {value}" if first in merged else value
        return merged


def _load(directory: Path) -> Case:
    meta = json.loads((directory / "response.json").read_text(encoding="utf-8"))
    request_path = directory / "request.json"
    request = (
        json.loads(request_path.read_text(encoding="utf-8")) if request_path.exists() else None
    )
    return Case(
        provider=directory.parent.name,
        name=directory.name,
        body=(directory / "response.body").read_bytes(),
        meta=meta,
        request=request,
    )


def cases(provider: str | None = None) -> list[Case]:
    """All cases, or one provider's, in a stable order."""
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    found = []
    for name in PROVIDERS if provider is None else (provider,):
        base = ROOT / name
        if base.is_dir():
            found.extend(_load(d) for d in sorted(base.iterdir()) if (d / "response.json").exists())
    return found


def proxied_cases() -> list[Case]:
    """The cases of the providers an SDK reaches through the proxy's ``/v1/`` paths."""
    return [
        c
        for p in ("openai_chat", "openai_responses", "anthropic")
        for c in cases(p)
        if c.path.startswith("/v1/")
    ]


def case(case_id: str) -> Case:
    """One case by ``provider/name``."""
    provider, _, name = case_id.partition("/")
    directory = ROOT / provider / name
    if not (directory / "response.json").exists():
        raise KeyError(case_id)
    return _load(directory)


def request_body(case: Case) -> dict:
    """The request a client sends for ``case``: its recorded body, or a minimal one of its
    provider's shape, with ``stream`` as the case was served."""
    if case.request is not None:
        body = dict(case.request)
    elif case.provider == "anthropic":
        body = {
            "model": "claude-x",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
        }
    elif case.provider == "openai_responses":
        body = {"model": "gpt-x", "input": "hi"}
    else:
        body = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
    body["stream"] = case.stream
    return body


def chunks(body: bytes, size: int = 7) -> list[bytes]:
    """Split ``body`` into pieces of ``size`` bytes, plus a cut inside every multi-byte character.

    Fixed small pieces split SSE/NDJSON lines anywhere; the extra cuts make sure each multi-byte
    UTF-8 sequence (emoji, CJK, U+2028) is delivered in two reads.
    """
    cuts = set(range(size, len(body), size))
    for i, byte in enumerate(body):
        if byte >= 0xC0 and i + 1 < len(body):  # lead byte of a multi-byte sequence
            cuts.add(i + 1)
    edges = [0, *sorted(cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges) if b > a]


def gzip_bytes(body: bytes) -> bytes:
    """``body`` gzip-compressed, flushed after every blank line (each SSE event), so the
    compressed bytes arrive in pieces a decoder can decode as they come."""
    z = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    out = []
    pieces = body.split(b"\n\n")
    for i, piece in enumerate(pieces):
        data = piece + (b"\n\n" if i < len(pieces) - 1 else b"")
        out.append(z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH))
    out.append(z.flush())
    return b"".join(out)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ReplayServer

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            served = self.server.replays[
                min(len(self.server.requests), len(self.server.replays) - 1)
            ]
            self.server.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
        self.send_response_only(served.status)  # no Server/Date of our own: the recorded ones
        for key, value in served.headers().items():
            self.send_header(key, value)
        payload = served.body
        if self.server.encoding == "gzip":
            self.send_header("Content-Encoding", "gzip")
            payload = gzip_bytes(payload)
        if served.stream:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in chunks(payload, self.server.chunk_size):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        self.wfile.flush()

    do_POST = do_GET = _reply


class _ReplayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, replays: tuple[Case, ...], chunk_size: int, encoding: str | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replays = replays
        self.chunk_size = chunk_size
        self.encoding = encoding
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def url(self) -> str:
        """Base URL (no trailing slash); any path answers with the case."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@contextlib.contextmanager
def serve(
    *replays: Case, chunk_size: int = 7, encoding: str | None = None
) -> Iterator[_ReplayServer]:
    """Serve cases on 127.0.0.1 (any method, any path) while in the block.

    The n-th request gets the n-th case and later ones the last, so ``serve(rate_limited, ok)``
    answers an SDK's first attempt with the 429 and its retry with the 200. The server keeps each
    request it got in ``.requests`` (method, path, headers, body bytes).  ``encoding="gzip"``
    sends the body gzip-compressed with ``Content-Encoding: gzip``, as the providers do for
    clients that accept it (a stream compressed with a flush after each event).
    """
    if not replays:
        raise ValueError("serve() needs at least one case")
    server = _ReplayServer(replays, chunk_size, encoding)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""The recording reverse proxy: an ASGI application (served by uvicorn, see ``server``).

Faithful: the client gets the upstream's status, headers (less hop-by-hop ones) and bytes
exactly, streamed chunk by chunk as they arrive.  Recorded: each request becomes an
exchange (:mod:`.exchange`) whose write-ahead events are committed, on a worker thread,
before the request goes upstream; the outcome is committed once the answer has passed.

Faults give the client what a direct call would have given: an upstream that cannot be
reached answers 502 (504 when it timed out) with a JSON error in the provider's own
format; a stream cut off by the upstream is cut off for the client too; a client that goes
away is recorded as cancelled (and its upstream request closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ..recording.workers import in_thread
from .commits import Committer
from .encodings import narrowed_accept_encoding
from .exchange import Exchange
from .exchange_recorder import ExchangeRecorder
from .request_head import ANNOTATION_PREFIX, Request
from .routing import Route, Router
from .upstream import UpstreamSender

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

access_log = logging.getLogger("llm_events.proxy.access")

#: Headers that describe one connection, not the message (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "x-llm-events-token"}


class UpstreamCut(Exception):
    """The upstream broke the answer off: the client's connection is broken off too."""


def forwarded_request_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The client's headers as they go upstream: less hop-by-hop and our own, and an
    ``Accept-Encoding`` narrowed to the codings the recorder can undo."""
    connection = set()
    for k, v in raw:
        if k.lower() == b"connection":
            connection |= {t.strip().lower() for t in v.decode("latin-1").split(",")}
    out = []
    for k, v in raw:
        name = k.decode("latin-1").lower()
        if name in _NOT_FORWARDED or name in connection or name.startswith(ANNOTATION_PREFIX):
            continue
        if name == "accept-encoding":  # only codings the recorder can undo (see .encodings)
            v = narrowed_accept_encoding(v.decode("latin-1")).encode("latin-1")
        out.append((k, v))
    return out


def forwarded_response_headers(
    raw: list[tuple[bytes, bytes]], headers: dict[str, str]
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers as they go to the client: less hop-by-hop ones
    (``headers``: the same, names lower-cased, for the ``Connection`` header)."""
    connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    return [
        (k, v)
        for k, v in raw
        if (name := k.decode("latin-1").lower()) not in HOP_BY_HOP and name not in connection
    ]


def proxied_location(
    location: str, base: str, upstream_url: str, client_path: str, origin: str
) -> str | None:
    """A redirect's ``Location`` as the client must see it to stay behind the proxy: one
    under the upstream's base URL becomes the same place under the proxy (as a reverse
    proxy's redirect rewriting does), so a client that follows it is recorded again;
    ``None`` for a Location elsewhere (another host, relative), passed on unchanged.

    ``upstream_url`` is where the request went (``base`` + what followed the client's
    prefix, e.g. ``/v1`` or ``/vllm/v1``), ``client_path`` the path the client asked for.
    """
    if not (location == base or location.startswith(base + "/")):
        return None
    sent = upstream_url[len(base) :]
    if not client_path.endswith(sent):
        return None
    prefix = client_path[: len(client_path) - len(sent)]
    return origin + prefix + location[len(base) :]


#: Anthropic's error ``type`` of each status its API documents (others: ``api_error`` for
#: 5xx, ``invalid_request_error`` for 4xx, as Anthropic says it does).
_ANTHROPIC_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_body(route: Route | None, status: int, message: str, code: str) -> bytes:
    """An error in the provider's own format, so the client's SDK reads it as it would its
    provider's (OpenAI's ``{"error": {...}}``, Anthropic's ``{"type": "error", ...}``)."""
    if route is not None and route.anthropic:
        kind = _ANTHROPIC_ERROR_TYPES.get(status) or (
            "api_error" if status >= 500 else "invalid_request_error"
        )
        body: Any = {"type": "error", "error": {"type": kind, "message": message}}
    elif route is not None and route.path.startswith("/api/"):
        body = {"error": message}
    else:
        kind = "upstream_error" if status >= 500 else "invalid_request_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return json.dumps(body).encode()


#: The largest request body the proxy takes (``--max-request-bytes``): it holds a request
#: whole before sending it on, so a body without a bound would be memory without one.
#: Providers refuse far smaller ones (Anthropic's Messages API 32 MB, OpenAI's 50 MB of images).
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


#: How long the proxy waits for the next piece of a request body (``body_timeout_s``): the
#: ASGI server bounds idle connections between requests, not a client stalling mid-body,
#: and each such request holds a connection and its bytes so far.
DEFAULT_BODY_TIMEOUT_S = 60.0


class RequestTooLarge(Exception):
    """The client's body is over the proxy's limit (it is answered 413, nothing is sent)."""


class BodyTimedOut(Exception):
    """The client sent no more of its body for too long (answered 408, nothing is sent)."""


async def read_body(
    receive: Receive, limit: int | None = None, idle_s: float | None = None
) -> bytes:
    """The request body, whole; ``RequestTooLarge`` past ``limit`` bytes, ``BodyTimedOut``
    when ``idle_s`` seconds pass with no piece of it."""
    chunks = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(idle_s):
                message = await receive()
        except TimeoutError:
            raise BodyTimedOut(size) from None
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise RequestTooLarge(size)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class ProxyApp:
    """The ASGI application.  ``inject``: upstream name -> key the proxy sends itself."""

    def __init__(
        self,
        router: Router,
        recorder: ExchangeRecorder,
        *,
        token: str | None = None,
        inject: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        http2: bool = True,
        client: httpx.AsyncClient | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    ) -> None:
        self.router = router
        self.max_request_bytes = max_request_bytes
        self.body_timeout_s = body_timeout_s
        self.recorder = recorder
        self.token = token
        self.inject = inject or {}
        self.timeout = timeout or httpx.Timeout(600.0, connect=10.0)
        self.http2 = http2
        self.client = client
        self.in_flight = 0
        self.committer = Committer(recorder)
        self.sender: UpstreamSender | None = None

    # --- lifespan --------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self.client is None:
            http2 = self.http2
            if http2:
                try:
                    import h2  # noqa: F401
                except ImportError:
                    http2 = False
            from .netbackend import SHARDS, asyncio_transport

            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=256)
            transport = asyncio_transport(http2=http2, limits=limits, shards=SHARDS)
            self.client = httpx.AsyncClient(
                timeout=self.timeout,
                transport=transport,
                trust_env=False,
                follow_redirects=False,
            )
            pool = getattr(transport, "_pool", None)
            if pool is not None and hasattr(pool, "handle_async_request"):
                self.sender = UpstreamSender(pool, self.timeout)  # the client owns the pool
        return self.client

    async def _send(
        self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Any:
        """The upstream's answer, its body still streaming: through the pool directly
        (:mod:`.upstream`), or through httpx's client when it was given one."""
        client = self._client()
        if self.sender is not None:
            return await self.sender.send(method, url, headers, body)
        response = await client.send(
            httpx.Request(method, url, headers=headers, content=body), stream=True
        )
        return _HttpxAnswer(response)

    async def startup(self) -> None:
        self._client()
        self.recorder.start_expiry()

    async def shutdown(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        await in_thread(self.recorder.close)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            self.in_flight += 1
            try:
                await self._http(scope, receive, send)
            finally:
                self.in_flight -= 1

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- one request -----------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        headers: dict[str, str] = {}
        for k, v in raw_headers:
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        # routed on the path as sent (percent-escapes kept), so it goes upstream unchanged
        raw_path = scope.get("raw_path")
        server = scope.get("server") or ("127.0.0.1", 0)
        host = headers.get("host") or f"{server[0]}:{server[1]}"
        origin = f"{scope.get('scheme', 'http')}://{host}"
        path: str = raw_path.decode("latin-1") if raw_path else scope["path"]
        method: str = scope["method"]
        route = self.router.route(path, headers)
        if self.token is not None and not hmac.compare_digest(
            headers.get("x-llm-events-token", "").encode(), self.token.encode()
        ):
            message = "llm-events proxy: missing or wrong X-LLM-Events-Token"
            await self._reply(send, 401, error_body(route, 401, message, "proxy_token"))
            self._log(method, path, route, 401, t0, None, "refused")
            return
        try:
            declared = int(headers.get("content-length") or 0)
        except ValueError:
            declared = 0  # (uvicorn refuses a malformed one before this)
        try:
            if declared > self.max_request_bytes:
                raise RequestTooLarge(declared)
            body = await read_body(receive, self.max_request_bytes, self.body_timeout_s)
        except asyncio.CancelledError:
            return
        except BodyTimedOut as e:
            message = (
                f"llm-events proxy: no more of the request body came for {self.body_timeout_s:g} "
                f"s (after {e.args[0]:,} bytes); nothing was sent upstream"
            )
            await self._reply(send, 408, error_body(route, 408, message, "request_timeout"))
            self._log(method, path, route, 408, t0, None, "refused")
            return
        except RequestTooLarge as e:
            message = (
                f"llm-events proxy: the request body ({e.args[0]:,} bytes or more) is over "
                f"the proxy's limit of {self.max_request_bytes:,} bytes (--max-request-bytes); "
                "nothing was sent upstream"
            )
            await self._reply(send, 413, error_body(route, 413, message, "request_too_large"))
            self._log(method, path, route, 413, t0, None, "refused")
            return
        query = scope.get("query_string", b"")
        if route is None:
            await self._unrouted(method, path, headers, body, send, t0)
            return
        url = route.url
        if query:
            url += "?" + query.decode("latin-1")
        fwd = forwarded_request_headers(raw_headers)
        key = self.inject.get(route.upstream)
        if key is not None:
            fwd = [(k, v) for k, v in fwd if k.lower() not in (b"authorization", b"x-api-key")]
            if route.anthropic:
                fwd.append((b"x-api-key", key.encode()))
            else:
                fwd.append((b"authorization", f"Bearer {key}".encode()))
        client = scope.get("client")
        request = Request(
            method=method,
            path=path,
            url=url,
            upstream=route.upstream,
            headers=headers,
            body=body,
            provider_path=route.path,
            client=f"{client[0]}" if client else "",
        )
        exchange = self.recorder.begin(request)
        if self.recorder.recording and not await self.committer.write(exchange.start_events):
            message = "llm-events proxy: the request could not be recorded, so it was not sent"
            await self._reply(send, 503, error_body(route, 503, message, "recording_failed"))
            self._log(method, path, route, 503, t0, exchange, "not recorded")
            return
        try:
            back = (self.router.upstreams.get(route.upstream, ""), route.url, path, origin)
            await self._forward((method, url, fwd, body), exchange, route, receive, send, back)
        finally:  # also for a stream the upstream cut off (UpstreamCut goes on to uvicorn)
            self._log(method, path, route, exchange.status, t0, exchange, self._outcome(exchange))

    async def _forward(
        self,
        upstream_request: tuple[str, str, list[tuple[bytes, bytes]], bytes],
        exchange: Exchange,
        route: Route,
        receive: Receive,
        send: Send,
        back: tuple[str, str, str, str] | None = None,
    ) -> None:
        """``back``: (upstream base, upstream URL, client path, proxy origin), for
        :func:`proxied_location`."""
        # the client going away (an SDK's timeout, a closed stream) cancels this task, from
        # the moment the request goes upstream: waiting for the head, or reading the body,
        # the upstream connection is closed then, as the client's own would have been
        task = asyncio.current_task()
        state = {"disconnected": False, "finished": False}

        def watch_done(fut: asyncio.Future) -> None:
            if fut.cancelled() or state["finished"]:
                return
            if fut.exception() is None and fut.result().get("type") == "http.disconnect":
                state["disconnected"] = True
                if task is not None:
                    task.cancel()

        watcher = asyncio.ensure_future(receive())
        watcher.add_done_callback(watch_done)
        events: list = []
        response: Any = None
        try:
            try:
                response = await self._send(*upstream_request)
            except httpx.HTTPError as e:
                state["finished"] = True
                watcher.cancel()
                await self._unreachable(e, exchange, route, send)
                return
            headers = response.headers()
            exchange.response_started(response.status_code, headers)
            out_headers = forwarded_response_headers(response.headers_raw, headers)
            if 300 <= response.status_code < 400 and back is not None and back[0]:
                out_headers = _relocated(out_headers, back, exchange)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": out_headers,
                }
            )
            try:
                async for chunk in response.aiter_raw():
                    exchange.chunk(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as e:
                events = exchange.failed(e, retry_possible=False)
                exchange.fault = f"{type(e).__name__}: {e}"  # type: ignore[attr-defined]
                raise UpstreamCut(str(e)) from e
            state["finished"] = True
            watcher.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            events = exchange.finished()
        except asyncio.CancelledError:
            if not state["disconnected"]:
                events = exchange.cancelled()
                raise
            events = exchange.closed_early()  # the client went away: our own cancel, done
            if task is not None:
                task.uncancel()
        finally:
            state["finished"] = True
            watcher.cancel()
            if response is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(response.aclose())
            if events:
                self.recorder.hold(events)

    async def _unreachable(
        self, e: httpx.HTTPError, exchange: Exchange, route: Route, send: Send
    ) -> None:
        """No answer from the upstream: 504 when it timed out, 502 otherwise, in the
        provider's error format (an error the client's SDK retries, as it would its own
        connection error or timeout)."""
        where = f"upstream {route.upstream} ({route.url})"
        if isinstance(e, httpx.TimeoutException):
            status, code = 504, "upstream_timeout"
            connect = isinstance(e, httpx.ConnectTimeout)
            limit = self.timeout.connect if connect else self.timeout.read
            message = (
                f"llm-events proxy: {where} did not answer within {limit:g} s ({type(e).__name__})"
            )
        else:
            status, code = 502, "upstream_unreachable"
            message = f"llm-events proxy: {where} failed: " + (str(e) or type(e).__name__)
        exchange.status = status
        exchange.fault = f"{type(e).__name__}: {e}"  # type: ignore[attr-defined]
        await self._record(exchange.failed(e, retry_possible=True))
        await self._reply(send, status, error_body(route, status, message, code))

    async def _record(self, events: list) -> None:
        if self.recorder.recording and events:
            await self.committer.write(events)

    async def _unrouted(
        self, method: str, path: str, headers: dict[str, str], body: bytes, send: Send, t0: float
    ) -> None:
        """A path no upstream serves: 404, recorded as a plain exchange all the same."""
        request = Request(
            method=method, path=path, url="", upstream="none", headers=headers, body=body
        )
        exchange = self.recorder.begin(request)
        message = (
            f"llm-events proxy: no upstream serves {path}; name one with --upstream NAME=URL "
            "and call /NAME/..."
        )
        exchange.response_started(404, {"content-type": "application/json"})
        payload = error_body(None, 404, message, "unknown_path")
        exchange.chunk(payload)
        await self._reply(send, 404, payload)
        await self._record([*exchange.start_events, *exchange.finished()])
        self._log(method, path, None, 404, t0, exchange, "unknown path")

    @staticmethod
    async def _reply(send: Send, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _outcome(exchange: Exchange) -> str:
        fault = getattr(exchange, "fault", None)
        if fault:
            return "upstream error"
        if (exchange.status or 0) < 400:
            # an answer that passed but is not one (InvalidResponse, IncompleteStream,
            # Redirected), or a client that went away (Cancelled): as the store says
            return exchange.error_type or "ok"
        return "error"

    def _log(
        self,
        method: str,
        path: str,
        route: Route | None,
        status: int | None,
        t0: float,
        exchange: Exchange | None,
        outcome: str,
    ) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        fields = {
            "method": method,
            "path": path,
            "upstream": route.upstream if route else "-",
            "status": status if status is not None else "-",
            "ms": f"{(time.perf_counter() - t0) * 1000:.1f}",
            "bytes": exchange.bytes_out if exchange else 0,
            "call": exchange.call_id if exchange and self.recorder.recording else "-",
            "attempt": exchange.attempt if exchange else "-",
            "outcome": outcome,
        }
        access_log.info(" ".join(f"{k}={_logfmt(v)}" for k, v in fields.items()))


class _HttpxAnswer:
    """An ``httpx.Response`` read as an :class:`~.upstream.UpstreamResponse`."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        self.headers_raw = response.headers.raw

    def headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.response.headers.items()}

    def aiter_raw(self) -> Any:
        return self.response.aiter_raw()

    async def aclose(self) -> None:
        await self.response.aclose()


def _logfmt(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or '"' in text or not text) else text


def _relocated(
    headers: list[tuple[bytes, bytes]], back: tuple[str, str, str, str], exchange: Exchange
) -> list[tuple[bytes, bytes]]:
    """``headers`` with a ``Location`` under the upstream pointed at the proxy instead
    (the exchange notes where it now points: the recorded headers stay the upstream's)."""
    out = []
    for k, v in headers:
        if k.lower() == b"location":
            moved = proxied_location(v.decode("latin-1"), *back)
            if moved is not None:
                exchange.relocated_to = moved
                v = moved.encode("latin-1")
        out.append((k, v))
    return out

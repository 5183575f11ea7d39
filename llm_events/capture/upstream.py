"""Sending a forwarded request to its upstream through httpcore's pool, without httpx's client.

The proxy forwards requests as they came: no auth flows, redirects, cookies or URL merging,
which are what ``httpx.AsyncClient.send`` adds around the pool (with the ``httpx.Request``
it needs: a parsed URL and normalised headers per request).  Here a request goes to the
pool as an ``httpcore.Request``, about a tenth of a forwarded request's CPU time less.  The
pool is the one the proxy's ``httpx.AsyncClient`` owns (:mod:`.netbackend`), so its
lifetime is the client's; faults are raised as the httpx errors of the same name (what
the proxy records as the attempt's ``error_type``, as before).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httpx


class UpstreamResponse:
    """What the proxy reads of an answer: status, headers (raw and joined), raw body."""

    __slots__ = ("_response", "headers_raw", "status_code")

    def __init__(self, response: httpcore.Response) -> None:
        self._response = response
        self.status_code: int = response.status
        self.headers_raw: list[tuple[bytes, bytes]] = list(response.headers)

    def headers(self) -> dict[str, str]:
        """Header names lower-cased; repeated ones joined with ", " (as httpx does)."""
        out: dict[str, str] = {}
        for k, v in self.headers_raw:
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            out[name] = f"{out[name]}, {value}" if name in out else value
        return out

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_stream():
                yield chunk
        except Exception as e:
            raise as_httpx(e) from e

    async def aclose(self) -> None:
        await self._response.aclose()


def as_httpx(exc: BaseException) -> BaseException:
    """An httpcore error as the httpx error of the same name (httpx does the same)."""
    if isinstance(exc, httpx.HTTPError) or not type(exc).__module__.startswith("httpcore"):
        return exc
    cls = getattr(httpx, type(exc).__name__, None)
    if not (isinstance(cls, type) and issubclass(cls, httpx.TransportError)):
        cls = httpx.TransportError
    return cls(str(exc))


class UpstreamSender:
    """``await send(method, url, headers, body)``: an :class:`UpstreamResponse`, its body
    still to be read (streamed), or an ``httpx.TransportError``."""

    def __init__(self, pool: Any, timeout: httpx.Timeout) -> None:
        self.pool = pool
        self.extensions = {"timeout": timeout.as_dict()}
        self._urls: dict[str, httpcore.URL] = {}

    def _url(self, url: str) -> httpcore.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpcore.URL(url)
            if "?" not in url and len(self._urls) < 1024:  # the routes' URLs recur
                self._urls[url] = parsed
        return parsed

    async def send(
        self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        target = self._url(url)
        head = [(b"Host", _host(target))]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append((b"Content-Length", b"%d" % len(body)))
        head += headers
        request = httpcore.Request(
            method.encode("ascii"), target, headers=head, content=body, extensions=self.extensions
        )
        try:
            response = await self.pool.handle_async_request(request)
        except Exception as e:
            raise as_httpx(e) from e
        return UpstreamResponse(response)


def _host(url: httpcore.URL) -> bytes:
    """The Host header httpx would send: the port unless it is the scheme's default."""
    host = url.host
    if b":" in host:  # IPv6
        host = b"[" + host + b"]"
    port = url.port
    if port is None or (url.scheme, port) in ((b"http", 80), (b"https", 443)):
        return host
    return host + b":%d" % port

"""In-process capture: httpx transports that record every request an SDK makes.

``OpenAI(http_client=llm_events.httpx_client())`` or
``AsyncAnthropic(http_client=llm_events.async_httpx_client())``: the transport sits under the
SDK's retry loop, so every attempt is seen, and it records with the proxy's own core
(:mod:`.exchange`): the same events, the same retry grouping, no key recorded.  It wraps the
transport it is given (``RecordingTransport(httpx.HTTPTransport(...))``) or a default one,
for ``httpx`` and for ``httpx2`` (the fork the newest SDKs use) alike.

The write-ahead events are committed before the request is sent; the outcome when the
response body has been read (or closed early: cancelled, with the partial answer).
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import sys
import weakref
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import httpx

from ..log.store import EventStore
from ..recording.workers import in_thread
from .exchange import DEFAULT_MAX_BODY_BYTES, Exchange
from .exchange_recorder import ExchangeRecorder
from .request_head import ANNOTATION_PREFIX, Request

#: host -> upstream name, so a captured call names its provider as the proxy does
KNOWN_HOSTS = {"api.openai.com": "openai", "api.anthropic.com": "anthropic"}
_TRANSPORT_OPTIONS = ("verify", "cert", "http1", "http2", "limits", "trust_env")


def upstream_name(url: Any) -> str:
    if url.host in KNOWN_HOSTS:
        return KNOWN_HOSTS[url.host]
    if url.port == 11434:
        return "ollama"
    return url.host + (f":{url.port}" if url.port else "")


def _recorder(
    store: EventStore | str | os.PathLike[str] | None, max_body_bytes: int
) -> ExchangeRecorder:
    from ..recording.config import open_store, settings
    from ..recording.store_access import resolve_store

    if not settings().enabled:
        target = None
    elif isinstance(store, EventStore):
        target = store
    else:
        target = (
            resolve_store(store, settings().on_store_error) if store is None else open_store(store)
        )
    recorder = ExchangeRecorder(target, source="transport", max_body_bytes=max_body_bytes)
    recorder.start_expiry()
    _live.add(recorder)
    return recorder


#: Recorders of clients still alive: at exit, their calls waiting for a retry are finished.
_live: weakref.WeakSet[ExchangeRecorder] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for recorder in list(_live):
        recorder.close()


def _begin(recorder: ExchangeRecorder, request: Any, body: bytes) -> Exchange:
    headers = {k.lower(): v for k, v in request.headers.items()}
    for name in [k for k in request.headers if k.lower().startswith(ANNOTATION_PREFIX)]:
        del request.headers[name]
    url = request.url
    return recorder.begin(
        Request(
            method=request.method,
            path=url.raw_path.decode("ascii", "replace").split("?", 1)[0],
            url=str(url.copy_with(query=None)),
            upstream=upstream_name(url),
            headers=headers,
            body=body,
            client=f"transport:{id(recorder)}",
        )
    )


def _started(exchange: Exchange, response: Any) -> None:
    exchange.response_started(
        response.status_code, {k.lower(): v for k, v in response.headers.items()}
    )


def _module(obj: object) -> ModuleType:
    """The httpx flavour ``obj`` belongs to: ``httpx``, or ``httpx2`` (newer SDKs)."""
    return sys.modules[type(obj).__module__.partition(".")[0]]


def preferred_module() -> ModuleType:
    """``httpx2`` where it is installed (the SDKs that use it accept only its clients, and
    those that use ``httpx`` accept both), else ``httpx``."""
    try:
        return importlib.import_module("httpx2")
    except ImportError:
        return httpx


@functools.cache
def _streams(mod: ModuleType) -> tuple[type, type]:
    """Byte streams of this flavour that feed an exchange as the body passes."""

    class Stream(mod.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, exchange: Exchange, recorder: ExchangeRecorder):
            self.inner, self.exchange, self.recorder = inner, exchange, recorder

        def __iter__(self) -> Iterator[bytes]:
            try:
                for chunk in self.inner:
                    self.exchange.chunk(chunk)
                    yield chunk
            except mod.HTTPError as e:
                self.recorder.write(self.exchange.failed(e, retry_possible=False))
                raise
            self.recorder.write(self.exchange.finished())

        def close(self) -> None:
            try:
                self.inner.close()
            finally:
                if not self.exchange.done:  # closed before its end: the caller stopped reading
                    self.recorder.write(self.exchange.closed_early())

    class AsyncStream(mod.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, exchange: Exchange, recorder: ExchangeRecorder):
            self.inner, self.exchange, self.recorder = inner, exchange, recorder

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self.inner:
                    self.exchange.chunk(chunk)
                    yield chunk
            except mod.HTTPError as e:
                await in_thread(self.recorder.write, self.exchange.failed(e, retry_possible=False))
                raise
            await in_thread(self.recorder.write, self.exchange.finished())

        async def aclose(self) -> None:
            try:
                await self.inner.aclose()
            finally:
                if not self.exchange.done:
                    events = self.exchange.closed_early()
                    try:
                        await in_thread(self.recorder.write, events)
                    except BaseException:  # being cancelled itself: write in place
                        self.recorder.write(events)
                        raise

    return Stream, AsyncStream


class RecordingTransport:
    """Records every request through ``transport`` (default: a new ``HTTPTransport`` of
    the preferred flavour) into ``store`` (an EventStore or a path; default: the current
    store).  Works for ``httpx`` and ``httpx2`` clients alike: it answers in the flavour of
    the requests it is given."""

    def __init__(
        self,
        transport: Any = None,
        *,
        store: EventStore | str | os.PathLike[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.transport = transport if transport is not None else preferred_module().HTTPTransport()
        self.recorder = _recorder(store, max_body_bytes)

    def handle_request(self, request: Any) -> Any:
        mod = _module(request)
        exchange = _begin(self.recorder, request, request.read())
        self.recorder.write(exchange.start_events)
        try:
            response = self.transport.handle_request(request)
        except mod.HTTPError as e:
            self.recorder.write(exchange.failed(e, retry_possible=True))
            raise
        _started(exchange, response)
        return mod.Response(
            response.status_code,
            headers=response.headers,
            stream=_streams(mod)[0](response.stream, exchange, self.recorder),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self.transport.close()
        self.recorder.close()

    def __enter__(self) -> RecordingTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRecordingTransport:
    """:class:`RecordingTransport` for async clients (commits off the event loop)."""

    def __init__(
        self,
        transport: Any = None,
        *,
        store: EventStore | str | os.PathLike[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.transport = (
            transport if transport is not None else preferred_module().AsyncHTTPTransport()
        )
        self.recorder = _recorder(store, max_body_bytes)

    async def handle_async_request(self, request: Any) -> Any:
        mod = _module(request)
        exchange = _begin(self.recorder, request, await request.aread())
        await in_thread(self.recorder.write, exchange.start_events)
        try:
            response = await self.transport.handle_async_request(request)
        except mod.HTTPError as e:
            await in_thread(self.recorder.write, exchange.failed(e, retry_possible=True))
            raise
        _started(exchange, response)
        return mod.Response(
            response.status_code,
            headers=response.headers,
            stream=_streams(mod)[1](response.stream, exchange, self.recorder),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self.transport.aclose()
        await in_thread(self.recorder.close)

    async def __aenter__(self) -> AsyncRecordingTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _split(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: kw.pop(k) for k in _TRANSPORT_OPTIONS if k in kw}


def _flavour(module: ModuleType | str | None) -> ModuleType:
    if module is None:
        return preferred_module()
    return importlib.import_module(module) if isinstance(module, str) else module


def httpx_client(
    *,
    store: EventStore | str | os.PathLike[str] | None = None,
    transport: Any = None,
    module: ModuleType | str | None = None,
    **kwargs: Any,
) -> Any:
    """A client recording every request: ``OpenAI(http_client=httpx_client())``.

    ``store``: an EventStore or path (default: the current store, as for every recording);
    ``transport``: one to wrap; ``module``: ``"httpx"`` or ``"httpx2"`` (default: httpx2
    where installed, which the current SDKs take; httpx otherwise); other arguments go to
    the client (``timeout``, ``headers``, ...) or to its default transport (``verify``,
    ``http2``, ``limits``, ...).
    """
    mod = _flavour(module)
    options = _split(kwargs)
    inner = transport if transport is not None else mod.HTTPTransport(**options)
    kwargs.setdefault("timeout", mod.Timeout(600.0, connect=10.0))
    return mod.Client(transport=RecordingTransport(inner, store=store), **kwargs)


def async_httpx_client(
    *,
    store: EventStore | str | os.PathLike[str] | None = None,
    transport: Any = None,
    module: ModuleType | str | None = None,
    **kwargs: Any,
) -> Any:
    """An async client recording every request:
    ``AsyncAnthropic(http_client=async_httpx_client())`` (arguments as :func:`httpx_client`)."""
    mod = _flavour(module)
    options = _split(kwargs)
    inner = transport if transport is not None else mod.AsyncHTTPTransport(**options)
    kwargs.setdefault("timeout", mod.Timeout(600.0, connect=10.0))
    return mod.AsyncClient(transport=AsyncRecordingTransport(inner, store=store), **kwargs)

"""Shared HTTP plumbing for the model servers: one request is one recorded attempt.

Built on httpx with no retries of its own (``with_retry`` and the recorder own retries, so
every request shows up as an attempt), explicit connect and read timeouts, and every failure
turned into a :mod:`~llm_events.backends.errors` class.  The API key lives only in the
request headers; headers are never recorded and never appear in error messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..interface.client import LLMClient
from ..interface.prompt import LLMResult, Prompt
from ..interface.streaming import StreamChunk
from ..log.conversation import ChatRequest
from ..log.secrets import register_secret
from ..providers import Adapter, StreamFormatError, StreamParser
from .errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    InvalidResponseError,
    StreamInterrupted,
    error_from_provider,
    keep_partial,
)
from .render import chat_request, split_json_flag
from .results import final_chunk, llm_result

#: Seconds to wait for a connection, and for each read of the response.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0


def first_env(names: Sequence[str]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def display_url(url: str) -> str:
    """``url`` without any ``user:password@`` part (safe to put in messages)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class HTTPBackend(LLMClient):
    """Base of the HTTP backends: settings, timeouts, requests and error translation.

    Options (from a spec's options or keyword arguments): ``base_url``, ``api_key``,
    ``timeout`` (read, seconds), ``connect_timeout``.  Every other keyword is a model
    parameter (``temperature=0.2``): sent with each request and recorded on
    ``attempt_started``.
    """

    #: Used when neither the options nor the environment name a server.
    default_base_url: ClassVar[str] = ""
    #: Environment variables read for the base URL, the key and the model, in order.
    base_url_env: ClassVar[tuple[str, ...]] = ()
    api_key_env: ClassVar[tuple[str, ...]] = ()
    model_env: ClassVar[tuple[str, ...]] = ()
    default_model: ClassVar[str | None] = None
    #: The path requests go to, under the base URL.
    endpoint: ClassVar[str] = ""
    #: The wire format (``llm_events.providers``): bodies, answers, streams and errors.
    adapter: ClassVar[Adapter]
    #: What a complete stream ends with (said when one ends without it).
    stream_end: ClassVar[str] = "its last event"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        params: dict[str, Any] | None = None,
        store: Any = None,
        on_store_error: str | None = None,
        backends: Sequence[LLMClient] | None = None,
        log_prompts: bool = True,
        **model_params: Any,
    ) -> None:
        model = model or first_env(self.model_env) or self.default_model
        merged = {**(params or {}), **model_params}
        super().__init__(
            model,
            backends=backends,
            params=merged,
            store=store,
            on_store_error=on_store_error,
            log_prompts=log_prompts,
        )
        if model is None:
            self.model = ""  # resolved on first use (see ``resolve_model``)
        url = base_url or first_env(self.base_url_env) or self.default_base_url
        self.base_url = self.normalise_base_url(url)
        self._api_key = api_key if api_key is not None else first_env(self.api_key_env)
        register_secret(self._api_key)  # never recorded, nor the server's echo of it
        self.timeout = httpx.Timeout(
            float(timeout) if timeout is not None else DEFAULT_READ_TIMEOUT,
            connect=float(connect_timeout)
            if connect_timeout is not None
            else DEFAULT_CONNECT_TIMEOUT,
        )
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    # settings -------------------------------------------------------------------------------

    @staticmethod
    def normalise_base_url(url: str) -> str:
        return url.rstrip("/")

    def model_label(self) -> str | None:
        return self.__dict__.get("model") or None

    def headers(self) -> dict[str, str]:
        """Request headers, including the key.  Never recorded."""
        return {"accept": "application/json", "user-agent": "llm-events"}

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} at {display_url(self.base_url)}>"

    # the protocol (subclasses map parameters; the adapter does the rest) ---------------------

    def wire_params(self, *, stream: bool) -> tuple[bool, dict[str, Any]]:
        """``(JSON instruction in the system text?, params in the provider's spelling)``."""
        json_mode, params = split_json_flag(self.params)
        return json_mode, params

    def chat_request(self, prompt: Prompt, *, stream: bool) -> ChatRequest:
        json_instruction, params = self.wire_params(stream=stream)
        return chat_request(
            prompt, self.resolve_model(), params, stream=stream, json_instruction=json_instruction
        )

    def request_body(self, prompt: Prompt, *, stream: bool) -> dict[str, Any]:
        return self.adapter.build_request(self.chat_request(prompt, stream=stream))

    def parse_response(self, data: Any, headers: Any = None) -> LLMResult:
        name = self.backend_label()
        try:
            response = self.adapter.parse_response(data, headers or {})
        except ValueError as e:
            raise InvalidResponseError(f"{name}: {e}", backend=name) from None
        return llm_result(response)

    def stream_complete(self, parser: StreamParser) -> bool:
        return parser.done

    def resolve_model(self) -> str:
        """The model to ask for (subclasses may discover it from the server)."""
        if not self.model:
            raise ValueError(
                f"{self.backend_label()}: no model given (use {self.backend_label()}:MODEL)"
            )
        return self.model

    # requests ---------------------------------------------------------------------------------

    def sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
            return self._client

    def close(self) -> None:
        """Close the connection pool (a new one is opened if the client is used again)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @contextlib.contextmanager
    def translate_errors(self, *, streaming: bool = False) -> Iterator[None]:
        """Turn httpx failures into backend errors that say what and where, never how."""
        where = display_url(self.base_url)
        name = self.backend_label()
        try:
            yield
        except BackendError:
            raise
        except httpx.TimeoutException as e:
            kind = type(e).__name__.replace("Timeout", " timeout").strip().lower()
            raise BackendTimeout(
                f"{name}: {kind} after {self._timeout_for(e)}s talking to {where}", backend=name
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:
            if streaming:
                raise StreamInterrupted(
                    f"{name}: the stream from {where} broke off: {e}", backend=name
                ) from None
            raise BackendConnectionError(
                f"{name}: connection to {where} failed: {e}", backend=name
            ) from None
        except httpx.TransportError as e:
            raise BackendConnectionError(
                f"{name}: cannot connect to {where}: {e}", backend=name
            ) from None

    def _timeout_for(self, exc: httpx.TimeoutException) -> float | None:
        if isinstance(exc, httpx.ConnectTimeout):
            return self.timeout.connect
        return self.timeout.read

    def check_status(self, response: httpx.Response, body: bytes) -> None:
        if response.status_code >= 400:
            error = self.adapter.parse_error(response.status_code, body, response.headers)
            raise error_from_provider(self.backend_label(), error)

    def decode_json(self, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            snippet = body[:200].decode("utf-8", "replace")
            raise InvalidResponseError(
                f"{self.backend_label()}: the server's answer is not valid JSON: {snippet!r}",
                backend=self.backend_label(),
            ) from None

    def post_json(self, path: str, body: dict[str, Any]) -> tuple[Any, httpx.Headers]:
        """POST ``body``: the decoded JSON answer and the response headers (errors raised as
        backend errors)."""
        with self.translate_errors():
            response = self.sync_client().post(self.url(path), json=body, headers=self.headers())
            content = response.content
        self.check_status(response, content)
        return self.decode_json(content), response.headers

    def get_json(self, path: str) -> Any:
        with self.translate_errors():
            response = self.sync_client().get(self.url(path), headers=self.headers())
            content = response.content
        self.check_status(response, content)
        return self.decode_json(content)

    async def parse_stream(
        self, parser: StreamParser, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[StreamChunk]:
        """Text chunks as the stream's bytes arrive, then one chunk with the rest.

        Whatever ends the stream early (a cut connection, an error event, bytes that are
        not the protocol's JSON) is raised with what had arrived: text, tool-call
        fragments, reasoning (:func:`~llm_events.backends.errors.keep_partial`)."""
        name = self.backend_label()
        try:
            with self.translate_errors(streaming=True):
                async for data in chunks:
                    for text in parser.feed(data):
                        yield StreamChunk(text=text)
                    self.raise_stream_error(parser)
                    if parser.done:
                        break
                else:
                    for text in parser.close():
                        yield StreamChunk(text=text)
                    self.raise_stream_error(parser)
        except StreamFormatError as e:
            error = InvalidResponseError(f"{name}: {e}", backend=name)
            raise keep_partial(error, parser.response()) from None
        except BackendError as e:
            raise keep_partial(e, parser.response()) from None
        response = parser.response()
        if not self.stream_complete(parser):
            error = StreamInterrupted(
                f"{name}: the stream ended before the answer was complete (no {self.stream_end})",
                backend=name,
            )
            raise keep_partial(error, response)
        yield final_chunk(response)

    def raise_stream_error(self, parser: StreamParser) -> None:
        if parser.error is not None:
            raise error_from_provider(self.backend_label(), parser.error, what="stream error")

    # LLMClient hooks ------------------------------------------------------------------------------

    def _generate(self, prompt: Prompt, *, context_builder: Any) -> LLMResult:
        body = self.request_body(prompt, stream=False)
        data, headers = self.post_json(self.endpoint, body)
        return self.parse_response(data, headers)

    async def _astream(self, prompt: Prompt, *, context_builder: Any) -> AsyncIterator[StreamChunk]:
        body = self.request_body(prompt, stream=True)
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            with self.translate_errors():
                request = client.build_request(
                    "POST", self.url(self.endpoint), json=body, headers=self.headers()
                )
                response = await client.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    with self.translate_errors():
                        content = await response.aread()
                    self.check_status(response, content)
                parser = self.adapter.stream_parser(response.headers)
                chunks = self.parse_stream(parser, response.aiter_bytes())
                async with contextlib.aclosing(chunks):  # closes the connection when we stop
                    async for chunk in chunks:
                        yield chunk
            finally:
                await response.aclose()


def need(data: Any, *path: str | int, backend: str) -> Any:
    """``data[path[0]][path[1]]...`` or an :class:`InvalidResponseError` naming what is missing."""
    value = data
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            where = "".join(f"[{k!r}]" for k in path)
            raise InvalidResponseError(
                f"{backend}: the server's answer has no {where}", backend=backend
            ) from None
    return value


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

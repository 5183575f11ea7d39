"""One HTTP exchange with a provider, recorded as a call: the core the proxy and the
httpx transport share.

Sans-I/O: an :class:`Exchange` is fed what passes (request, response head, body chunks,
the end or the fault) and returns the events to commit; its caller commits them (the proxy
on a worker thread, never on its event loop).  The events before the request leaves
(``prompt_built``, ``call_started``, ``attempt_started``) come out of
:meth:`ExchangeRecorder.begin`, to be committed before anything is sent upstream.

What is recorded: the conversation parsed by the provider adapters (chat paths), or only
method, path, status and sizes (plain exchanges: models, embeddings, files, anything the
adapters do not know).  Credentials in request headers are never recorded, and their values
are masked wherever they come back (an error body quoting the key).  Bodies over
``max_body_bytes`` are recorded truncated, with ``truncated`` and the full size.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
import weakref
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..log import events as ev
from ..log import processes
from ..log.blobs import Blob
from ..log.blobs import attach as attach_blobs
from ..log.conversation import (
    BlobPart,
    ChatRequest,
    Message,
    ModelResponse,
    ProviderError,
    TextPart,
)
from ..log.pricing import price_call
from ..log.redaction import MASK, Redactor, UnstorableValueError, clean
from ..log.secrets import configured_secrets
from ..log.store import EventStore, StoreError
from ..providers import parse_error
from . import parsing
from .retries import OpenCall, OpenCalls, request_keys

log = logging.getLogger("llm_events.capture")

#: Request headers that carry credentials: sent upstream, never recorded.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"}
)
#: Request headers that annotate the call; recorded, never sent upstream.
ANNOTATION_PREFIX = "x-llm-events-"

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024

_UNSET: Any = object()

_STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl")


@dataclass
class Request:
    """What a client sent, as capture sees it (header names lower-cased)."""

    method: str
    path: str
    url: str
    upstream: str
    headers: dict[str, str]
    body: bytes
    #: the provider path that names the wire format (``/v1/chat/completions``)
    provider_path: str = ""
    #: who sent it (the proxy: the peer address; the transport: the process)
    client: str = ""


@dataclass
class Annotations:
    """What an application attached with ``X-LLM-Events-*`` headers."""

    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def annotations(headers: dict[str, str]) -> Annotations:
    """Tags, session, user and metadata (JSON object) from ``X-LLM-Events-*`` headers."""
    out = Annotations()
    tags = headers.get("x-llm-events-tags")
    if tags:
        out.tags = [t.strip() for t in tags.split(",") if t.strip()]
    meta = headers.get("x-llm-events-metadata")
    if meta:
        try:
            value = json.loads(meta)
        except ValueError:
            value = None
        out.metadata = value if isinstance(value, dict) else {"metadata": meta}
    for name in ("session", "user"):
        value = headers.get(f"x-llm-events-{name}")
        if value:
            out.metadata[name] = value
    return out


def secret_scrubber(values: Sequence[str]) -> Any:
    """A ``str -> str`` masking these exact secrets and the masked echo providers send
    back (OpenAI's 401 quotes a key as its first 8 and last 4 characters)."""
    secrets = [v for v in values if len(v) >= 6]
    if not secrets:
        return None
    patterns = []
    for s in secrets:
        patterns.append(re.escape(s))
        if len(s) > 12:
            patterns.append(re.escape(s[:8]) + r"[*.\u2022x]{3,}" + re.escape(s[-4:]))
    rx = re.compile("|".join(patterns))
    # a secret holding another ("Bearer sk-...") is found by the inner one's head
    inner = [s for s in secrets if not any(o != s and o in s for o in secrets)]
    heads = tuple({s[:6] for s in inner})
    if len(heads) == 1:  # the common case (one client key): one substring test per string
        (head,) = heads

        def scrub(text: str) -> str:
            return rx.sub(MASK, text) if head in text else text

        return scrub

    def scrub_any(text: str) -> str:
        for head in heads:
            if head in text:
                return rx.sub(MASK, text)
        return text

    return scrub_any


#: Strings up to this long are remembered with what redaction made of them, across exchanges
#: (model names, roles, JSON keys, system prompts and tool schemas recur in every call)...
MEMO_CHARS = 1024
MEMO_ENTRIES = 4096


class ExchangeRedactor(Redactor):
    """The recorder's redactor, then this request's credential scrubber, each string
    redacted once per exchange: a request's texts appear twice (the conversation in
    ``prompt_built``, the wire body in ``params.body``), and short ones in every call.
    ``memo`` (shared by the recorder's exchanges) remembers the base redactor's answer for
    short strings; longer ones are remembered for this exchange only."""

    def __init__(self, base: Redactor, memo: dict[str, str], scrub: Any = None) -> None:
        self.sensitive_keys = base.sensitive_keys
        self.finder, self.patterns, self.callables = None, [], [base]
        self.base, self.memo, self.scrub = base, memo, scrub
        self.long: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        memo = self.memo if len(text) <= MEMO_CHARS else self.long
        done = memo.get(text)
        if done is None:
            done = self.base(text)
            if len(memo) >= MEMO_ENTRIES:
                memo.clear()
            memo[text] = done
        scrub = self.scrub
        return done if scrub is None else scrub(done)


def _credential_values(headers: dict[str, str]) -> list[str]:
    out = []
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value:
            out.append(value)
            scheme, _, rest = value.partition(" ")
            if rest and scheme.lower() in ("bearer", "basic", "token"):
                out.append(rest.strip())
    return out


def decode_json(data: bytes) -> Any:
    """JSON, or ``None`` for anything that is not."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _status_error_type(status: int) -> str:
    if status == 429:
        return "RateLimitError"
    if status >= 500:
        return "ServerError"
    if status in (401, 403):
        return "AuthenticationError"
    if status == 404:
        return "NotFoundError"
    return "BadRequestError"


def retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


class _Decoder:
    """Undoes gzip/deflate so a compressed answer can be parsed (bytes go on unchanged)."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        self.ok = encoding in ("", "identity", "gzip", "deflate", "x-gzip")
        self.z = (
            zlib.decompressobj(zlib.MAX_WBITS | 32)
            if encoding in ("gzip", "deflate", "x-gzip")
            else None
        )

    def __call__(self, data: bytes) -> bytes:
        if self.z is None:
            return data
        try:
            return self.z.decompress(data)
        except zlib.error:
            self.ok = False
            return b""


class Exchange:
    """One request and its answer, becoming events (see the module docstring)."""

    def __init__(
        self,
        recorder: ExchangeRecorder,
        request: Request,
        adapter: parsing.Adapter | None,
        chat: ChatRequest | None,
        call: OpenCall,
        attempt: int,
        declared_retry: bool | None,
        redactor: Redactor,
    ) -> None:
        self.recorder = recorder
        self.request = request
        self.adapter = adapter
        self.chat = chat
        self.call = call
        self.attempt = attempt
        self.declared_retry = declared_retry
        self.redactor = redactor
        self.start_events: list[ev.Event] = []
        self.t0 = time.perf_counter()
        self.ttft_ms: float | None = None
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.stream: parsing.StreamParser | None = None
        self.parse_failed = False
        self.body = bytearray()
        self.body_over = False
        self.bytes_out = 0
        self.decoder: _Decoder | None = None
        self.done = False
        self._json: Any = _UNSET

    @property
    def call_id(self) -> str:
        return self.call.call_id

    @property
    def model(self) -> str | None:
        return self.chat.model if self.chat is not None else None

    # --- what passes ---------------------------------------------------------------------

    def response_started(self, status: int, headers: dict[str, str]) -> None:
        """The response head (header names lower-cased)."""
        self.status, self.headers = status, headers
        self.decoder = _Decoder(headers.get("content-encoding", ""))
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if self.adapter is not None and status < 400 and kind in _STREAM_TYPES:
            try:
                self.stream = self.adapter.stream_parser(headers)
            except Exception:  # a parser that cannot start: the bytes still go through
                log.debug("stream parser failed to start", exc_info=True)
                self.parse_failed = True

    def chunk(self, data: bytes) -> None:
        """A chunk of the response body, as it passes."""
        if not data:
            return
        if self.ttft_ms is None:
            self.ttft_ms = round((time.perf_counter() - self.t0) * 1000, 3)
        self.bytes_out += len(data)
        if self.stream is not None:
            if not self.parse_failed and self.decoder is not None and self.decoder.ok:
                try:
                    self.stream.feed(self.decoder(data))
                except Exception:
                    log.debug("stream parser failed", exc_info=True)
                    self.parse_failed = True
            return
        if not self.body_over:
            if len(self.body) + len(data) > self.recorder.max_body_bytes:
                self.body_over = True
                self.body.clear()
            else:
                self.body += data

    # --- how it ends ---------------------------------------------------------------------

    def latency_ms(self) -> float:
        return round((time.perf_counter() - self.t0) * 1000, 3)

    def finished(self) -> list[ev.Event]:
        """The response ended normally: succeeded (< 400) or failed with its status."""
        if self.done:
            return []
        self.done = True
        status = self.status or 0
        if status >= 400:
            return self._failed_status(status)
        if self.recorder.store is None:  # forwarding only: the events would be dropped
            return []
        if self.stream is not None and not self.parse_failed:
            try:
                self.stream.close()
            except Exception:
                log.debug("stream parser failed at the end", exc_info=True)
                self.parse_failed = True
            error = getattr(self.stream, "error", None)
            if isinstance(error, ProviderError):
                # an error event inside a 200 stream: final (a started stream is not retried)
                return self._error(
                    error.status_code, msgspec.structs.replace(error, retryable=False)
                )
        response = self._response()
        return [self._succeeded(response), *self._finish_call("ok")]

    def failed(self, exc: BaseException, *, retry_possible: bool) -> list[ev.Event]:
        """The upstream could not be reached, timed out or cut the answer off.

        ``retry_possible``: the client got an error it may retry (a 502 before any byte),
        so the call waits for a retry; a stream cut mid-way is final.
        """
        if self.done:
            return []
        self.done = True
        return self._attempt_failed(
            error_type=type(exc).__name__,
            message=str(exc) or type(exc).__name__,
            retryable=retry_possible,
            status_code=None,
        )

    def closed_early(self) -> list[ev.Event]:
        """The reader stopped before the body's end: an error status or a stream whose
        last event had come (an SDK stops at ``[DONE]``) ended as it was; anything else
        was cancelled."""
        if (self.status or 0) >= 400 or (
            self.stream is not None and not self.parse_failed and self.stream.done
        ):
            return self.finished()
        return self.cancelled()

    def cancelled(self) -> list[ev.Event]:
        """The client went away before the answer ended: cancelled, with what had come."""
        if self.done:
            return []
        self.done = True
        return self._attempt_failed(
            error_type="Cancelled",
            message="the client disconnected before the answer ended",
            retryable=False,
            status_code=self.status,
        )

    # --- building events -----------------------------------------------------------------

    def _event(self, cls: type[ev.Event], **fields: Any) -> Any:
        return cls(id=ev.new_id(), ts=ev.now_iso(), call_id=self.call_id, **fields)

    def _clean(self, value: Any, where: str) -> Any:
        try:
            return clean(value, self.redactor, where)
        except UnstorableValueError:
            text = json.dumps(value, ensure_ascii=True, default=repr)
            return {"unstorable": self.redactor(text)}

    def _text(self, value: str | None) -> str | None:
        if value is None:
            return None
        return self._clean(value, "text") if isinstance(value, str) else None

    def _body_json(self) -> Any:
        """The answer's JSON (decoded once: the parser and ``raw`` both read it)."""
        if self._json is _UNSET:
            data = self._body_bytes() if self.body else None
            self._json = decode_json(data) if data else None
        return self._json

    def _response(self) -> ModelResponse | None:
        if self.adapter is None or self.parse_failed:
            return None
        try:
            if self.stream is not None:
                return self.stream.response()
            body = self._body_json()
            if body is None:
                return None
            return self.adapter.parse_response(body, self.headers)
        except Exception:
            log.debug("response parser failed", exc_info=True)
            return None

    def _plain_raw(self) -> dict[str, Any]:
        return {
            "method": self.request.method,
            "path": self.request.path,
            "status": self.status,
            "request_bytes": len(self.request.body),
            "response_bytes": self.bytes_out,
            "content_type": self.headers.get("content-type"),
        }

    def _succeeded(self, r: ModelResponse | None) -> ev.Event:
        model = self.model
        fields: dict[str, Any] = {
            "attempt": self.attempt,
            "backend": self.request.upstream,
            "model": model,
            "latency_ms": self.latency_ms(),
            "ttft_ms": self.ttft_ms,
        }
        if r is None:
            fields["raw"] = self._plain_raw()
            return self._event(ev.AttemptSucceeded, **fields)
        u = r.usage
        raw = None if self.stream is not None else self._clean(self._body_json(), "response")
        fields.update(
            text=self._text(r.text) or "",
            raw=raw,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cached_tokens=u.cache_read_tokens,
            reasoning_tokens=u.reasoning_tokens,
            cache_write_tokens=u.cache_write_tokens,
            finish_reason=r.finish_reason,
            tool_calls=self._parts(r.tool_calls),
            refusal=self._text(r.refusal),
            reasoning=self._parts(r.reasoning),
            stop_details=self._clean(r.stop_details, "stop_details"),
            response_id=r.response_id,
            response_model=r.response_model,
            request_id=r.request_id,
            headers=self._clean(r.headers or parsing.kept_headers(self.headers), "headers"),
            logprobs=self._clean(r.logprobs, "logprobs"),
        )
        event = self._event(ev.AttemptSucceeded, **fields)
        cost = price_call(event, self.request.upstream, r.response_model or model)
        if cost is None and r.response_model and model:
            cost = price_call(event, self.request.upstream, model)
        return msgspec.structs.replace(event, cost=cost) if cost is not None else event

    def _parts(self, parts: Sequence[Any]) -> list[Any]:
        if not parts:
            return []
        cleaned = self._clean(msgspec.to_builtins(list(parts)), "parts")
        try:
            return msgspec.convert(cleaned, list[type(parts[0])])  # type: ignore[misc]
        except (msgspec.ValidationError, TypeError):
            return []

    def _body_bytes(self) -> bytes | None:
        if self.body_over or self.decoder is None or not self.decoder.ok:
            return None
        return self.decoder(bytes(self.body))

    def _failed_status(self, status: int) -> list[ev.Event]:
        body = self._body_bytes()
        try:
            parse = self.adapter.parse_error if self.adapter is not None else parse_error
            error = parse(status, body, self.headers)
        except Exception:
            log.debug("error parser failed", exc_info=True)
            error = ProviderError(
                status_code=status,
                headers=parsing.kept_headers(self.headers),
                retryable=retryable_status(status),
            )
        return self._error(status, error)

    def _error(self, status: int | None, error: ProviderError) -> list[ev.Event]:
        message = error.message or f"HTTP {status}"
        return self._attempt_failed(
            error_type=_status_error_type(status or 500),
            message=message,
            retryable=error.retryable,
            status_code=status,
            error=error,
        )

    def _attempt_failed(
        self,
        *,
        error_type: str,
        message: str,
        retryable: bool,
        status_code: int | None,
        error: ProviderError | None = None,
    ) -> list[ev.Event]:
        partial = self._response() if self.stream is not None else None
        fields: dict[str, Any] = {}
        if error is not None:
            fields = {
                "error_code": error.code,
                "provider_error_type": error.error_type,
                "request_id": error.request_id,
                "headers": self._clean(error.headers, "headers"),
                "retry_after_s": error.retry_after_s,
            }
        if partial is not None:
            fields.update(
                partial_text=self._text(partial.text),
                partial_tool_calls=self._parts(partial.tool_calls),
                partial_reasoning=self._parts(partial.reasoning),
            )
        failed = self._event(
            ev.AttemptFailed,
            attempt=self.attempt,
            backend=self.request.upstream,
            error_type=error_type,
            message=self._text(message) or "",
            retryable=retryable,
            status_code=status_code,
            latency_ms=self.latency_ms(),
            **fields,
        )
        call = self.call
        call.attempts = self.attempt
        call.error_type, call.error_message = error_type, failed.message
        if retryable:  # the client may send it again: the call waits for that attempt
            self.recorder.open_calls.wait(call, sdk=self.declared_retry is not None)
            return [failed]
        return [failed, *self._finish_call("error")]

    def _finish_call(self, status: str) -> list[ev.Event]:
        call = self.call
        call.attempts = self.attempt
        return [self.recorder.call_finished(call, status, self.model)]


class ExchangeRecorder:
    """Turns exchanges into calls in one store; shared by every request of a proxy or of
    an httpx client (thread-safe).  ``store=None`` records nothing (forwarding only)."""

    def __init__(
        self,
        store: EventStore | None,
        *,
        source: str,
        redactor: Redactor | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        secrets: Sequence[str] = (),
    ) -> None:
        from ..recording.config import settings

        self.store = store
        self.source = source
        base = redactor if redactor is not None else settings().redactor
        scrub = secret_scrubber(list(secrets))
        self.redactor = base
        if scrub is not None:
            self.redactor = Redactor(include_defaults=False, callables=[base, scrub])
            self.redactor.sensitive_keys = base.sensitive_keys  # credential keys stay masked
        self.max_body_bytes = max_body_bytes
        self.store_blobs = settings().store_blobs
        self.open_calls = OpenCalls()
        self.process = processes.current()
        self._closed = False
        self._expiry: threading.Thread | None = None
        self._wake = threading.Event()
        self.lost = 0
        self._memo_forms: tuple[str, ...] | None = None
        self._memo_dict: dict[str, str] = {}
        self._scrubbers: dict[tuple[str, ...], Any] = {}

    @property
    def recording(self) -> bool:
        return self.store is not None

    def _memo(self) -> dict[str, str]:
        """The shared memo of redacted strings, emptied when the configured keys change."""
        forms = configured_secrets()
        if forms is not self._memo_forms:
            self._memo_forms = forms
            self._memo_dict = {}
        return self._memo_dict

    def _scrubber(self, headers: dict[str, str]) -> Any:
        """Masks this request's own credentials (remembered per set of credentials)."""
        creds = tuple(_credential_values(headers))
        if not creds:
            return None
        scrub = self._scrubbers.get(creds)
        if scrub is None:
            if len(self._scrubbers) >= 256:
                self._scrubbers.clear()
            scrub = self._scrubbers[creds] = secret_scrubber(creds)
        return scrub

    # --- the request -----------------------------------------------------------------------

    def begin(self, request: Request) -> Exchange:
        """The exchange for ``request``; its ``start_events`` are to be committed before
        the request goes upstream."""
        headers = request.headers
        redactor = ExchangeRedactor(self.redactor, self._memo(), self._scrubber(headers))
        adapter = parsing.adapter_for_path(request.provider_path or request.path)
        body_json = decode_json(request.body) if adapter is not None and request.body else None
        chat: ChatRequest | None = None
        blobs: dict[str, bytes] = {}
        if adapter is not None and isinstance(body_json, dict):
            try:
                chat, blobs = parsing.request_of(adapter, body_json)
            except Exception:
                log.debug("request parser failed", exc_info=True)
                chat = None
        if chat is None:
            adapter = None
        keys, declared = request_keys(
            request.client, request.method, request.path, request.body, headers
        )
        retried = self.open_calls.claim(keys, declared)
        if retried is not None:
            call, attempt = retried, retried.attempts + 1
        else:
            call = OpenCall(
                call_id=ev.new_id(),
                attempts=0,
                backend=request.upstream,
                model=chat.model if chat else None,
                started=time.perf_counter(),
                deadline=0.0,
                keys=keys,
            )
            attempt = 1
        exchange = Exchange(self, request, adapter, chat, call, attempt, declared, redactor)
        if self.store is None:
            return exchange
        events: list[ev.Event] = []
        if retried is None:
            note = annotations(headers)
            prompt_id = None
            if chat is not None:
                built = self._prompt_built(chat, note, exchange)
                events.append(built)
                prompt_id = built.prompt_id
                if blobs and self.store_blobs:
                    attach_blobs(built.id, blob_rows(built.messages, blobs))
            events.append(
                exchange._event(
                    ev.CallStarted,
                    prompt_id=prompt_id,
                    client=f"{self.source}:{request.upstream}",
                    model=chat.model if chat else None,
                    tags=exchange._clean(note.tags, "tags"),
                    metadata=exchange._clean(note.metadata, "metadata"),
                    host=self.process.host,
                    pid=self.process.pid,
                    process=self.process.process,
                    source=self.source,
                )
            )
        http = {"method": request.method, "path": request.path, "url": request.url}
        if request.provider_path and request.provider_path != request.path:
            http["provider_path"] = request.provider_path
        params: dict[str, Any] = {"http": http}
        if retried is None and chat is not None:
            params["body"] = self._recorded_body(request.body, body_json, blobs)
        events.append(
            exchange._event(
                ev.AttemptStarted,
                attempt=attempt,
                backend=request.upstream,
                model=chat.model if chat else None,
                params=exchange._clean(params, "params"),
            )
        )
        exchange.start_events = events
        return exchange

    def _recorded_body(self, body: bytes, parsed: Any, blobs: dict[str, bytes]) -> Any:
        """The request body as recorded: its JSON (inline bytes the blobs table holds
        replaced by their digest, see :func:`blob_refs`), its text, or a truncated prefix."""
        if not body:
            return None
        if len(body) > self.max_body_bytes and not blobs:
            head = body[: self.max_body_bytes].decode("utf-8", "replace")
            return {"truncated": True, "size": len(body), "text": head}
        if parsed is not None:
            return blob_refs(parsed, blobs) if blobs else parsed
        text = body.decode("utf-8", "replace")
        return {"text": text, "size": len(body)}

    def _prompt_built(self, chat: ChatRequest, note: Annotations, x: Exchange) -> ev.PromptBuilt:
        cleaned = x._clean(msgspec.to_builtins(chat.messages), "messages")
        try:
            messages = msgspec.convert(cleaned, list[Message])
        except (msgspec.ValidationError, TypeError):
            messages = []
        tools_raw = x._clean(msgspec.to_builtins(chat.tools), "tools")
        try:
            tools = msgspec.convert(tools_raw, list[type(chat.tools[0])]) if chat.tools else []
        except (msgspec.ValidationError, TypeError):
            tools = []
        system = "\n\n".join(_texts(m) for m in messages if m.role == "system")
        users = [m for m in messages if m.role == "user"]
        event_id = ev.new_id()
        options = x._clean(chat.params, "options")
        if chat.stream:
            options = {**options, "stream": True}
        return ev.PromptBuilt(
            id=event_id,
            ts=ev.now_iso(),
            prompt_id=event_id,
            system=system,
            user=_texts(users[-1]) if users else "",
            tags=x._clean(note.tags, "tags"),
            metadata=x._clean(note.metadata, "metadata"),
            origin=self.source,
            builder=self.source,
            messages=messages,
            tools=tools,
            options=options,
        )

    # --- calls ---------------------------------------------------------------------------

    def call_finished(self, call: OpenCall, status: str, model: str | None) -> ev.Event:
        ok = status == "ok"
        return ev.CallFinished(
            id=ev.new_id(),
            ts=ev.now_iso(),
            call_id=call.call_id,
            status=status,
            attempts=call.attempts,
            backend=call.backend if ok else None,
            model=model if ok else None,
            error_type=None if ok else call.error_type,
            error_message=None if ok else call.error_message,
            latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
        )

    def expired_events(self, *, everything: bool = False) -> list[ev.Event]:
        """``call_finished`` for the calls whose retry did not come in time."""
        return [
            self.call_finished(c, "error", c.model)
            for c in self.open_calls.expired(everything=everything)
        ]

    # --- writing ---------------------------------------------------------------------------

    def write(self, events: Sequence[ev.Event]) -> bool:
        """Commit ``events`` (blocking); False, after a logged error, if the store failed."""
        if self.store is None or not events:
            return True
        try:
            self.store.append(events)
            return True
        except (StoreError, sqlite3.Error, OSError, ValueError) as e:
            self.lost += len(events)
            log.error("llm-events: could not record %d events: %s", len(events), e)
            return False

    def hold(self, events: Sequence[ev.Event]) -> None:
        """Hold an outcome for the next commit (the next request's write-ahead shares its
        transaction) or the flush :meth:`start_expiry` runs every ``interval_s``: the
        client already has its answer, and one commit per request instead of two is what
        lets the proxy keep up with many concurrent clients.  Cheap: no I/O (called on the
        proxy's event loop)."""
        if self.store is None or not events:
            return
        try:
            self.store.defer(events)
        except (StoreError, sqlite3.Error, OSError, ValueError) as e:
            self.lost += len(events)
            log.error("llm-events: could not record %d events: %s", len(events), e)

    def start_expiry(self, interval_s: float = 0.2) -> None:
        """Finish calls whose retry never came, on a daemon thread."""
        if self._expiry is not None or self.store is None:
            return

        ref, wake = weakref.ref(self), self._wake

        def loop() -> None:  # holds the recorder weakly: a dropped client lets it go
            while not wake.wait(interval_s):
                recorder = ref()
                if recorder is None:
                    return
                if len(recorder.open_calls):
                    recorder.write(recorder.expired_events())
                recorder.flush_held()
                del recorder

        self._expiry = threading.Thread(target=loop, name="llm-events-retries", daemon=True)
        self._expiry.start()

    def flush_held(self) -> None:
        """Commit the held outcomes (only that: projections follow on their own schedule;
        a full ``flush`` here caught them up on this thread every interval)."""
        store = self.store
        if store is not None and getattr(store, "_deferred", True):
            try:
                store.flush_events()
            except (StoreError, sqlite3.Error, OSError, ValueError) as e:
                log.error("llm-events: could not record held events: %s", e)

    def close(self) -> None:
        """Finish every call still waiting for a retry, and flush the store."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self.store is not None:
            self.write(self.expired_events(everything=True))
            with contextlib.suppress(StoreError, sqlite3.Error, OSError):
                self.store.flush()


#: What an inline payload the blobs table holds becomes in a recorded request body.
BLOB_REF = "llm-events-blob:sha256:"
_MIN_INLINE = 64


def blob_refs(value: Any, blobs: dict[str, bytes]) -> Any:
    """``value`` with each base64 payload (bare or in a ``data:`` URL) whose bytes are in
    ``blobs`` replaced by ``llm-events-blob:sha256:<digest>``: a large image is stored once,
    and :func:`resolve_blob_refs` puts the bytes back for an exact re-send."""
    if isinstance(value, dict):
        return {k: blob_refs(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [blob_refs(v, blobs) for v in value]
    if isinstance(value, str) and len(value) >= _MIN_INLINE:
        prefix, payload = "", value
        if value.startswith("data:"):
            head, comma, payload = value.partition(",")
            if not comma:
                return value
            prefix = head + ","
        try:
            digest = hashlib.sha256(base64.b64decode(payload, validate=True)).hexdigest()
        except (binascii.Error, ValueError):
            return value
        if digest in blobs:
            return prefix + BLOB_REF + digest
    return value


def resolve_blob_refs(value: Any, read: Any) -> Any:
    """The inverse of :func:`blob_refs`: ``read(sha256) -> bytes | None``."""
    if isinstance(value, dict):
        return {k: resolve_blob_refs(v, read) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_blob_refs(v, read) for v in value]
    if isinstance(value, str) and BLOB_REF in value:
        prefix, _, digest = value.partition(BLOB_REF)
        data = read(digest)
        if data is None:
            raise ValueError(f"the bytes of blob {digest} are not in the store")
        return prefix + base64.b64encode(data).decode("ascii")
    return value


def blob_rows(messages: Sequence[Message], blobs: dict[str, bytes]) -> list[Blob]:
    """The blobs to store, with the media type their parts name."""
    mime = {p.sha256: p.mime_type for m in messages for p in m.parts if isinstance(p, BlobPart)}
    return [Blob(digest, mime.get(digest), data) for digest, data in blobs.items()]


def _texts(message: Message) -> str:
    return "".join(p.content for p in message.parts if isinstance(p, TextPart))

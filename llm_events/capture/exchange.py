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
``max_body_bytes`` are recorded truncated, with ``truncated`` and the full size; a chat
answer over it is still read whole (up to :data:`PARSE_LIMIT` times the limit).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ..log import events as ev
from ..log.conversation import (
    ChatRequest,
    ModelResponse,
    ProviderError,
)
from ..log.pricing import price_call
from ..log.redaction import Redactor, UnstorableValueError, clean
from ..providers import parse_error
from . import parsing
from .encodings import Decoder
from .request_head import Request
from .retries import OpenCall

if TYPE_CHECKING:
    from .exchange_recorder import ExchangeRecorder

log = logging.getLogger("llm_events.capture")

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: An answer on a chat path is read whole up to this many times ``max_body_bytes``.
PARSE_LIMIT = 16

_UNSET: Any = object()

_STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl")


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


def _outcome(method: Callable[..., list[ev.Event]]) -> Callable[..., list[ev.Event]]:
    """An outcome that never raises: a fault of the recorder itself (reading an answer it
    did not expect) still closes the attempt and the call, as ``RecorderError``, and never
    reaches the client, who has its answer."""

    @functools.wraps(method)
    def guarded(self: Exchange, *args: Any, **kwargs: Any) -> list[ev.Event]:
        if self.bug is None:
            try:
                return method(self, *args, **kwargs)
            except Exception as e:
                log.exception("llm-events: the recorder failed on an answer")
                self.bug = e
        return self._recorder_failed()

    return guarded


def _passing(method: Callable[..., None]) -> Callable[..., None]:
    """What is fed as the answer passes: a fault of the recorder is kept for the outcome,
    and the bytes go on to the client."""

    @functools.wraps(method)
    def guarded(self: Exchange, *args: Any) -> None:
        if self.bug is None:
            try:
                method(self, *args)
            except Exception as e:
                log.exception("llm-events: the recorder failed on an answer")
                self.bug = e

    return guarded


#: The bytes of a stream kept to say what came instead of events.
_HEAD_BYTES = 60


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
        self.parse_error: str | None = None
        self.body = bytearray()
        self.stream_head = b""  # a stream's first bytes, decoded
        self.body_over = False
        self.body_dropped = False
        self.bytes_out = 0
        self.decoder: Decoder | None = None
        self.done = False
        self._json: Any = _UNSET
        self._decoded: Any = _UNSET
        #: a fault of the recorder itself (see :func:`_outcome`)
        self.bug: Exception | None = None
        #: the error type of this attempt, once it failed
        self.error_type: str | None = None
        self._bug_recorded = False
        #: where a redirect sent the client instead of the upstream's Location (the proxy)
        self.relocated_to: str | None = None

    @property
    def call_id(self) -> str:
        return self.call.call_id

    @property
    def model(self) -> str | None:
        return self.chat.model if self.chat is not None else None

    # --- what passes ---------------------------------------------------------------------

    @_passing
    def response_started(self, status: int, headers: dict[str, str]) -> None:
        """The response head (header names lower-cased)."""
        self.status, self.headers = status, headers
        self.decoder = Decoder(headers.get("content-encoding", ""))
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if self.adapter is not None and status < 400 and kind in _STREAM_TYPES:
            try:
                self.stream = self.adapter.stream_parser(headers)
            except Exception as e:  # a parser that cannot start: the bytes still go through
                log.debug("stream parser failed to start", exc_info=True)
                self._unreadable(e)

    @_passing
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
                    decoded = self.decoder(data)
                    if len(self.stream_head) < _HEAD_BYTES:  # (named if it is no stream)
                        self.stream_head += decoded[: _HEAD_BYTES - len(self.stream_head)]
                    self.stream.feed(decoded)
                except Exception as e:
                    log.debug("stream parser failed", exc_info=True)
                    self._unreadable(e)
            return
        if self.body_dropped:
            return
        self.body += data
        if len(self.body) > self.recorder.max_body_bytes:
            # an answer over the limit is still read whole (text, tool calls, usage) and
            # recorded truncated; past PARSE_LIMIT times the limit, or for a plain exchange,
            # it is not kept at all
            self.body_over = True
            keep = self.recorder.max_body_bytes * (PARSE_LIMIT if self.adapter else 1)
            if len(self.body) > keep:
                self.body_dropped = True
                self.body.clear()

    # --- how it ends ---------------------------------------------------------------------

    def latency_ms(self) -> float:
        return round((time.perf_counter() - self.t0) * 1000, 3)

    @_outcome
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
            except Exception as e:
                log.debug("stream parser failed at the end", exc_info=True)
                self._unreadable(e)
            error = getattr(self.stream, "error", None)
            if isinstance(error, ProviderError):
                # an error event inside a 200 stream: final (a started stream is not retried)
                return self._error(
                    error.status_code, msgspec.structs.replace(error, retryable=False)
                )
        response = self._response()
        if self.adapter is not None:
            problem = self._answer_problem(response)
            if problem is not None:
                # the client got the bytes as they came; the call did not get an answer
                error_type, message = problem
                error = self._error_in_answer(response)
                if error is not None:
                    message = f"the upstream's {status} answer is an error: {error.message}"
                return self._attempt_failed(
                    error_type=error_type,
                    message=message,
                    retryable=False,
                    status_code=status,
                    error=error,
                )
        return [self._succeeded(response), *self._finish_call("ok")]

    def _error_in_answer(self, response: ModelResponse | None) -> ProviderError | None:
        """A provider's error in a whole answer with a 2xx status (some OpenAI-compatible
        servers send ``{"error": {...}}`` or vLLM's ``{"object": "error", ...}`` with 200)."""
        if response is not None or self.stream is not None:
            return None
        data = self._body_json()
        if not isinstance(data, dict) or not (
            "error" in data or data.get("object") == "error" or data.get("type") == "error"
        ):
            return None
        try:
            error = parse_error(self.status or 200, self._body_bytes(), self.headers)
        except Exception:
            log.debug("error parser failed", exc_info=True)
            return None
        return error if error.message else None

    def _unreadable(self, exc: BaseException) -> None:
        self.parse_failed = True
        self.parse_error = f"{type(exc).__name__}: {exc}"[:500]

    def _answer_problem(self, response: ModelResponse | None) -> tuple[str, str] | None:
        """Why a chat answer that ended normally is not one (``None`` when it is): not
        the provider's format (an HTML page, a body that is not JSON or not UTF-8, one that
        cannot be decoded), or a stream that ended before its last event."""
        kind = self.headers.get("content-type") or "no content-type"
        coding = self.headers.get("content-encoding")
        if 300 <= (self.status or 0) < 400:
            where = self.headers.get("location") or "nowhere"
            if self.relocated_to is not None:
                return "Redirected", (
                    f"the upstream answered {self.status}, redirecting to {where}; passed on "
                    f"as {self.relocated_to}, so a client that follows it comes back through "
                    "the proxy and is recorded as another call"
                )
            return "Redirected", (
                f"the upstream answered {self.status}, redirecting to {where}: a client that "
                "follows it sends the request there itself (past a proxy unless it is one)"
            )
        if self.stream is not None and not self.parse_failed:
            if self.decoder is not None and not self.decoder.ok:
                why = f"its content-encoding {coding!r} could not be undone"
            elif self.stream.events_seen == 0 and self.bytes_out:
                head = self.stream_head.decode("utf-8", "replace")
                why = f"no server-sent event in it (it begins {head!r})"
            elif response is not None and not self.stream.done and response.finish_reason is None:
                what = (
                    f"the answer stream ended before its last event ({self.bytes_out} bytes came)"
                )
                return "IncompleteStream", what
            else:
                return None
        elif self.parse_failed:
            why = self.parse_error or "it could not be read"
        elif response is not None or self.body_dropped:
            return None  # an answer too large to keep is not read at all
        elif coding and (self.decoder is None or not self.decoder.ok):
            why = f"its content-encoding {coding!r} could not be undone"
        elif not self.bytes_out:
            why = "it is empty"
        else:
            why = "it is not the provider's JSON"
            if self.decoder is not None and self.decoder.skipped:
                why += f" (content-encoding {', '.join(self.decoder.skipped)} read as it is)"
        return (
            "InvalidResponse",
            f"the answer ({kind}, {self.bytes_out} bytes) is unreadable: {why}",
        )

    @_outcome
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

    @_outcome
    def closed_early(self) -> list[ev.Event]:
        """The reader stopped before the body's end: an error status or a stream whose
        last event had come (an SDK stops at ``[DONE]``, and raises at an error event)
        ended as it was; anything else was cancelled."""
        stream = self.stream
        if (self.status or 0) >= 400 or (
            stream is not None and not self.parse_failed and (stream.done or stream.error)
        ):
            return self.finished()
        return self.cancelled()

    @_outcome
    def cancelled(self) -> list[ev.Event]:
        """The client went away before the answer ended: cancelled, with what had come.
        Before the answer began (an SDK's timeout, which it retries) the call waits for a
        retry, as after an error the client may retry."""
        if self.done:
            return []
        self.done = True
        began = self.status is not None
        return self._attempt_failed(
            error_type="Cancelled",
            message="the client disconnected before the answer " + ("ended" if began else "began"),
            retryable=not began,
            status_code=self.status,
        )

    def _recorder_failed(self) -> list[ev.Event]:
        """The attempt and the call closed as ``RecorderError`` (once), built from nothing
        the fault could have come from."""
        if self._bug_recorded:
            return []
        self._bug_recorded = self.done = True
        bug = self.bug
        message = f"llm-events could not record this answer: {type(bug).__name__}: {bug}"
        failed = ev.AttemptFailed(
            id=ev.new_id(),
            ts=ev.now_iso(),
            call_id=self.call_id,
            attempt=self.attempt,
            backend=self.request.upstream,
            error_type="RecorderError",
            message=parsing.storable_str(message[:1000]) or "",
            status_code=self.status,
            latency_ms=self.latency_ms(),
        )
        self.error_type = "RecorderError"
        call = self.call
        call.attempts = self.attempt
        call.error_type, call.error_message = "RecorderError", failed.message
        self.recorder.open_calls.forget(call)
        return [failed, self.recorder.call_finished(call, "error", None)]

    # --- building events -----------------------------------------------------------------

    def _event(self, cls: type[ev.Event], **fields: Any) -> Any:
        for key, value in fields.items():
            # a name or id off the wire with a lone surrogate would fail the whole commit
            # (and the other calls' events sharing it): escaped, as storable_str does
            if isinstance(value, str) and not value.isascii():
                fields[key] = parsing.storable_str(value)
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

    def _partial(self) -> ModelResponse | None:
        """What a stream had delivered, also when it then turned unreadable."""
        if self.stream is None:
            return None
        try:
            return self.stream.response()
        except Exception:
            log.debug("stream parser failed on its partial answer", exc_info=True)
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
        wire = parsing.storable_str
        if not all(
            v is None or isinstance(v, str)
            for v in (r.response_id, r.response_model, r.request_id, r.finish_reason)
        ):  # an answer whose ids are numbers or objects: recorded as their JSON
            r = msgspec.structs.replace(
                r,
                response_id=wire(r.response_id),
                response_model=wire(r.response_model),
                request_id=wire(r.request_id),
                finish_reason=wire(r.finish_reason),
            )
        # a stream's raw: what the parser kept of it beyond the fields (ids, the choices of
        # an n > 1 stream); a whole answer's: its body
        raw = self._clean(r.raw, "response") if self.stream is not None else self._recorded_raw()
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
        """The answer's body decoded (once: the decoder is fed the whole body)."""
        if self._decoded is _UNSET:
            if self.body_dropped or self.decoder is None or not self.decoder.ok:
                self._decoded = None
            else:
                self._decoded = self.decoder(bytes(self.body))
        return self._decoded

    def _recorded_raw(self) -> Any:
        """A whole answer's body as recorded: its JSON, or over ``max_body_bytes`` a
        truncated prefix with the full size."""
        if not self.body_over:
            return self._clean(self._body_json(), "response")
        data = self._body_bytes() or b""
        head = data[: self.recorder.max_body_bytes].decode("utf-8", "replace")
        return {"truncated": True, "size": len(data), "text": self._text(head)}

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
        partial = self._partial()
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
        self.error_type = error_type
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

"""Recording: turning what clients do into events, one logical call at a time.

A :class:`CallScope` is the open call.  It lives in a context variable, so code nested
inside one call (``with_retry`` around ``LLMRouter.generate`` around a client with a backend
chain) adds attempts to that call instead of starting new ones; each thread and asyncio task
has its own.  The scope is lazy: it writes nothing until a client starts it with a prompt.

Durability: ``prompt_built``, ``call_started`` and each ``attempt_started`` are committed
before the request leaves (write-ahead); outcomes are committed before ``generate`` returns.
If the store fails, the default is to raise :class:`RecordingError` (no answer without its
record); with ``on_store_error="warn"`` the answer goes through and the loss is warned about.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..interface.prompt import LLMResult, Prompt
from ..interface.tokens import estimate_request_tokens, estimate_tokens
from ..log import events as ev
from ..log import processes
from ..log.blobs import Blob
from ..log.blobs import attach as attach_blobs
from ..log.redaction import clean, clean_text
from ..log.store import EventStore
from .answer_fields import classify, complete_result, exc_message, provider_details, safe_text
from .config import settings
from .prompt_events import mark_recorded, prompt_built_event, recorded_prompt_id
from .store_access import (
    RecordingError,
    RecordingLostWarning,
    StoreSpec,
    emit,
    resolve_store,
)
from .values import check_result, safe_amount
from .workers import in_thread

__all__ = [
    "CallOptions",
    "CallScope",
    "RecordingError",
    "RecordingLostWarning",
    "StoreSpec",
    "aend_call",
    "async_call_scope",
    "call_options",
    "call_scope",
    "classify",
    "current_call",
    "emit",
    "end_call",
    "mark_recorded",
    "prompt_built_event",
    "recorded_prompt_id",
    "resolve_store",
]


E = TypeVar("E", bound=ev.Event)

_current: ContextVar[CallScope | None] = ContextVar("llm_events_call", default=None)
_options: ContextVar[CallOptions | None] = ContextVar("llm_events_call_options", default=None)


@dataclass
class CallOptions:
    """Defaults for the calls started inside :func:`call_options` (used by replay)."""

    store: StoreSpec = None
    parent_call_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    call_ids: list[str] = field(default_factory=list)
    #: ``call_started.source``: application, replay, import, proxy, transport (default:
    #: ``replay`` for a call linked to an original, else ``application``)
    source: str | None = None


@contextlib.contextmanager
def call_options(
    *,
    store: StoreSpec = None,
    parent_call_id: str | None = None,
    tags: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    source: str | None = None,
) -> Iterator[CallOptions]:
    """Record the calls made inside this block with these settings (``source``: where the
    calls come from, ``call_started.source``: ``application``, ``replay``, ...).

    The call ids started inside are collected in ``options.call_ids`` (even for calls that
    raised), so a harness can link what it ran to what was recorded.
    """
    opts = CallOptions(store, parent_call_id, list(tags), dict(metadata or {}), source=source)
    token = _options.set(opts)
    try:
        yield opts
    finally:
        _options.reset(token)


def current_call() -> CallScope | None:
    """The open call in this context, if any."""
    return _current.get()


# --- the open call ----------------------------------------------------------------------------


class CallScope:
    """One logical call being recorded."""

    def __init__(
        self,
        store: StoreSpec = None,
        on_store_error: str | None = None,
        options: CallOptions | None = None,
    ) -> None:
        current = settings()
        self.options = options
        self.store_spec = store if store is not None else (options.store if options else None)
        self.on_store_error = on_store_error or current.on_store_error
        self.redactor = current.redactor
        self.store: EventStore | None = None
        self.call_id: str | None = None
        self.started = False
        self.recording = current.enabled
        self.attempt = 0
        self.pending: list[ev.Event] = []
        self.t0 = time.perf_counter()
        self.last_success: ev.AttemptSucceeded | None = None
        self.last_backend: str | None = None
        self.last_model: str | None = None
        self.prompt_tokens_estimate = 0

    # writing ---------------------------------------------------------------------------------

    def _event(self, cls: type[E], **fields: Any) -> E:
        """A new event of this call: fresh id, timestamp now, this call's id."""
        return cls(id=ev.new_id(), ts=ev.now_iso(), call_id=self.call_id or "", **fields)

    def _add(self, event: ev.Event) -> None:
        if self.recording:
            self.pending.append(event)

    def commit(self, what: str = "") -> None:
        """Write what is pending (one transaction)."""
        if not self.pending or self.store is None:
            self.pending.clear()
            return
        batch, self.pending = self.pending, []
        if not emit(self.store, batch, self.on_store_error, what=what or batch[-1].type_name):
            self.recording = False  # one warning per call is enough

    # lifecycle --------------------------------------------------------------------------------

    def start(self, prompt: Prompt, client: str, model: str | None = None) -> None:
        """Begin the call for ``prompt`` (first caller wins; later ones join)."""
        if self.started:
            return
        call_id = ev.new_id()
        self.prompt_tokens_estimate = estimate_request_tokens(prompt)
        if not self.recording:
            self._started(call_id)
            return
        store = resolve_store(self.store_spec, self.on_store_error)
        if store is None:
            self.recording = False
            self._started(call_id)
            return
        prompt_id = recorded_prompt_id(prompt, store)
        built = None
        found: list[Blob] = []
        if prompt_id is None:
            # raises UnstorableValueError before anything of the call exists
            built = prompt_built_event(prompt, self.redactor, builder="generate", blobs_out=found)
            prompt_id = built.prompt_id
        opts = self.options
        me = processes.current()
        started = ev.CallStarted(
            id=ev.new_id(),
            ts=ev.now_iso(),
            call_id=call_id,
            prompt_id=prompt_id,
            client=client,
            model=model,
            parent_call_id=opts.parent_call_id if opts else None,
            tags=list(opts.tags) if opts else [],
            metadata=clean(opts.metadata, self.redactor, "call metadata") if opts else {},
            host=me.host,
            pid=me.pid,
            process=me.process,
            source=_source(opts),
        )
        self.store = store
        self._started(call_id)
        if built is not None:
            attach_blobs(built.id, found)
            self._add(built)
            mark_recorded(prompt, built, store)
        self._add(started)

    def _started(self, call_id: str) -> None:
        self.started = True
        self.call_id = call_id
        if self.options is not None:
            self.options.call_ids.append(call_id)

    def route(
        self, chosen: str, reason: str, candidates: Sequence[str], tokens: int | None
    ) -> None:
        self._add(
            self._event(
                ev.RouteChosen,
                chosen=chosen,
                reason=reason,
                candidates=list(candidates),
                estimated_tokens=tokens,
            )
        )

    def begin_attempt(
        self, backend: str, model: str | None, params: dict[str, Any] | None = None
    ) -> int:
        """Record ``attempt_started`` and commit it before the request leaves."""
        self.attempt += 1
        self._add(
            self._event(
                ev.AttemptStarted,
                attempt=self.attempt,
                backend=backend,
                model=model,
                params=clean(params or {}, self.redactor, "params"),
            )
        )
        self.commit("attempt_started")
        return self.attempt

    def attempt_failed(
        self,
        attempt: int,
        exc: BaseException,
        backend: str,
        latency_ms: float | None,
        partial_text: str | None = None,
    ) -> None:
        """Record a failed attempt with what the error says of the provider's answer
        (:func:`provider_details`) and what a broken stream had delivered."""
        retryable, status = classify(exc)
        latency_ms = safe_amount(latency_ms)  # a refused answer's own latency may be mistyped
        if partial_text is None:
            got = getattr(exc, "partial_text", None)
            partial_text = got if isinstance(got, str) and got else None
        self._add(
            self._event(
                ev.AttemptFailed,
                attempt=attempt,
                backend=backend,
                error_type=type(exc).__name__,
                message=safe_text(self.redactor, exc_message(exc)),
                retryable=retryable,
                status_code=status,
                latency_ms=latency_ms,
                partial_text=None
                if partial_text is None
                else safe_text(self.redactor, partial_text),
                **provider_details(self.redactor, exc),
            )
        )

    def attempt_succeeded(
        self,
        attempt: int,
        result: LLMResult,
        backend: str,
        model: str | None,
        *,
        tokens_estimated: bool = False,
        ttft_ms: float | None = None,
        finish_reason: str | None = None,
        extra_usage: dict[str, int | None] | None = None,
        checked: bool = False,
    ) -> None:
        """Record the answer.  Raises :class:`UnstorableValueError` if it cannot be stored.

        ``checked``: the caller ran :func:`check_result` on it and changed nothing since
        that it checks (``record_success``)."""
        if not checked:
            check_result(result)  # mistyped counts, costs, texts: coerced or refused
        raw = result.raw
        if finish_reason is None:
            finish_reason = result.finish_reason
        if finish_reason is None and isinstance(raw, dict):
            finish_reason = raw.get("finish_reason")
        usage = extra_usage or {}
        cached = result.cache_read_tokens
        reasoning_tokens = result.reasoning_tokens
        event = self._event(
            ev.AttemptSucceeded,
            attempt=attempt,
            backend=backend,
            model=model,
            text=clean_text(result.text or "", self.redactor, "result.text"),
            parsed=clean(result.parsed, self.redactor, "result.parsed"),
            raw=clean(raw, self.redactor, "result.raw"),
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cached_tokens=cached if cached is not None else usage.get("cached_tokens"),
            reasoning_tokens=(
                reasoning_tokens if reasoning_tokens is not None else usage.get("reasoning_tokens")
            ),
            tokens_estimated=tokens_estimated,
            cost=result.cost,
            latency_ms=result.latency_ms,
            ttft_ms=ttft_ms,
            finish_reason=str(finish_reason) if finish_reason is not None else None,
            **complete_result(self.redactor, result),
        )
        self.last_success = event
        self.last_backend, self.last_model = backend, model
        self._add(event)

    def retry_scheduled(self, attempt: int, delay_s: float, exc: BaseException) -> None:
        """Record that ``with_retry`` will try again, committed before it sleeps."""
        if not self.started:
            return
        self._add(
            self._event(
                ev.RetryScheduled,
                attempt=attempt,
                delay_s=delay_s,
                error_type=type(exc).__name__,
            )
        )
        self.commit("retry_scheduled")

    def fallback(self, from_backend: str, to_backend: str, reason: str) -> None:
        self._add(
            self._event(
                ev.FallbackTaken,
                from_backend=from_backend,
                to_backend=to_backend,
                reason=safe_text(self.redactor, reason),
            )
        )

    def finish(self, exc: BaseException | None) -> None:
        """Record ``call_finished`` (ok, or error with ``exc``) and commit."""
        if not self.started:
            return
        latency = round((time.perf_counter() - self.t0) * 1000, 3)
        if exc is None:
            done = self._event(
                ev.CallFinished,
                status="ok",
                attempts=self.attempt,
                backend=self.last_backend,
                model=self.last_model,
                latency_ms=latency,
            )
        else:
            done = self._event(
                ev.CallFinished,
                status="error",
                attempts=self.attempt,
                error_type=type(exc).__name__,
                error_message=safe_text(self.redactor, exc_message(exc)),
                latency_ms=latency,
            )
        self._add(done)
        self.commit("call_finished")

    def estimate_output(self, text: str) -> int:
        return estimate_tokens(text)


def _source(opts: CallOptions | None) -> str:
    if opts is None:
        return "application"
    if opts.source:
        return opts.source
    return "replay" if opts.parent_call_id or "replay" in opts.tags else "application"


def _open_call(
    store: StoreSpec, on_store_error: str | None, record: bool
) -> tuple[CallScope, Token[CallScope | None] | None]:
    """The open call to join (no token), or a new one made current (with its token)."""
    outer = _current.get()
    if outer is not None:
        return outer, None
    scope = CallScope(store, on_store_error, _options.get())
    if not record:  # a client made with log_prompts=False
        scope.recording = False
    return scope, _current.set(scope)


def end_call(scope: CallScope, error: BaseException | None) -> None:
    """Finish a call its caller owns: ``call_finished`` (ok, or error with ``error``).

    The call id goes on the exception (``llm_events_call_id``); a :class:`RecordingError`
    while recording an error is raised from that error.
    """
    if error is not None and scope.started and scope.call_id is not None:
        with contextlib.suppress(AttributeError, TypeError):
            error.llm_events_call_id = scope.call_id  # type: ignore[attr-defined]
    try:
        scope.finish(error)
    except RecordingError as rec_err:
        if error is None:
            raise
        raise rec_err from error


async def aend_call(scope: CallScope, error: BaseException | None) -> None:
    """:func:`end_call` off the event loop; in place while a task is being cancelled or
    a generator closed (an await there could be interrupted half-way)."""
    if error is None or isinstance(error, Exception):
        await in_thread(end_call, scope, error)
    else:
        end_call(scope, error)


def call_scope(
    store: StoreSpec = None, on_store_error: str | None = None, *, record: bool = True
) -> contextlib.AbstractContextManager[tuple[CallScope, bool]]:
    """Join the open call, or open a new one; yields ``(scope, owner)``.

    ``record=False`` (a client's ``log_prompts=False``) records nothing of a call it opens.
    The owner finishes the call when the block ends: ``call_finished`` with status ``ok``,
    or ``error`` when the block raises (the exception propagates unchanged).
    """
    return _CallBlock(store, on_store_error, record)


class _CallBlock:
    """:func:`call_scope`'s block (a class: a generator's context manager cost every
    recorded call 2 us)."""

    __slots__ = ("options", "scope", "token")

    def __init__(self, store: StoreSpec, on_store_error: str | None, record: bool) -> None:
        self.options = (store, on_store_error, record)

    def __enter__(self) -> tuple[CallScope, bool]:
        self.scope, self.token = _open_call(*self.options)
        return self.scope, self.token is not None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if self.token is None:
            return
        _current.reset(self.token)
        end_call(self.scope, exc)  # then the block's exception, if any, goes on


@contextlib.asynccontextmanager
async def async_call_scope(
    store: StoreSpec = None, on_store_error: str | None = None
) -> AsyncIterator[tuple[CallScope, bool]]:
    """:func:`call_scope` for coroutines: the call is finished off the event loop."""
    scope, token = _open_call(store, on_store_error, True)
    if token is None:
        yield scope, False
        return
    try:
        yield scope, True
    except BaseException as exc:
        _current.reset(token)
        await aend_call(scope, exc)
        raise
    _current.reset(token)
    await aend_call(scope, None)

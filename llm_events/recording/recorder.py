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
import os
import sqlite3
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from ..interface.messages import MessageError, normalize_reasoning, normalize_tool_calls
from ..interface.prompt import LLMResult, Prompt, prompt_fingerprint
from ..interface.tokens import estimate_request_tokens, estimate_tokens
from ..log import events as ev
from ..log import processes
from ..log.blobs import Blob, split_blobs
from ..log.blobs import attach as attach_blobs
from ..log.conversation import Message, ReasoningPart, ToolCallPart, ToolDefinition
from ..log.interrupted import record_interrupted
from ..log.redaction import Redactor, UnstorableValueError, clean, clean_text
from ..log.store import EventStore, StoreError
from .config import open_store, resolve_db_path, settings
from .values import check_prompt, check_result, safe_amount
from .workers import in_thread


class RecordingError(StoreError):
    """An event could not be recorded, so the call was stopped (``on_store_error="raise"``)."""


class RecordingLostWarning(UserWarning):
    """An event could not be recorded; the answer went through (``on_store_error="warn"``)."""


StoreSpec = str | EventStore | None
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


def emit(
    store: EventStore,
    events: Sequence[ev.Event],
    on_store_error: str,
    *,
    what: str = "",
    defer: bool = False,
) -> bool:
    """Append (or, with ``defer``, hold for the next append) events; on failure raise
    :class:`RecordingError` or warn (returns False)."""
    try:
        if defer:
            if store.readonly:
                raise StoreError(f"event store {store.path} is open read-only")
            store.defer(events)
        else:
            store.append(events)
        return True
    except (StoreError, sqlite3.Error, OSError) as e:
        message = f"could not record {what or 'events'} to {store.path or 'the store'}: {e}"
        if on_store_error == "warn":
            warnings.warn(message, RecordingLostWarning, stacklevel=3)
            return False
        raise RecordingError(message) from e


#: (path as resolved by config, batch flag, cwd for a relative path) -> the store opened for it.
_resolved: dict[tuple[str, bool, str], EventStore] = {}


#: What a store path is resolved from (see ``_resolution_inputs``) -> (path, is it relative).
_paths: dict[tuple, tuple[str, bool]] = {}
_PATH_ENV = ("LLM_EVENTS_DB", "LLM_EVENTS_HOME", "XDG_CONFIG_HOME", "HOME")


def _resolved_key(explicit: StoreSpec) -> tuple[str, bool, str] | None:
    if isinstance(explicit, EventStore):
        return None
    current = settings()
    if explicit is None and current.store is not None:
        return None
    # everything resolve_db_path reads: building Paths on every call cost a tenth of it
    if explicit is not None or current.db is not None:
        inputs: tuple = (explicit, current.db)
    else:
        inputs = tuple(map(os.environ.get, _PATH_ENV))
    try:
        path, relative = _paths[inputs]
    except (KeyError, TypeError):  # TypeError: an unhashable os.PathLike
        resolved = resolve_db_path(explicit)
        path, relative = str(resolved), not resolved.is_absolute()
        with contextlib.suppress(TypeError):
            if len(_paths) >= 64:
                _paths.clear()
            _paths[inputs] = (path, relative)
    return (path, current.batch, os.getcwd() if relative else "")


def resolve_store(explicit: StoreSpec, on_store_error: str) -> EventStore | None:
    """Open the store for a recording; ``None`` (after a warning) if it cannot be opened.

    Every recorded call resolves its store twice (builder, then client); ``open_store``
    resolves the path on the filesystem each time (``Path.resolve``: a syscall per path
    component, a tenth of a recorded call's cost).  The path that the configuration names
    is computed without touching the filesystem, and the store opened for it is reused
    while it stays open.
    """
    key = _resolved_key(explicit)
    if key is not None:
        store = _resolved.get(key)
        if store is not None and not store._closed:
            return store
    try:
        store = open_store(explicit)
        if key is not None:
            if len(_resolved) >= 64:
                _resolved.clear()
            _resolved[key] = store
    except (StoreError, sqlite3.Error, OSError) as e:
        if on_store_error == "warn":
            warnings.warn(f"not recording: {e}", RecordingLostWarning, stacklevel=3)
            return None
        if isinstance(e, StoreError):
            raise RecordingError(str(e)) from e
        raise RecordingError(f"cannot open event store: {e}") from e
    if store not in _swept:
        _swept.add(store)
        # once per store and process; housekeeping never stops a recording (a store that
        # cannot be written fails again, clearly, in the recording's own write)
        with contextlib.suppress(StoreError, sqlite3.Error, OSError, ValueError):
            record_interrupted(store)
    return store


#: Stores already searched for the calls of ended processes (``record_interrupted``).
_swept: weakref.WeakSet[EventStore] = weakref.WeakSet()


# --- prompts ----------------------------------------------------------------------------------

_PROMPT_STATE = "_llm_events_recorded"


def _structs(value: Any, type_: Any, where: str) -> Any:
    """Cleaned plain data as the event's structs (refused, naming ``where``, if it does not fit)."""
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as e:
        raise UnstorableValueError(f"{where}: {e}") from None


def _conversation(
    prompt: Prompt, redactor: Redactor, blobs_out: list[Blob] | None
) -> dict[str, Any]:
    """``messages``, ``tools`` and ``options`` of a ``prompt_built``: redacted, and inline
    bytes replaced by their digest (the bytes go to ``blobs_out`` if stored)."""
    if not (prompt.messages or prompt.tools or prompt.options):
        return {}
    try:
        messages, found = split_blobs(prompt.messages, keep=settings().store_blobs)
    except ValueError as e:
        raise UnstorableValueError(f"prompt.messages: {e}") from None
    if blobs_out is not None:
        blobs_out.extend(found)
    return {
        "messages": _structs(
            clean(messages, redactor, "prompt.messages"), list[Message], "prompt.messages"
        ),
        "tools": _structs(
            clean(prompt.tools, redactor, "prompt.tools"), list[ToolDefinition], "prompt.tools"
        ),
        "options": clean(prompt.options, redactor, "prompt.options"),
    }


def prompt_built_event(
    prompt: Prompt,
    redactor: Redactor,
    *,
    builder: str = "",
    context: Sequence[ev.ContextItem] = (),
    blobs_out: list[Blob] | None = None,
) -> ev.PromptBuilt:
    """A ``prompt_built`` event for ``prompt``, cleaned and redacted (raises if unstorable).

    Inline bytes of its messages are appended to ``blobs_out`` (for
    :func:`llm_events.log.blobs.attach`); the event holds their digests.
    """
    check_prompt(prompt)  # typed fields coerced or refused before anything is written
    event_id = ev.new_id()
    return ev.PromptBuilt(
        id=event_id,
        ts=ev.now_iso(),
        prompt_id=event_id,
        system=clean_text(prompt.system or "", redactor, "prompt.system"),
        user=clean_text(prompt.user or "", redactor, "prompt.user"),
        examples=clean(list(prompt.examples), redactor, "prompt.examples"),
        tags=clean(list(prompt.tags), redactor, "prompt.tags"),
        metadata=clean(prompt.metadata, redactor, "prompt.metadata"),
        vector_confidence=clean(prompt.vector_confidence, redactor, "prompt.vector_confidence"),
        origin=prompt.origin,
        context=[
            ev.ContextItem(
                text=clean_text(c.text, redactor, "context"), score=c.score, source=c.source
            )
            for c in context
        ],
        builder=builder,
        fingerprint=prompt_fingerprint(prompt),
        **_conversation(prompt, redactor, blobs_out),
    )


def _store_key(store: EventStore) -> str:
    return store.path or f"conn:{id(store)}"


def mark_recorded(prompt: Prompt, event: ev.PromptBuilt, store: EventStore) -> None:
    """Remember on the prompt that ``store`` holds its ``prompt_built`` (private attribute)."""
    state = prompt.__dict__.get(_PROMPT_STATE)
    if state is None or state[1] != event.fingerprint:
        state = (event.prompt_id, event.fingerprint, set())
        prompt.__dict__[_PROMPT_STATE] = state
    state[2].add(_store_key(store))


def recorded_prompt_id(prompt: Prompt, store: EventStore) -> str | None:
    """The prompt id already recorded in ``store`` for this exact prompt content, if any."""
    state = prompt.__dict__.get(_PROMPT_STATE)
    if state is None or _store_key(store) not in state[2]:
        return None
    try:
        if prompt_fingerprint(prompt) != state[1]:
            return None  # changed after it was built: record the prompt as it is now
    except TypeError:
        return None
    return state[0]


# --- the open call ----------------------------------------------------------------------------


def _exc_message(exc: BaseException) -> str:
    return str(exc) or repr(exc)


def classify(exc: BaseException) -> tuple[bool, int | None]:
    """(retryable, status code) of an error, from the attributes backends set."""
    retryable = getattr(exc, "retryable", None)
    status = getattr(exc, "status_code", None)
    if retryable is None:
        if isinstance(status, int):
            retryable = status in (408, 409, 429) or status >= 500
        else:
            retryable = isinstance(exc, (ConnectionError, TimeoutError))
    return bool(retryable), status if isinstance(status, int) else None


class CallScope:
    """One logical call being recorded."""

    def __init__(
        self,
        store: StoreSpec = None,
        on_store_error: str | None = None,
        options: CallOptions | None = None,
    ) -> None:
        self.options = options
        self.store_spec = store if store is not None else (options.store if options else None)
        self.on_store_error = on_store_error or settings().on_store_error
        self.redactor = settings().redactor
        self.store: EventStore | None = None
        self.call_id: str | None = None
        self.started = False
        self.recording = settings().enabled
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
                message=self._safe_text(_exc_message(exc)),
                retryable=retryable,
                status_code=status,
                latency_ms=latency_ms,
                partial_text=None if partial_text is None else self._safe_text(partial_text),
                **self._provider_details(exc),
            )
        )

    def _provider_details(self, exc: BaseException) -> dict[str, Any]:
        """The provider's error code and type, request id, kept headers, retry-after and a
        broken stream's tool calls and reasoning, as far as the error carries them.

        Read with ``getattr`` from the error, or from a ``provider_error`` it holds (a
        :class:`~llm_events.log.conversation.ProviderError`), so any client's errors work.
        Details that cannot be stored are left out: the failure is recorded regardless.
        """
        sources = [getattr(exc, "provider_error", None), exc]

        def first(*names: str, kind: type | tuple[type, ...] = str) -> Any:
            for src in sources:
                if src is None:
                    continue
                for name in names:
                    value = getattr(src, name, None)
                    if isinstance(value, kind) and not isinstance(value, bool) and value != "":
                        return value
            return None

        out: dict[str, Any] = {}
        code = first("error_code", "code")
        kind = first("provider_error_type", "error_type")
        request_id = first("request_id")
        for key, value in (("error_code", code), ("provider_error_type", kind)):
            if value is not None:
                out[key] = self._safe_text(value)
        if request_id is not None:
            out["request_id"] = self._safe_text(request_id)
        retry_after = first("retry_after_s", "retry_after", kind=(int, float))
        if retry_after is not None and retry_after == retry_after:  # not NaN
            out["retry_after_s"] = float(retry_after)
        headers = first("headers", kind=dict)
        calls = first("partial_tool_calls", kind=(list, tuple))
        reasoning = first("partial_reasoning", kind=(list, tuple))
        with contextlib.suppress(UnstorableValueError, ValueError, TypeError):
            if headers:
                out["headers"] = {
                    str(k).lower(): str(v)
                    for k, v in clean(headers, self.redactor, "headers").items()
                }
        with contextlib.suppress(UnstorableValueError, ValueError, TypeError):
            if calls:
                out["partial_tool_calls"] = self._tool_calls(calls, "partial_tool_calls")
        with contextlib.suppress(UnstorableValueError, ValueError, TypeError):
            if reasoning:
                out["partial_reasoning"] = self._reasoning(reasoning, "partial_reasoning")
        return out

    def _tool_calls(self, calls: Any, where: str) -> list[ToolCallPart]:
        try:
            neutral = normalize_tool_calls(calls, where)
        except MessageError as e:
            raise UnstorableValueError(str(e)) from None
        return _structs(clean(neutral, self.redactor, where), list[ToolCallPart], where)

    def _reasoning(self, blocks: Any, where: str) -> list[ReasoningPart]:
        try:
            neutral = normalize_reasoning(blocks, where)
        except MessageError as e:
            raise UnstorableValueError(str(e)) from None
        return _structs(clean(neutral, self.redactor, where), list[ReasoningPart], where)

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
    ) -> None:
        """Record the answer.  Raises :class:`UnstorableValueError` if it cannot be stored."""
        check_result(result)  # mistyped counts, costs, texts: coerced or refused (values.py)
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
            **self._complete_result(result),
        )
        self.last_success = event
        self.last_backend, self.last_model = backend, model
        self._add(event)

    def _complete_result(self, result: LLMResult) -> dict[str, Any]:
        """What ``attempt_succeeded`` keeps beyond the seed's fields (only those set): tool
        calls, refusal, reasoning, stop details, cache writes, ids, headers, logprobs."""
        out: dict[str, Any] = {}
        if result.tool_calls:
            out["tool_calls"] = self._tool_calls(result.tool_calls, "result.tool_calls")
        if result.refusal is not None:
            out["refusal"] = clean_text(str(result.refusal), self.redactor, "result.refusal")
        if result.reasoning:
            out["reasoning"] = self._reasoning(result.reasoning, "result.reasoning")
        if result.stop_details is not None:
            out["stop_details"] = clean(result.stop_details, self.redactor, "result.stop_details")
        if result.cache_write_tokens is not None:
            out["cache_write_tokens"] = int(result.cache_write_tokens)
        for name in ("response_id", "response_model", "request_id"):
            value = getattr(result, name)
            if value is not None:
                out[name] = clean_text(str(value), self.redactor, f"result.{name}")
        if result.headers:
            headers = clean(dict(result.headers), self.redactor, "result.headers")
            out["headers"] = {str(k).lower(): str(v) for k, v in headers.items()}
        if result.logprobs is not None:
            out["logprobs"] = clean(result.logprobs, self.redactor, "result.logprobs")
        return out

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
                reason=self._safe_text(reason),
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
                error_message=self._safe_text(_exc_message(exc)),
                latency_ms=latency,
            )
        self._add(done)
        self.commit("call_finished")

    def _safe_text(self, text: str) -> str:
        try:
            return clean_text(text, self.redactor, "text")
        except UnstorableValueError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")

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


@contextlib.contextmanager
def call_scope(
    store: StoreSpec = None, on_store_error: str | None = None, *, record: bool = True
) -> Iterator[tuple[CallScope, bool]]:
    """Join the open call, or open a new one; yields ``(scope, owner)``.

    ``record=False`` (a client's ``log_prompts=False``) records nothing of a call it opens.
    The owner finishes the call when the block ends: ``call_finished`` with status ``ok``,
    or ``error`` when the block raises (the exception propagates unchanged).
    """
    scope, token = _open_call(store, on_store_error, record)
    if token is None:
        yield scope, False
        return
    try:
        yield scope, True
    except BaseException as exc:
        _current.reset(token)
        end_call(scope, exc)
        raise
    _current.reset(token)
    end_call(scope, None)


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

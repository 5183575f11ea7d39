"""``LLMClient``: the seed's client base class, with every call recorded as events.

Subclasses implement ``_generate(prompt, *, context_builder)`` (and optionally
``_stream``), or override ``generate`` itself as the seed's EchoClient does; both are
recorded.  A client may hold a list of ``backends`` (other clients) and falls back through
them in order; a prompt tagged as a small task tries the first backend last.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..log.redaction import UnstorableValueError
from ..recording.recorder import CallScope, StoreSpec, call_scope
from ..recording.values import check_result
from .prompt import BUILDER_ORIGINS, LLMResult, Prompt
from .signatures import accepted_kwargs

if TYPE_CHECKING:
    from .streaming import StreamChunk

#: Tags that mark a prompt as a small task (the first backend is then tried last).
SMALL_TASK_TAGS = frozenset({"small_task", "small-task", "small"})

_in_override: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "llm_events_in_override", default=None
)


def check_origin(prompt: Prompt) -> None:
    """Refuse prompts that no builder made (the seed's rule: build them with a builder)."""
    if not isinstance(prompt, Prompt):
        raise TypeError(f"generate() needs a Prompt, not {type(prompt).__name__}")
    origin = prompt.origin or prompt.metadata.get("origin", "")
    if origin not in BUILDER_ORIGINS:
        raise ValueError(
            f"prompt origin {origin!r} is not allowed: build prompts with "
            "ContextBuilder.build_prompt (allowed origins: "
            f"{', '.join(sorted(BUILDER_ORIGINS))})"
        )


def as_result(value: Any) -> LLMResult:
    """Accept what user callables return: an :class:`LLMResult`, a str, or a dict."""
    if isinstance(value, LLMResult):
        return value
    if isinstance(value, str):
        return LLMResult(text=value)
    if isinstance(value, dict) and "text" in value:
        known = {k: v for k, v in value.items() if k in LLMResult.__dataclass_fields__}
        return LLMResult(**known)
    raise TypeError(
        f"a client returned {type(value).__name__}; expected LLMResult, str or dict with 'text'"
    )


def _fill_tokens(result: LLMResult, prompt_tokens_estimate: int) -> bool:
    """Mirror input/prompt and output/completion counts; estimate missing ones."""
    estimated = False
    if result.input_tokens is None:
        result.input_tokens = result.prompt_tokens
    if result.output_tokens is None:
        result.output_tokens = result.completion_tokens
    if result.input_tokens is None:
        result.input_tokens, estimated = prompt_tokens_estimate, True
    if result.output_tokens is None:
        result.output_tokens, estimated = (len(result.text or "") + 3) // 4, True
    if result.prompt_tokens is None:
        result.prompt_tokens = result.input_tokens
    if result.completion_tokens is None:
        result.completion_tokens = result.output_tokens
    return estimated


class LLMClient:
    """Base class of every client.  ``generate`` is recorded; ``_generate`` does the work."""

    #: Name recorded as the backend of this client's attempts (default: the class name).
    backend_name: ClassVar[str | None] = None
    #: True for clients whose ``generate`` records by itself (routers, wrappers).
    _records_itself: ClassVar[bool] = False

    model: str = ""
    backends: Sequence[LLMClient] = ()
    params: dict[str, Any] = {}
    store: StoreSpec = None
    on_store_error: str | None = None
    log_prompts: bool = True

    def __init__(
        self,
        model: str | None = None,
        *,
        backends: Sequence[LLMClient] | None = None,
        params: dict[str, Any] | None = None,
        store: StoreSpec = None,
        on_store_error: str | None = None,
        log_prompts: bool = True,
    ) -> None:
        self.model = model or type(self).__name__
        self.backends = list(backends or ())
        self.params = dict(params or {})
        self.store = store
        self.on_store_error = on_store_error
        self.log_prompts = log_prompts

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        user_generate = cls.__dict__.get("generate")
        if user_generate is not None and not cls.__dict__.get("_records_itself", False):
            cls._user_generate = user_generate  # type: ignore[attr-defined]
            cls.generate = _recorded_override(user_generate)  # type: ignore[method-assign]

    # names -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """``backend:model`` as recorded (``backend`` alone when the model is the class name)."""
        backend = self.backend_label()
        model = self.model_label()
        return backend if not model or model == backend else f"{backend}:{model}"

    def backend_label(self) -> str:
        return type(self).backend_name or type(self).__name__

    def model_label(self) -> str | None:
        return self.__dict__.get("model") or type(self).model or None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # the work ------------------------------------------------------------------------------

    def _generate(self, prompt: Prompt, *, context_builder: Any) -> LLMResult:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _generate(prompt, *, context_builder) "
            "or override generate()"
        )

    def _invoke(self, prompt: Prompt, context_builder: Any) -> Any:
        """Run this client's own work, unrecorded (the recorder wraps it)."""
        user_generate = getattr(type(self), "_user_generate", None)
        if user_generate is not None:
            token = _in_override.set(self)
            try:
                return user_generate(self, prompt, context_builder=context_builder)
            finally:
                _in_override.reset(token)
        return self._generate(prompt, context_builder=context_builder)

    def _chain(self, prompt: Prompt, backend: str | None) -> list[LLMClient]:
        chain: list[LLMClient] = list(self.backends) or [self]
        if len(chain) > 1 and SMALL_TASK_TAGS.intersection(prompt.tags):
            chain = chain[1:] + chain[:1]
        if backend is not None:
            for i, c in enumerate(chain):
                if backend in (c.backend_label(), c.name, c.model_label()):
                    chain.insert(0, chain.pop(i))
                    break
        return chain

    def generate(
        self,
        prompt: Prompt,
        *,
        context_builder: Any,
        parse_fn: Callable[[str], Any] | None = None,
        backend: str | None = None,
    ) -> LLMResult:
        """Send ``prompt``; every attempt, fallback and the outcome is recorded."""
        check_origin(prompt)
        if _in_override.get() is self:  # an override calling super().generate()
            return self._generate(prompt, context_builder=context_builder)
        with call_scope(self.store, self.on_store_error, record=self.log_prompts) as (scope, owner):
            scope.start(prompt, client=self.name, model=self.model_label())
            chain = self._chain(prompt, backend)
            last_exc: BaseException | None = None
            previous: LLMClient | None = None
            for target in chain:
                if previous is not None:
                    scope.fallback(previous.name, target.name, type(last_exc).__name__)
                previous = target
                try:
                    result = run_attempt(
                        scope,
                        target,
                        lambda t=target: t._invoke(prompt, context_builder),
                        parse_fn,
                        label=backend if (backend and len(chain) == 1) else None,
                    )
                except UnstorableValueError:
                    raise
                except Exception as exc:
                    last_exc = exc
                    continue
                if not owner:
                    scope.commit("attempt_succeeded")
                return result
            assert last_exc is not None
            raise last_exc

    # async and streaming --------------------------------------------------------------------

    def _stream(self, prompt: Prompt, *, context_builder: Any) -> Iterator[StreamChunk]:
        """Optional hook: yield the answer as :class:`StreamChunk` objects (blocking I/O).

        Run in a worker thread by ``async_generate``; backends whose library is synchronous
        (the ``llm`` package) implement this one.
        """
        raise NotImplementedError

    async def _astream(self, prompt: Prompt, *, context_builder: Any) -> AsyncIterator[StreamChunk]:
        """Optional hook: yield the answer as :class:`StreamChunk` objects (async I/O).

        HTTP backends implement this one (SSE for OpenAI/Anthropic, NDJSON for Ollama).  The
        last chunks usually carry usage and the finish reason rather than text.
        """
        raise NotImplementedError
        yield  # pragma: no cover  (makes this an async generator)

    def _async_via_thread(self) -> bool:
        """True when async calls must run ``generate`` in a thread (routers, overrides)."""
        return self._records_itself or getattr(type(self), "_user_generate", None) is not None

    async def agenerate(
        self,
        prompt: Prompt,
        *,
        context_builder: Any,
        parse_fn: Callable[[str], Any] | None = None,
        backend: str | None = None,
    ) -> LLMResult:
        """``generate`` without blocking the event loop (recorded the same way).

        Backends that stream are read as a stream (so time to first chunk is recorded);
        others run in a worker thread.
        """
        if self._async_via_thread():
            from ..recording.workers import in_thread

            return await in_thread(
                self.generate,
                prompt,
                context_builder=context_builder,
                parse_fn=parse_fn,
                backend=backend,
            )
        from .streaming import stream_call

        results: list[LLMResult] = []
        async for _piece in stream_call(
            self,
            prompt,
            context_builder=context_builder,
            parse_fn=parse_fn,
            backend=backend,
            results=results,
        ):
            pass
        return results[-1]

    async def async_generate(
        self,
        prompt: Prompt,
        *,
        context_builder: Any,
        parse_fn: Callable[[str], Any] | None = None,
        backend: str | None = None,
    ) -> AsyncIterator[str]:
        """Yield the answer in text chunks as they arrive, then record the assembled result.

        One chunk for clients that do not stream.  A stream broken mid-way is recorded as a
        failed attempt that keeps the partial text, and the error propagates.
        """
        if self._async_via_thread():
            result = await self.agenerate(
                prompt, context_builder=context_builder, parse_fn=parse_fn, backend=backend
            )
            yield result.text
            return
        from .streaming import stream_call

        stream = stream_call(
            self, prompt, context_builder=context_builder, parse_fn=parse_fn, backend=backend
        )
        async with contextlib.aclosing(stream):
            async for piece in stream:
                yield piece


#: Private attribute of an :class:`LLMResult` where a backend leaves what the dataclass has no
#: field for (cached/reasoning tokens, finish reason, time to first chunk); see
#: :func:`attach_details`.
_DETAILS = "_llm_events_details"


def attach_details(
    result: LLMResult,
    *,
    cached_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    finish_reason: str | None = None,
    ttft_ms: float | None = None,
) -> LLMResult:
    """Give the recorder details the seed's ``LLMResult`` has no field for.

    They travel in a private attribute (``dataclasses.asdict`` ignores it), so backends can
    report cached and reasoning tokens without changing the seed's dataclass.
    """
    result.__dict__[_DETAILS] = {
        "cached_tokens": cached_tokens,
        "reasoning_tokens": reasoning_tokens,
        "finish_reason": finish_reason,
        "ttft_ms": ttft_ms,
    }
    return result


def run_attempt(
    scope: CallScope,
    target: LLMClient,
    work: Callable[[], Any],
    parse_fn: Callable[[str], Any] | None,
    *,
    label: str | None = None,
) -> LLMResult:
    """One recorded attempt: ``attempt_started``, the work, then success or failure."""
    backend = label or target.backend_label()
    model = target.model_label()
    attempt = scope.begin_attempt(backend, model, target.params)
    t0 = time.perf_counter()
    try:
        result = as_result(work())
    except Exception as exc:
        scope.attempt_failed(attempt, exc, backend, round((time.perf_counter() - t0) * 1000, 3))
        raise
    return record_success(scope, attempt, result, backend, model, parse_fn, t0)


def record_success(
    scope: CallScope,
    attempt: int,
    result: LLMResult,
    backend: str,
    model: str | None,
    parse_fn: Callable[[str], Any] | None,
    t0: float,
) -> LLMResult:
    """Finish a successful attempt: latency, parsing, token counts, then ``attempt_succeeded``."""
    try:
        check_result(result)  # a mistyped answer: coerced, or refused with the attempt closed
    except UnstorableValueError as exc:
        scope.attempt_failed(attempt, exc, backend, None)
        raise
    if result.latency_ms is None:
        result.latency_ms = round((time.perf_counter() - t0) * 1000, 3)
    if parse_fn is not None:
        try:
            result.parsed = parse_fn(result.text)
        except Exception:
            result.parsed = None
    estimated = _fill_tokens(result, scope.prompt_tokens_estimate)
    if isinstance(result.raw, dict):
        backend = str(result.raw.get("backend") or backend)
        model = (
            str(result.raw.get("model") or model) if (result.raw.get("model") or model) else None
        )
    details = result.__dict__.pop(_DETAILS, None) or {}
    try:
        scope.attempt_succeeded(
            attempt,
            result,
            backend,
            model,
            tokens_estimated=estimated,
            ttft_ms=details.get("ttft_ms"),
            finish_reason=details.get("finish_reason"),
            extra_usage={
                "cached_tokens": details.get("cached_tokens"),
                "reasoning_tokens": details.get("reasoning_tokens"),
            },
            checked=True,  # above; since then only latency, parsed and counts filled in
        )
    except UnstorableValueError as exc:
        scope.attempt_failed(attempt, exc, backend, result.latency_ms)
        raise
    if scope.call_id is not None:
        result.__dict__["_call_id"] = scope.call_id
    return result


def _recorded_override(user_generate: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a subclass's own ``generate`` so its calls are recorded like any other."""

    @functools.wraps(user_generate)
    def generate(self: LLMClient, prompt: Prompt, *args: Any, **kwargs: Any) -> Any:
        if _in_override.get() is self:
            return user_generate(self, prompt, *args, **accepted_kwargs(user_generate, kwargs))
        if "context_builder" not in kwargs and not args:
            raise TypeError(f"{type(self).__name__}.generate() needs a context_builder argument")
        check_origin(prompt)
        parse_fn = kwargs.get("parse_fn")
        with call_scope(self.store, self.on_store_error, record=self.log_prompts) as (scope, owner):
            scope.start(prompt, client=self.name, model=self.model_label())

            # the seed's signature takes no parse_fn/backend: parse_fn is applied here
            taken = accepted_kwargs(user_generate, kwargs)

            def work() -> Any:
                token = _in_override.set(self)
                try:
                    return user_generate(self, prompt, *args, **taken)
                finally:
                    _in_override.reset(token)

            result = run_attempt(scope, self, work, parse_fn)
            if not owner:
                scope.commit("attempt_succeeded")
            return result

    return generate

"""Streamed calls: text chunks as they arrive, each attempt recorded once it ends.

``LLMClient.async_generate`` and ``agenerate`` run here.  A backend that streams (an
``_astream`` or ``_stream`` hook) is read chunk by chunk: the attempt records the time to the
first chunk, the assembled text and the usage the final chunk reports.  If the stream breaks
mid-way the attempt is recorded as failed with the partial text, and the error propagates
(no fallback once text has been handed to the caller: it cannot be taken back).  Clients
that do not stream run in a worker thread and yield their answer as one chunk.

Nested async generators are closed explicitly (``aclosing``) so that a consumer stopping
early records the attempt as failed, with its partial text, before the call is finished.
Commits run in a worker thread (:mod:`llm_events.workers`): a store whose write lock another
process holds makes the call wait, not the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..log.redaction import UnstorableValueError
from ..recording import recorder, workers
from ..recording.recorder import CallScope, aend_call, current_call
from .client import LLMClient, check_origin, record_success, run_attempt
from .prompt import LLMResult, Prompt


@dataclass
class StreamChunk:
    """One piece of a streamed answer: text, and/or what the protocol reports at the end."""

    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    finish_reason: str | None = None
    model: str | None = None
    #: Provider fields worth keeping in ``raw`` (ids, usage); merged over the stream.
    raw: dict[str, Any] = field(default_factory=dict)
    #: :class:`LLMResult` fields the protocol reported (``tool_calls``, ``refusal``,
    #: ``reasoning``, ``response_id``, ...), set on the assembled result; merged over the stream.
    details: dict[str, Any] = field(default_factory=dict)


def streams(client: LLMClient) -> bool:
    """Whether ``client`` implements a streaming hook of its own."""
    cls = type(client)
    if getattr(cls, "_user_generate", None) is not None or cls._records_itself:
        return False
    return cls._astream is not LLMClient._astream or cls._stream is not LLMClient._stream


def chunks_of(
    client: LLMClient, prompt: Prompt, context_builder: Any
) -> AsyncIterator[StreamChunk]:
    """The client's chunks as an async iterator (a sync ``_stream`` runs in a thread)."""
    if type(client)._astream is not LLMClient._astream:
        return client._astream(prompt, context_builder=context_builder)
    return iterate_in_thread(lambda: client._stream(prompt, context_builder=context_builder))


_DONE = object()


async def iterate_in_thread(make_iter: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Drive a blocking iterator in a worker thread, handing its items to the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue()
    stop = threading.Event()
    ctx = contextvars.copy_context()

    def put(item: Any, err: BaseException | None = None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (item, err))
        except RuntimeError:  # the loop is gone: nobody is listening any more
            stop.set()

    def pump() -> None:
        try:
            for item in make_iter():
                if stop.is_set():
                    return
                put(item)
        except BaseException as e:  # handed to the consumer, raised there
            put(_DONE, e)
            return
        put(_DONE)

    worker = loop.run_in_executor(workers.pool(), ctx.run, pump)
    try:
        while True:
            item, err = await queue.get()
            if item is _DONE:
                if err is not None:
                    raise err
                break
            yield item
    finally:
        stop.set()
        if worker.done():
            worker.result()


class _Assembly:
    """What a stream has delivered so far."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.ttft_ms: float | None = None
        self.usage: dict[str, int | None] = {}
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.raw: dict[str, Any] = {}
        self.details: dict[str, Any] = {}

    def add(self, chunk: StreamChunk, t0: float) -> None:
        if chunk.text:
            if self.ttft_ms is None:
                self.ttft_ms = round((time.perf_counter() - t0) * 1000, 3)
            self.pieces.append(chunk.text)
        for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"):
            value = getattr(chunk, name)
            if value is not None:
                self.usage[name] = value
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.model:
            self.model = chunk.model
        if chunk.raw:
            self.raw.update(chunk.raw)
        if chunk.details:
            self.details.update(chunk.details)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def result(self) -> LLMResult:
        from .client import attach_details

        raw = dict(self.raw)
        raw["streamed"] = True
        if self.model:
            raw.setdefault("model", self.model)
        if self.finish_reason is not None:
            raw.setdefault("finish_reason", self.finish_reason)
        result = LLMResult(
            raw=raw,
            text=self.text,
            input_tokens=self.usage.get("input_tokens"),
            output_tokens=self.usage.get("output_tokens"),
        )
        for name, value in self.details.items():
            setattr(result, name, value)
        return attach_details(
            result,
            cached_tokens=self.usage.get("cached_tokens"),
            reasoning_tokens=self.usage.get("reasoning_tokens"),
            finish_reason=self.finish_reason,
            ttft_ms=self.ttft_ms,
        )


async def stream_attempt(
    scope: CallScope,
    target: LLMClient,
    prompt: Prompt,
    context_builder: Any,
    parse_fn: Callable[[str], Any] | None,
    results: list[LLMResult],
    *,
    label: str | None = None,
) -> AsyncIterator[str]:
    """One recorded streamed attempt; yields text and appends the result to ``results``."""
    backend = label or target.backend_label()
    model = target.model_label()
    attempt = await workers.in_thread(
        scope.begin_attempt, backend, model, {**target.params, "stream": True}
    )
    t0 = time.perf_counter()
    got = _Assembly()
    try:
        chunks = chunks_of(target, prompt, context_builder)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                got.add(chunk, t0)
                if chunk.text:
                    yield chunk.text
    except BaseException as exc:  # including a consumer that stops early (GeneratorExit)
        latency = round((time.perf_counter() - t0) * 1000, 3)
        scope.attempt_failed(attempt, exc, backend, latency, partial_text=got.text or None)
        raise
    results.append(record_success(scope, attempt, got.result(), backend, model, parse_fn, t0))


async def _threaded_attempt(
    scope: CallScope,
    target: LLMClient,
    prompt: Prompt,
    context_builder: Any,
    parse_fn: Callable[[str], Any] | None,
    label: str | None,
) -> LLMResult:
    """A non-streaming client's attempt, run in a worker thread inside this call."""

    def work() -> LLMResult:
        recorder._current.set(scope)  # in this thread's copy of the context only
        return run_attempt(
            scope, target, lambda: target._invoke(prompt, context_builder), parse_fn, label=label
        )

    return await workers.in_thread(work)


async def stream_call(
    client: LLMClient,
    prompt: Prompt,
    *,
    context_builder: Any,
    parse_fn: Callable[[str], Any] | None = None,
    backend: str | None = None,
    results: list[LLMResult] | None = None,
) -> AsyncIterator[str]:
    """One recorded call, streamed: the client's backend chain tried in order.

    A backend that fails before yielding any text falls back to the next one, as ``generate``
    does; the final :class:`LLMResult` is appended to ``results``.

    Unlike ``generate``, the open call is not put in the context variable while chunks are
    handed out: an async generator may be finished by the event loop in another context
    (a consumer that ``break``s), where a context-variable token cannot be reset.  The call
    joins an enclosing one all the same.
    """
    check_origin(prompt)
    out: list[LLMResult] = results if results is not None else []
    outer = current_call()
    owner = outer is None
    scope = (
        outer
        if outer is not None
        else CallScope(client.store, client.on_store_error, recorder._options.get())
    )
    if owner and not client.log_prompts:
        scope.recording = False
    error: BaseException | None = None
    try:
        # opening the store (and its first write) happens here: off the event loop
        await workers.in_thread(scope.start, prompt, client=client.name, model=client.model_label())
        chain = client._chain(prompt, backend)
        label = backend if (backend and len(chain) == 1) else None
        last_exc: BaseException | None = None
        previous: LLMClient | None = None
        for target in chain:
            if previous is not None:
                scope.fallback(previous.name, target.name, type(last_exc).__name__)
            previous = target
            yielded = False
            try:
                if streams(target):
                    attempt = stream_attempt(
                        scope, target, prompt, context_builder, parse_fn, out, label=label
                    )
                    async with contextlib.aclosing(attempt):
                        async for piece in attempt:
                            yielded = True
                            yield piece
                else:
                    result = await _threaded_attempt(
                        scope, target, prompt, context_builder, parse_fn, label
                    )
                    out.append(result)
                    if result.text:
                        yielded = True
                        yield result.text
            except UnstorableValueError:
                raise
            except Exception as exc:
                if yielded:
                    raise
                last_exc = exc
                continue
            if not owner:
                await workers.in_thread(scope.commit, "attempt_succeeded")
            return
        assert last_exc is not None
        raise last_exc
    except BaseException as exc:
        error = exc
        raise
    finally:
        if owner:
            await aend_call(scope, error)

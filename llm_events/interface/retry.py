"""``with_retry``: the seed's exponential backoff, recorded as retries of one call."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..recording.recorder import async_call_scope, call_scope, current_call
from ..recording.workers import in_thread

T = TypeVar("T")


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` hint carried by a backend error, if any."""
    value = getattr(exc, "retry_after", None)
    try:
        return None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None


Exc = type[BaseException] | tuple[type[BaseException], ...]


def _wait_before_retry(
    error: BaseException,
    attempt: int,
    attempts: int,
    backoff: float,
    jitter: float,
    logger: logging.Logger | None,
) -> float:
    """The pause before the next try (logged; the caller records it as ``retry_scheduled``)."""
    wait = backoff + (random.uniform(0, backoff * jitter) if jitter else 0.0)
    hinted = retry_after_seconds(error)
    if hinted is not None and hinted > wait:
        wait = hinted
    if logger is not None:
        logger.warning(
            "attempt %d/%d failed (%s: %s); retrying in %.2fs",
            attempt,
            attempts,
            type(error).__name__,
            error,
            wait,
        )
    return wait


def _record_retry(attempt: int, wait: float, error: BaseException) -> None:
    """``retry_scheduled`` in the open call, committed before the sleep."""
    scope = current_call()
    if scope is not None:
        scope.retry_scheduled(attempt, wait, error)


def with_retry(
    func: Callable[[], T],
    *,
    attempts: int = 3,
    delay: float = 1.0,
    exc: Exc = Exception,
    logger: logging.Logger | None = None,
    jitter: float = 0.0,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> T:
    """Call ``func()`` up to ``attempts`` times, sleeping 1x, 2x, 4x ... ``delay`` between.

    Only exceptions of the types in ``exc`` (and, with ``retry_if``, for which it returns
    true) are retried; others propagate at once, and the last error is re-raised.  Each sleep
    is ``backoff + uniform(0, backoff * jitter)``, or the server's ``Retry-After`` when an
    error carries a longer one.  LLM calls made inside are one recorded call: their
    attempts, a ``retry_scheduled`` per retry, one outcome.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    backoff = delay
    with call_scope():
        for attempt in range(1, attempts + 1):
            try:
                return func()
            except exc as e:
                if attempt >= attempts or (retry_if is not None and not retry_if(e)):
                    raise
                wait = _wait_before_retry(e, attempt, attempts, backoff, jitter, logger)
                _record_retry(attempt, wait, e)
                time.sleep(wait)
                backoff *= 2
    raise AssertionError("unreachable")  # pragma: no cover


async def with_retry_async(
    func: Callable[[], Awaitable[T]],
    *,
    attempts: int = 3,
    delay: float = 1.0,
    exc: Exc = Exception,
    logger: logging.Logger | None = None,
    jitter: float = 0.0,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> T:
    """:func:`with_retry` for coroutines: ``await with_retry_async(lambda: client.agenerate(...))``.

    Same backoff, filter and recording (one call, a ``retry_scheduled`` per retry); it waits
    with ``asyncio.sleep`` and writes from a worker thread, so the event loop keeps running.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    backoff = delay
    async with async_call_scope():
        for attempt in range(1, attempts + 1):
            try:
                return await func()
            except exc as e:
                if attempt >= attempts or (retry_if is not None and not retry_if(e)):
                    raise
                wait = _wait_before_retry(e, attempt, attempts, backoff, jitter, logger)
                await in_thread(_record_retry, attempt, wait, e)
                await asyncio.sleep(wait)
                backoff *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def retrying(**options: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator form: ``@retrying(attempts=3)`` wraps a function in :func:`with_retry`."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        import functools

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> T:
            return with_retry(lambda: fn(*args, **kwargs), **options)

        return inner

    return wrap

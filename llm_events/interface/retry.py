"""``with_retry``: the seed's exponential backoff, recorded as retries of one call."""

from __future__ import annotations

import asyncio
import logging
import math
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
        seconds = None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None
    # a server's "inf" would overflow time.sleep and replace the error with OverflowError
    return seconds if seconds is None or math.isfinite(seconds) else None


Exc = type[BaseException] | tuple[type[BaseException], ...]

#: The longest pause between tries (2**31 - 1 s, some 68 years): longer ones (``delay=1e300``,
#: many doublings) would raise OverflowError from ``time.sleep`` instead of waiting.
MAX_WAIT_S = float(2**31 - 1)


def _check_options(func: Any, attempts: Any, delay: Any, jitter: Any, exc: Any) -> None:
    """Refuse odd arguments before the first try, with what was wrong: once a try has
    failed, ``time.sleep(-1)`` or ``except "ValueError"`` would replace the caller's error
    with an unrelated one."""
    if not callable(func):
        raise TypeError(f"with_retry needs a function to call, not {type(func).__name__}")
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise TypeError(f"attempts must be a whole number, not {attempts!r}")
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for name, value in (("delay", delay), ("jitter", jitter)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, not {value!r}")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
    kinds = exc if isinstance(exc, tuple) else (exc,)
    if not kinds or not all(isinstance(k, type) and issubclass(k, BaseException) for k in kinds):
        raise TypeError(f"exc must be an exception class or a tuple of them, not {exc!r}")


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
    wait = min(wait, MAX_WAIT_S)  # time.sleep overflows past about 9.2e9 s
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
    _check_options(func, attempts, delay, jitter, exc)
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
    _check_options(func, attempts, delay, jitter, exc)
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

"""``with_retry``: the seed's exponential backoff, recorded as retries of one call."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .recorder import call_scope

T = TypeVar("T")


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` hint carried by a backend error, if any."""
    value = getattr(exc, "retry_after", None)
    try:
        return None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def with_retry(
    func: Callable[[], T],
    *,
    attempts: int = 3,
    delay: float = 1.0,
    exc: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    logger: logging.Logger | None = None,
    jitter: float = 0.0,
) -> T:
    """Call ``func()`` up to ``attempts`` times, sleeping 1x, 2x, 4x ... ``delay`` between.

    Only exceptions of the types in ``exc`` are retried; others propagate at once, and the
    last error is re-raised.  Each sleep is ``backoff + uniform(0, backoff * jitter)``, or
    the server's ``Retry-After`` when an error carries a longer one.  LLM calls made inside
    are one recorded call: their attempts, a ``retry_scheduled`` per retry, one outcome.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    backoff = delay
    with call_scope() as (scope, _owner):
        for attempt in range(1, attempts + 1):
            try:
                return func()
            except exc as e:
                if attempt >= attempts:
                    raise
                wait = backoff + (random.uniform(0, backoff * jitter) if jitter else 0.0)
                hinted = retry_after_seconds(e)
                if hinted is not None and hinted > wait:
                    wait = hinted
                if logger is not None:
                    logger.warning(
                        "attempt %d/%d failed (%s: %s); retrying in %.2fs",
                        attempt,
                        attempts,
                        type(e).__name__,
                        e,
                        wait,
                    )
                scope.retry_scheduled(attempt, wait, e)
                time.sleep(wait)
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

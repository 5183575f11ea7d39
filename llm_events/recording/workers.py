"""The threads async calls use for blocking work: clients without async I/O, store commits.

asyncio's default executor has ``min(32, CPUs + 4)`` threads, 6 on a 2-CPU machine.  Sixteen
concurrent ``agenerate`` calls to a client that blocks would then run 6 at a time, and a
commit waiting for the store's write lock would hold one of those threads.  LLM calls wait on
the network, not on the CPU, so this pool has :data:`MAX_THREADS` threads, started as needed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: Blocking calls in flight at once, across every event loop of the process.
MAX_THREADS = 64

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The process's pool (a new one after a fork: the parent's threads are not there)."""
    global _pool, _pool_pid
    pid = os.getpid()
    if _pool is None or _pool_pid != pid:
        with _lock:
            if _pool is None or _pool_pid != pid:
                _pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="llm-events")
                _pool_pid = pid
    return _pool


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Await a blocking call run on the pool, in a copy of this context (the open call).

    Recording uses it for every commit made from async code: a commit may wait for the write
    lock while another process holds it (an import, a rebuild), and the event loop must go
    on meanwhile.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(pool(), call)

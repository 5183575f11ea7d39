"""The proxy's write-ahead commits: one writer thread per burst, not one thread per request.

Every request's ``attempt_started`` must be committed before the request goes upstream.
Handing each commit to a pool thread made 64 concurrent requests 64 threads blocked in the
store's group commit, all woken at every commit to find out whether theirs was done: the
GIL traffic cost more than the commits.  Here requests queue their events on the event loop
and one thread commits whatever is queued in one transaction, then the next batch, until
the queue is empty; each request awaits its own outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from ..recording.workers import pool
from .exchange_recorder import ExchangeRecorder


class Committer:
    """``await write(events)``: True once committed, False if the store failed (logged)."""

    def __init__(self, recorder: ExchangeRecorder) -> None:
        self.recorder = recorder
        self._lock = threading.Lock()
        self._queue: list[tuple[Sequence[Any], asyncio.Future, asyncio.AbstractEventLoop]] = []
        self._busy = False

    async def write(self, events: Sequence[Any]) -> bool:
        if not events:
            return True
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            self._queue.append((events, fut, loop))
            start, self._busy = not self._busy, True
        if start:
            pool().submit(self._drain)
        return await fut

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._busy = False
                    return
            try:
                results = self._commit([events for events, _, _ in batch])
            except BaseException:  # never leave a request waiting
                results = [False] * len(batch)
            for (_, fut, loop), ok in zip(batch, results, strict=True):
                with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                    loop.call_soon_threadsafe(_resolve, fut, ok)

    def _commit(self, batches: list[Sequence[Any]]) -> list[bool]:
        write = self.recorder.write
        if len(batches) == 1:
            return [write(batches[0])]
        # one transaction for all; if it fails, each on its own (the others still commit)
        if self.recorder.store is not None:
            try:
                self.recorder.store.append([e for events in batches for e in events])
                return [True] * len(batches)
            except Exception:
                pass
        return [write(events) for events in batches]


def _resolve(fut: asyncio.Future, ok: bool) -> None:
    if not fut.done():
        fut.set_result(ok)

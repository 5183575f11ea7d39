"""Batch mode: appends queued in memory and committed in groups by a writer thread.

A mixin of :class:`~llm_events.log.store.EventStore`: ``EventStore(path, batch=True)``
returns from ``append`` at once; the writer thread commits the queue every
``batch_interval`` seconds or ``batch_max`` events, producers faster than it commit the
backlog themselves (memory stays bounded at about two batches), and a failed background
write is raised at the next append or flush.  ``flush``, ``close`` and exit commit what is
queued.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import events as ev
from .writer import StoreError


class BatchWriting:
    """The store's batch mode (see the module docstring)."""

    path: str | None
    batch: bool
    batch_interval: float
    batch_max: int
    _closed: bool
    _lock: Any
    _queue: list[tuple[ev.Event, bytes]]  # encoded
    _queue_cond: threading.Condition
    _batch_error: BaseException | None
    _writer: threading.Thread | None
    _deferred: list[tuple[ev.Event, bytes]]
    _append_now: Callable[..., None]  # the store's: commit these encoded events now

    def _start_writer(self) -> None:
        self._writer = threading.Thread(
            target=self._writer_loop, name="llm-events-writer", daemon=True
        )
        self._writer.start()

    def _enqueue(self, encoded: Sequence[tuple[ev.Event, bytes]]) -> None:
        with self._queue_cond:
            if self._batch_error is not None:
                err, self._batch_error = self._batch_error, None
                raise StoreError(f"background write to {self.path} failed: {err}") from err
            self._queue.extend(encoded)
            backlog = len(self._queue)
            if backlog >= self.batch_max:
                self._queue_cond.notify_all()
        if backlog >= 2 * self.batch_max:
            # Backpressure: producers faster than the writer commit the backlog themselves,
            # so the queue (and memory) stays bounded at about two batches.
            self._drain()

    def _writer_loop(self) -> None:
        while not self._closed:
            with self._queue_cond:
                if len(self._queue) < self.batch_max:
                    self._queue_cond.wait(self.batch_interval)
            try:
                self._drain()
            except BaseException as e:  # reported at the next append or flush
                with self._queue_cond:
                    self._batch_error = e

    def _drain(self) -> None:
        with self._lock:  # one drainer at a time keeps the queue's order
            with self._queue_cond:
                pending, self._queue = self._queue, []
            if pending:
                self._append_now(pending)

    def flush_events(self) -> None:
        """Commit held and queued events; raise if a background write failed."""
        if self._deferred:
            self._append_now([])
        if self.batch:
            self._drain()
            with self._queue_cond:
                if self._batch_error is not None:
                    err, self._batch_error = self._batch_error, None
                    raise StoreError(f"background write to {self.path} failed: {err}") from err

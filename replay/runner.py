"""Running a replay: bounded concurrency, per-call timeouts, Ctrl-C, and the bracket events.

The coordinator (the calling thread) pulls selected calls lazily, keeps at most
``concurrency`` of them in flight on daemon worker threads, and appends a
``replay_compared`` event per outcome.  A call that outlives ``timeout`` gets verdict
``error`` and its worker is written off (a replacement is started: Python cannot kill a
thread, and a hung client must not shrink the pool or keep the process alive at exit).
A run is bracketed by ``replay_started`` / ``replay_finished``; an empty selection writes
neither.  Ctrl-C stops dispatching, waits briefly for calls in flight, records
``replay_finished`` with status ``interrupted`` and raises :class:`ReplayInterrupted`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llm_events import EventStore, LLMClient, client_from_spec, open_store
from llm_events.log import events as ev
from llm_events.log import processes

from .compare import comparator_label, get_comparator
from .report import ReplayReport
from .rerun import CallRunner, Outcome, timed_out
from .select import (
    Selection,
    SelectionError,
    SourceCall,
    check_ids,
    count_calls,
    select_calls,
    selection_from,
)

#: Seconds Ctrl-C waits for calls already in flight before giving up on them.
INTERRUPT_GRACE_S = 3.0

Progress = Callable[[int, int], None]


class ReplayInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a replay; ``report`` holds what was done (``replay_finished`` is written)."""

    def __init__(self, report: ReplayReport) -> None:
        super().__init__(f"replay {report.replay_id} interrupted")
        self.report = report


@dataclass(eq=False)
class _Job:
    source: SourceCall
    started: float | None = None
    call_ids: list[str] = field(default_factory=list)
    abandoned: bool = False


class _Pool:
    """Daemon worker threads fed one job at a time; a written-off worker is replaced."""

    def __init__(self, size: int, work: Callable[[_Job], Outcome]) -> None:
        self.work = work
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.results: queue.Queue[tuple[_Job, Outcome | BaseException]] = queue.Queue()
        self.lock = threading.Lock()
        self.threads = 0
        for _ in range(size):
            self.add_worker()

    def add_worker(self) -> None:
        self.threads += 1
        threading.Thread(target=self._loop, name="replay-worker", daemon=True).start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            with self.lock:
                if job.abandoned:
                    continue
                job.started = time.monotonic()
            try:
                result: Outcome | BaseException = self.work(job)
            except BaseException as e:  # reported by the coordinator
                result = e
            with self.lock:
                if job.abandoned:
                    return  # this worker was replaced when its job timed out
            self.results.put((job, result))

    def submit(self, job: _Job) -> None:
        self.jobs.put(job)

    def abandon(self, job: _Job, *, replace: bool = True) -> bool:
        """Write off a job past its deadline; False if its result arrived meanwhile."""
        with self.lock:
            if job.abandoned:
                return False
            job.abandoned = True
        if replace and job.started is not None:
            self.add_worker()
        return True

    def stop(self) -> None:
        for _ in range(self.threads):
            self.jobs.put(None)


class _FunctionClient(LLMClient):
    """A plain ``fn(prompt) -> str | LLMResult`` as a candidate (recorded like any client)."""

    backend_name = "function"

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__(getattr(fn, "__qualname__", None) or repr(fn))
        self.fn = fn

    def _generate(self, prompt: Any, *, context_builder: Any) -> Any:
        return self.fn(prompt)


def _resolve_client(client: LLMClient | str | Callable[..., Any]) -> tuple[LLMClient, str]:
    if isinstance(client, str):
        return client_from_spec(client), client
    if isinstance(client, LLMClient):
        return client, client.name
    if callable(client):
        made = _FunctionClient(client)
        return made, made.name
    raise TypeError(
        f"client must be an LLMClient, a spec or a function, not {type(client).__name__}"
    )


def _find_started(store: EventStore, replay_id: str) -> ev.ReplayStarted | None:
    for stored in store.iter_events(call_id=replay_id, types=["replay_started"]):
        if isinstance(stored.event, ev.ReplayStarted):
            return stored.event
    return None


def run(
    store: EventStore | str,
    client: LLMClient | str | Callable[..., Any] | None = None,
    *,
    select: Selection | dict[str, Any] | None = None,
    compare: str | Callable[..., Any] | None = None,
    concurrency: int = 4,
    timeout: float | None = None,
    threshold: float = 0.9,
    resume: str | None = None,
    progress: Progress | None = None,
    batch: bool = True,
) -> ReplayReport:
    """Re-run the selected recorded calls against ``client``, compare, record, report.

    ``store``: an :class:`EventStore` or a path.  ``client``: an :class:`LLMClient` or a
    client spec (``echo``, ``module:attr``, ``recorded:PATH``...).  ``select``: a
    :class:`Selection` or a dict of its fields.  ``compare``: ``exact`` (default),
    ``normalized``, ``json``, ``similarity`` (with ``threshold``), ``module:function`` or a
    callable.  ``timeout``: seconds per call before its verdict is ``error``.  ``resume``:
    a replay id to continue; calls it already compared are skipped, and its selection,
    comparator and (unless given) client are reused.  ``progress(done, total)`` is called
    as calls complete.  ``batch`` (default) groups the replay's own commits (see
    :func:`_group_commit_store`); ``batch=False`` commits each call as recording does.

    Returns a :class:`ReplayReport`.  Raises :class:`SelectionError` / ``ValueError`` for
    bad arguments and :class:`ReplayInterrupted` (a KeyboardInterrupt carrying the report)
    on Ctrl-C.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if timeout is not None and not timeout > 0:  # also refuses nan (which never expires)
        raise ValueError(f"timeout must be more than 0 seconds, not {timeout}")
    if not isinstance(store, EventStore):
        store = open_store(store)
    started_event: ev.ReplayStarted | None = None
    if resume is not None:
        started_event = _find_started(store, resume)
        if started_event is None:
            raise SelectionError(f"no replay {resume!r} in {store.path or 'the store'}")
        if select is not None:
            raise SelectionError("a resumed replay reuses its selection: pass no selection")
        sel = Selection.from_dict(started_event.selection)
        compare = compare if compare is not None else started_event.compare_spec or "exact"
        threshold = started_event.threshold if started_event.threshold is not None else threshold
        if client is None:
            client = started_event.against
    else:
        sel = selection_from(select)
        compare = compare if compare is not None else "exact"
    if client is None:
        raise ValueError("no client to replay against (pass a client or a spec like 'echo')")
    comparator = get_comparator(compare, threshold=threshold)
    label = comparator_label(compare, threshold)
    candidate, against = _resolve_client(client)
    if sel.ids:
        check_ids(store, sel)
    store.flush()
    sel = sel.pinned(store.last_seq())
    replay_id = resume or ev.new_id()
    planned = count_calls(store, sel, exclude_replay_id=resume)
    total = planned
    if started_event is not None and started_event.total is not None:
        total = started_event.total
    report = ReplayReport(
        store=store,
        replay_id=replay_id,
        against=against,
        compare=label,
        selection=sel,
        total=total,
        planned=planned,
        resumed=resume is not None,
    )
    if planned == 0 and resume is None:
        report.status = "empty"
        return report
    started = ev.ReplayStarted(
        id=ev.new_id(),
        ts=ev.now_iso(),
        replay_id=replay_id,
        against=against,
        compare=label,
        selection=sel.to_dict(),
        total=planned,
        compare_spec=compare if isinstance(compare, str) else label,
        threshold=threshold,
        resumed=resume is not None,
        **processes.current()._asdict(),
    )
    work = _group_commit_store(store) if batch else store
    report.store = work
    try:
        work.append([started])
        runner = CallRunner(work, candidate, comparator, replay_id)
        sources = select_calls(work, sel, exclude_replay_id=resume)
        try:
            _drive(runner, sources, report, concurrency, timeout, progress)
        except KeyboardInterrupt:
            report.finish("interrupted")
            raise ReplayInterrupted(report) from None
        except BaseException:
            with contextlib.suppress(Exception):  # the store may be what failed
                report.finish("failed")
            raise
        report.finish("completed")
    finally:
        if work is not store:
            work.close()  # commits whatever is still queued
            report.store = store
    return report


def _group_commit_store(store: EventStore) -> EventStore:
    """A batch-mode store on the same file for the replay's own writes (group commits).

    A replay writes several commits per call (the recorder's write-ahead ``attempt_started``,
    the outcome, the comparison); grouping them keeps 16 threads from queueing on the write
    lock.  The coordinator flushes before each comparison, so the queue stays small; a crash
    loses at most the replays not yet flushed, which ``--resume`` runs again.
    """
    if store.batch or not store.path or store.path == ":memory:":
        return store
    return EventStore(store.path, batch=True)


def _drive(
    runner: CallRunner,
    sources: Iterator[SourceCall],
    report: ReplayReport,
    concurrency: int,
    timeout: float | None,
    progress: Progress | None,
) -> None:
    # never more workers than calls: each is a thread, started up front
    workers = max(1, min(concurrency, report.planned))
    pool = _Pool(workers, lambda job: runner.run(job.source, job))
    in_flight: set[_Job] = set()
    exhausted = False
    done = 0
    poll = 0.05 if timeout is not None else 0.5

    def record(outcomes: list[Outcome]) -> None:
        nonlocal done
        report.record(outcomes)
        done += len(outcomes)
        if progress is not None:
            progress(done, report.planned)

    def collect(block: bool, wait: float) -> list[Outcome]:
        out: list[Outcome] = []
        try:
            item = pool.results.get(block, wait) if block else pool.results.get_nowait()
            while True:
                job, result = item
                if job in in_flight:
                    in_flight.discard(job)
                    if isinstance(result, BaseException):
                        raise result
                    out.append(result)
                item = pool.results.get_nowait()
        except queue.Empty:
            pass
        return out

    def expire() -> list[Outcome]:
        if timeout is None:
            return []
        now = time.monotonic()
        out = []
        for job in list(in_flight):
            if job.started is not None and now - job.started > timeout and pool.abandon(job):
                in_flight.discard(job)
                out.append(timed_out(job.source, timeout, job.call_ids))
        return out

    try:
        while True:
            while not exhausted and len(in_flight) < concurrency:
                source = next(sources, None)
                if source is None:
                    exhausted = True
                    break
                job = _Job(source)
                in_flight.add(job)
                pool.submit(job)
            if exhausted and not in_flight:
                return
            outcomes = collect(True, poll)
            outcomes.extend(expire())
            if outcomes:
                record(outcomes)
    except KeyboardInterrupt:
        # stop dispatching; give calls in flight a moment to land, then write them off
        deadline = time.monotonic() + (
            min(timeout, INTERRUPT_GRACE_S) if timeout else INTERRUPT_GRACE_S
        )
        try:
            while in_flight and time.monotonic() < deadline:
                outcomes = collect(True, 0.05)
                if outcomes:
                    record(outcomes)
        except KeyboardInterrupt:
            pass
        for job in list(in_flight):
            pool.abandon(job, replace=False)
        raise
    finally:
        pool.stop()

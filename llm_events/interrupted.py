"""Calls whose process ended before they finished, found and recorded as interrupted.

A process killed mid-call (SIGKILL, the OOM killer, a deploy's SIGTERM, a reboot) leaves its
call ``running`` in ``calls``: the write-ahead events show what was sent, but nothing says the
call is over.  When a process opens a store to record into, it looks for such calls made on
this machine by processes that no longer exist (:mod:`llm_events.processes`) and appends what
became of them: an ``attempt_failed`` for the attempt left open, then a ``call_finished`` with
status ``error`` and error type ``Interrupted``, both timed when they were found.  Calls of
other machines, of other containers and of live processes are left alone; so are calls
recorded before the process was named in ``call_started`` (event schema 1).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from . import events as ev
from . import processes
from .store import EventStore

#: ``error_type`` of the events that close an interrupted call.
INTERRUPTED = "Interrupted"


def record_interrupted(store: EventStore) -> list[str]:
    """Close the calls of ended processes as interrupted; returns their call ids.

    Cheap when there is nothing to do (one indexed query), so the recorder runs it each time
    it opens a store.  Deciding and appending happen under the write lock, so two processes
    doing this at once close each call once.
    """
    if store.readonly:
        return []
    try:
        running = [
            r[0] for r in store.conn().execute("SELECT call_id FROM calls WHERE status = 'running'")
        ]
    except sqlite3.OperationalError:  # no calls table: a store with other projections
        return []
    ended: dict[str, list[ev.Event]] = {}
    for call_id in running:
        events = [s.event for s in store.iter_events(call_id=call_id)]
        started = next((e for e in events if isinstance(e, ev.CallStarted)), None)
        if started is not None and (
            processes.state(started.host, started.pid, started.process) == processes.ENDED
        ):
            ended[call_id] = events
    if not ended:
        return []

    def still_running(conn: sqlite3.Connection) -> list[ev.Event]:
        ids = list(ended)
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT call_id FROM calls WHERE status = 'running' AND call_id IN ({marks})", ids
        )
        out: list[ev.Event] = []
        for (call_id,) in rows:
            out.extend(closing_events(call_id, ended[call_id]))
        return out

    appended = store.append_computed(still_running)
    return [e.call_id for e in appended if isinstance(e, ev.CallFinished)]


def closing_events(call_id: str, events: Sequence[ev.Event]) -> list[ev.Event]:
    """``attempt_failed`` (if an attempt is open) and ``call_finished`` for an ended call."""
    started = next(e for e in events if isinstance(e, ev.CallStarted))
    me = processes.current()
    message = (
        f"process {started.pid} on {started.host} ended before the call finished "
        f"(found by process {me.pid} on {me.host})"
    )
    attempts = [e for e in events if isinstance(e, ev.AttemptStarted)]
    ended = {e.attempt for e in events if isinstance(e, (ev.AttemptFailed, ev.AttemptSucceeded))}
    out: list[ev.Event] = []
    last = attempts[-1] if attempts else None
    if last is not None and last.attempt not in ended:
        out.append(
            ev.AttemptFailed(
                id=ev.new_id(),
                ts=ev.now_iso(),
                call_id=call_id,
                attempt=last.attempt,
                backend=last.backend,
                error_type=INTERRUPTED,
                message=message,
                retryable=False,
            )
        )
    out.append(
        ev.CallFinished(
            id=ev.new_id(),
            ts=ev.now_iso(),
            call_id=call_id,
            status="error",
            attempts=max((e.attempt for e in attempts), default=0),
            backend=last.backend if last is not None else None,
            model=last.model if last is not None else started.model,
            error_type=INTERRUPTED,
            error_message=message,
        )
    )
    return out

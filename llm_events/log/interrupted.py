"""Calls and replay runs whose process ended before they finished, recorded as interrupted.

A process killed mid-call (SIGKILL, the OOM killer, a deploy's SIGTERM, a reboot) leaves its
call ``running`` in ``calls``: the write-ahead events show what was sent, but nothing says the
call is over.  When a process opens a store to record into, it looks for such calls made on
this machine by processes that no longer exist (:mod:`llm_events.processes`) and appends what
became of them: an ``attempt_failed`` for the attempt left open, then a ``call_finished`` with
status ``error`` and error type ``Interrupted``, both timed when they were found.  Calls of
other machines, of other containers and of live processes are left alone; so are calls
recorded before the process was named in ``call_started`` (event schema 1).

A replay run whose process ended without ``replay_finished`` gets one with status
``interrupted`` and the verdicts recorded so far, as a run stopped with Ctrl-C does;
``llm-events replay --resume`` carries on from there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from . import events as ev
from . import processes
from .store import EventStore

#: ``error_type`` of the events that close an interrupted call.
INTERRUPTED = "Interrupted"


def record_interrupted(store: EventStore) -> list[str]:
    """Close the calls and replay runs of ended processes; returns their ids.

    Cheap when there is nothing to do (two indexed queries, and one more per running call),
    so the recorder runs it each time it opens a store.  Deciding and appending happen under
    the write lock, so two processes doing this at once close each call once.
    """
    if store.readonly:
        return []
    store.catch_up()  # the running calls are read from ``calls``: bring it to the head
    ended_calls = _ended(store, "calls", "call_id", _CALL_STARTED)
    ended_runs = _ended(store, "replays", "replay_id", _REPLAY_STARTED)
    if not ended_calls and not ended_runs:
        return []

    def still_running(conn: sqlite3.Connection) -> list[ev.Event]:
        out: list[ev.Event] = []
        for call_id in _still(conn, "calls", "call_id", ended_calls):
            events = [
                ev.decode(payload, type_)
                for type_, payload in conn.execute(
                    "SELECT type, payload FROM events WHERE call_id = ? ORDER BY seq", (call_id,)
                )
            ]
            out.extend(closing_events(call_id, events))
        for replay_id in _still(conn, "replays", "replay_id", ended_runs):
            out.append(_replay_closed(conn, replay_id, ended_runs[replay_id]))
        return out

    appended = store.append_computed(still_running)
    return [e.key for e in appended if isinstance(e, (ev.CallFinished, ev.ReplayFinished))]


#: A call's start: among its few events, through the ``events_call_id`` index.
_CALL_STARTED = (
    "SELECT type, payload FROM events WHERE call_id = ? AND +type = 'call_started' "
    "ORDER BY seq LIMIT 1"
)
#: A run's last start (a resumed run may run in another process than it began in), through
#: the ``events_type`` index: a run has far fewer starts than comparisons.
_REPLAY_STARTED = (
    "SELECT type, payload FROM events WHERE type = 'replay_started' AND call_id = ? "
    "ORDER BY seq DESC LIMIT 1"
)


def _ended(store: EventStore, table: str, key: str, start_sql: str) -> dict[str, Any]:
    """The running calls (or replay runs) whose start names a process that has ended, with
    that start event.  One small query per running one: a store may hold many, left by
    processes of other machines that this one cannot judge."""
    conn = store.conn()
    try:
        running = [
            r[0] for r in conn.execute(f"SELECT {key} FROM {table} WHERE status = 'running'")
        ]
    except sqlite3.OperationalError:  # a store with other projections
        return {}
    ended = {}
    for one in running:
        row = conn.execute(start_sql, (one,)).fetchone()
        if row is None:
            continue
        try:
            started: Any = ev.decode(row[1], row[0])
        except ValueError:  # unreadable: not for this process to judge
            continue
        if isinstance(started, ev.UnknownEvent):  # unreadable as a start (log/salvage.py)
            continue
        if processes.state(started.host, started.pid, started.process) == processes.ENDED:
            ended[one] = started
    return ended


def _still(conn: sqlite3.Connection, table: str, key: str, candidates: dict) -> list[str]:
    """Those of ``candidates`` still running now that the write lock is held."""
    if not candidates:
        return []
    ids = list(candidates)
    rows = conn.execute(
        f"SELECT {key} FROM {table} WHERE status = 'running' "
        f"AND {key} IN ({','.join('?' * len(ids))})",
        ids,
    )
    return [r[0] for r in rows]


def _message(started: ev.CallStarted) -> str:
    me = processes.current()
    return (
        f"process {started.pid} on {started.host} ended before the call finished "
        f"(found by process {me.pid} on {me.host})"
    )


def _replay_closed(
    conn: sqlite3.Connection, replay_id: str, started: ev.ReplayStarted
) -> ev.ReplayFinished:
    """``replay_finished`` with status ``interrupted`` and the verdicts recorded so far
    (``llm-events replay --resume`` carries on from there)."""
    counts = dict.fromkeys(("same", "changed", "error"), 0)
    for verdict, n in conn.execute(
        "SELECT verdict, count(*) FROM replay_results WHERE replay_id = ? GROUP BY verdict",
        (replay_id,),
    ):
        counts[verdict] = n
    return ev.ReplayFinished(
        id=ev.new_id(),
        ts=ev.now_iso(),
        replay_id=replay_id,
        status="interrupted",
        counts=counts,
        total=started.total or 0,
    )


def closing_events(call_id: str, events: Sequence[ev.Event]) -> list[ev.Event]:
    """``attempt_failed`` (if an attempt is open) and ``call_finished`` for an ended call."""
    started = next(e for e in events if isinstance(e, ev.CallStarted))
    message = _message(started)
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

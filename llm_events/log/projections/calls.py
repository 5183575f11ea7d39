"""``calls``: one row per logical call, folded from its events."""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Sequence
from typing import Any

from .. import events as ev
from .. import salvage
from ..pricing import price_call, price_table
from ..versions import VERSIONS
from .base import (
    CALL_TYPES,
    PROMPT_TYPES,
    Projection,
    _Cache,
    _load_prompt,
    _preview,
    dumps,
    executemany,
)


def _answer_preview(e: ev.AttemptSucceeded) -> str | None:
    """What a person scanning ``calls`` should see of an answer: its text, else the tools it
    called (an agent's turn is often only tool calls), else its refusal."""
    if e.text or not (e.tool_calls or e.refusal):
        return _preview(e.text)
    if e.tool_calls:
        return _preview("; ".join(f"{c.name}({c.arguments})" for c in e.tool_calls))
    return _preview(f"refused: {e.refusal}")


CALL_COLUMNS = (
    "call_id",
    "started_at",
    "finished_at",
    "status",
    "client",
    "backend",
    "model",
    "attempts",
    "failures",
    "retries",
    "fallbacks",
    "route",
    "route_reason",
    "input_tokens",
    "output_tokens",
    "tokens_estimated",
    "cost",
    "latency_ms",
    "error_type",
    "error_message",
    "prompt_id",
    "parent_call_id",
    "tags",
    "prompt_preview",
    "response_preview",
    "first_seq",
    "last_seq",
    "source",
)

#: Values of ``calls.source``: where a call came from.
CALL_SOURCES = ("application", "replay", "import", "proxy", "transport")
#: ``client`` / prompt ``builder`` names of the importers (events older than ``source``)
_IMPORT_CLIENTS = ("legacy PromptDB",)
_IMPORT_BUILDERS = ("llm_import", "legacy-prompts")
_IMPORT_TAGS = ("llm-import",)

_INSERT_CALL = (
    f"INSERT OR REPLACE INTO calls ({','.join(CALL_COLUMNS)}) "
    f"VALUES ({','.join('?' * len(CALL_COLUMNS))})"
)
_SELECT_CALL = f"SELECT {','.join(CALL_COLUMNS)} FROM calls WHERE call_id = ?"
_SELECT_CALLS = f"SELECT {','.join(CALL_COLUMNS)} FROM calls WHERE call_id IN"
_call_values = operator.itemgetter(*CALL_COLUMNS)


class CallsProjection(Projection):
    """``calls``: one row per logical call, its status, attempts, retries, fallbacks and cost."""

    name = "calls"
    # 2: ``source`` (application / replay / import / proxy / transport)
    # 3: ``response_preview`` names the tool calls (or the refusal) of an answer with no text
    version = VERSIONS["calls"]
    tables = ("calls",)
    types = CALL_TYPES | {"prompt_built"}

    def __init__(self) -> None:
        self.prompts = _Cache()

    def reset_caches(self) -> None:
        self.prompts = _Cache()

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS calls (
                call_id TEXT PRIMARY KEY,
                started_at TEXT,
                finished_at TEXT,
                status TEXT,
                client TEXT,
                backend TEXT,
                model TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                failures INTEGER NOT NULL DEFAULT 0,
                retries INTEGER NOT NULL DEFAULT 0,
                fallbacks INTEGER NOT NULL DEFAULT 0,
                route TEXT,
                route_reason TEXT,
                input_tokens INTEGER,
                output_tokens INTEGER,
                tokens_estimated INTEGER,
                cost REAL,
                latency_ms REAL,
                error_type TEXT,
                error_message TEXT,
                prompt_id TEXT,
                parent_call_id TEXT,
                tags TEXT,
                prompt_preview TEXT,
                response_preview TEXT,
                first_seq INTEGER,
                last_seq INTEGER,
                source TEXT
            )"""
        )
        conn.execute("CREATE INDEX IF NOT EXISTS calls_started ON calls(started_at)")
        conn.execute("CREATE INDEX IF NOT EXISTS calls_source ON calls(source, started_at)")
        conn.execute("CREATE INDEX IF NOT EXISTS calls_status ON calls(status, started_at)")
        conn.execute("CREATE INDEX IF NOT EXISTS calls_model ON calls(model, started_at)")
        # Datasette's backend and day facets (else a scan of every call: seconds on 1M events)
        conn.execute("CREATE INDEX IF NOT EXISTS calls_backend ON calls(backend, started_at)")
        conn.execute("CREATE INDEX IF NOT EXISTS calls_day ON calls(date(started_at))")
        conn.execute(
            "CREATE INDEX IF NOT EXISTS calls_parent ON calls(parent_call_id) "
            "WHERE parent_call_id IS NOT NULL"
        )

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        todo: list[tuple[int, Any, str]] = []
        folds = _CALL_FOLDS
        for seq, event in batch:
            if type(event) in folds:  # the common case: one exact type check
                call_id = event.call_id
            elif isinstance(event, PROMPT_TYPES):
                self.prompts.put(event.prompt_id, event)
                continue
            else:
                call_id = getattr(event, "call_id", None)
                if not isinstance(event, ev.Event):
                    continue
            if call_id is None:
                continue
            todo.append((seq, event, call_id))
        if not todo:
            return
        self.prices = price_table()  # one snapshot per batch, not one per answer
        # call_id -> (row being folded, the row as stored before this batch or None if new)
        state: dict[str, tuple[dict[str, Any], tuple | None]] = {}
        stored = self._load_many(conn, {call_id for _s, _e, call_id in todo})
        for seq, event, call_id in todo:
            entry = state.get(call_id)
            if entry is None:
                entry = self._entry(call_id, seq, stored.get(call_id))
                state[call_id] = entry
            try:
                self._fold(conn, entry[0], seq, event)
            except Exception as e:  # one bad event never stops a projection (salvage.py)
                salvage.report(event.id, f"seq {seq} not projected into calls: {e!r}")
        self._write(conn, state)

    @staticmethod
    def _load_many(conn: sqlite3.Connection, call_ids: set[str]) -> dict[str, tuple]:
        """The stored rows of these calls, in a few ``IN (...)`` queries (not one per call)."""
        if len(call_ids) == 1:
            (call_id,) = call_ids
            found = conn.execute(_SELECT_CALL, (call_id,)).fetchone()
            return {} if found is None else {call_id: found}
        ids = list(call_ids)
        out: dict[str, tuple] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for found in conn.execute(
                f"{_SELECT_CALLS} ({','.join('?' * len(chunk))})", chunk
            ).fetchall():
                out[found[0]] = found
        return out

    @staticmethod
    def _write(
        conn: sqlite3.Connection, state: dict[str, tuple[dict[str, Any], tuple | None]]
    ) -> None:
        """Insert new rows; update stored ones in only the columns that changed.

        An ``UPDATE`` that sets only the changed columns leaves the indexes on the other
        columns (and the rowid) untouched, where ``INSERT OR REPLACE`` would delete and
        re-insert the row in the table and all five indexes: far fewer pages per commit.
        """
        inserts = []
        updates: dict[tuple[int, ...], list[tuple]] = {}
        for row, stored in state.values():
            values = _call_values(row)
            if stored is None:
                inserts.append(values)
                continue
            changed = tuple(
                i for i, (new, old) in enumerate(zip(values, stored, strict=True)) if new != old
            )
            if changed:
                updates.setdefault(changed, []).append(
                    (*(values[i] for i in changed), row["call_id"])
                )
        if inserts:
            executemany(conn, _INSERT_CALL, inserts)
        for changed, params in updates.items():
            sets = ", ".join(f"{CALL_COLUMNS[i]} = ?" for i in changed)
            executemany(conn, f"UPDATE calls SET {sets} WHERE call_id = ?", params)

    @staticmethod
    def _entry(call_id: str, seq: int, found: tuple | None) -> tuple[dict[str, Any], tuple | None]:
        if found is not None:
            return dict(zip(CALL_COLUMNS, found, strict=True)), found
        row = dict.fromkeys(CALL_COLUMNS)
        row.update(call_id=call_id, attempts=0, failures=0, retries=0, fallbacks=0, first_seq=seq)
        row["status"] = "running"
        return row, None

    def _fold(self, conn: sqlite3.Connection, row: dict[str, Any], seq: int, e: Any) -> None:
        row["last_seq"] = seq
        fold = _CALL_FOLDS.get(type(e))
        if fold is None:  # a subclass of an event type, or an event the calls table ignores
            fold = next((f for cls, f in _CALL_FOLDS.items() if isinstance(e, cls)), None)
            if fold is None:
                return
        fold(self, conn, row, seq, e)

    # One function per event type (a dict lookup instead of a chain of isinstance checks:
    # rebuilds fold millions of events).

    def _call_started(
        self, conn: sqlite3.Connection, row: dict[str, Any], seq: int, e: ev.CallStarted
    ) -> None:
        row["started_at"] = e.ts
        row["client"] = e.client
        row["prompt_id"] = e.prompt_id
        row["parent_call_id"] = e.parent_call_id
        row["tags"] = dumps(e.tags)
        row["first_seq"] = seq
        if e.model and not row["model"]:
            row["model"] = e.model
        prompt = _load_prompt(conn, self.prompts, e.prompt_id)
        if prompt is not None:
            row["prompt_preview"] = _preview(prompt.user)
        row["source"] = call_source(e, prompt)

    def _route_chosen(
        self, conn: sqlite3.Connection, row: dict[str, Any], seq: int, e: ev.RouteChosen
    ) -> None:
        row["route"] = e.chosen
        row["route_reason"] = e.reason

    def _attempt_started(
        self, conn: sqlite3.Connection, row: dict[str, Any], seq: int, e: ev.AttemptStarted
    ) -> None:
        row["attempts"] = max(row["attempts"] or 0, e.attempt)
        row["backend"] = e.backend
        if e.model:
            row["model"] = e.model

    def _attempt_failed(
        self, conn: sqlite3.Connection, row: dict[str, Any], seq: int, e: ev.AttemptFailed
    ) -> None:
        row["failures"] = (row["failures"] or 0) + 1
        row["error_type"] = e.error_type
        row["error_message"] = e.message

    def _retry_scheduled(
        self, conn: sqlite3.Connection, row: dict[str, Any], seq: int, e: ev.RetryScheduled
    ) -> None:
        row["retries"] = (row["retries"] or 0) + 1

    def _fallback_taken(
        self, conn: sqlite3.Connection, row: dict[str, Any], seq: int, e: ev.FallbackTaken
    ) -> None:
        row["fallbacks"] = (row["fallbacks"] or 0) + 1

    def _attempt_succeeded(
        self, conn: sqlite3.Connection, row: dict[str, Any], seq: int, e: ev.AttemptSucceeded
    ) -> None:
        row["attempts"] = max(row["attempts"] or 0, e.attempt)
        if e.backend:
            row["backend"] = e.backend
        if e.model:
            row["model"] = e.model
        row["input_tokens"] = e.input_tokens
        row["output_tokens"] = e.output_tokens
        row["tokens_estimated"] = int(e.tokens_estimated)
        row["cost"] = price_call(e, row["backend"], row["model"], self.prices)
        row["response_preview"] = _answer_preview(e)

    def _call_finished(
        self, conn: sqlite3.Connection, row: dict[str, Any], seq: int, e: ev.CallFinished
    ) -> None:
        row["status"] = e.status
        row["finished_at"] = e.ts
        row["latency_ms"] = e.latency_ms
        if e.backend:
            row["backend"] = e.backend
        if e.model:
            row["model"] = e.model
        if e.status == "ok":
            row["error_type"] = None
            row["error_message"] = None
        else:
            row["error_type"] = e.error_type
            row["error_message"] = e.error_message


def call_source(started: ev.CallStarted, prompt: Any) -> str:
    """Where a call came from: its ``source`` (schema 3), else derived from what older
    events say: a replay links its original or carries the ``replay`` tag; an import names
    its importer as client, builder or tag; anything else is the application's own."""
    if started.source:
        return started.source
    if started.parent_call_id or "replay" in started.tags:
        return "replay"
    if (
        started.client in _IMPORT_CLIENTS
        or any(t in _IMPORT_TAGS for t in started.tags)
        or (prompt is not None and prompt.builder in _IMPORT_BUILDERS)
    ):
        return "import"
    return "application"


_CALL_FOLDS: dict[type, Any] = {
    ev.CallStarted: CallsProjection._call_started,
    ev.RouteChosen: CallsProjection._route_chosen,
    ev.AttemptStarted: CallsProjection._attempt_started,
    ev.AttemptFailed: CallsProjection._attempt_failed,
    ev.RetryScheduled: CallsProjection._retry_scheduled,
    ev.FallbackTaken: CallsProjection._fallback_taken,
    ev.AttemptSucceeded: CallsProjection._attempt_succeeded,
    ev.CallFinished: CallsProjection._call_finished,
}

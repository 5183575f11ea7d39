"""``calls``: one row per logical call, folded from its events."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .. import events as ev
from .. import salvage
from ..pricing import price_call, price_table
from ..versions import VERSIONS
from .base import (
    _CACHE_MAX,
    CALL_TYPES,
    PROMPT_TYPES,
    Projection,
    _Cache,
    _load_prompt,
    _preview,
    clip,
    dumps,
    executemany,
    report_clipped,
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

_INSERT_NEW_CALL = (
    f"INSERT OR IGNORE INTO calls ({','.join(CALL_COLUMNS)}) "
    f"VALUES ({','.join('?' * len(CALL_COLUMNS))})"
)
_SELECT_CALL = f"SELECT {','.join(CALL_COLUMNS)} FROM calls WHERE call_id = ?"
_SELECT_CALLS = f"SELECT {','.join(CALL_COLUMNS)} FROM calls WHERE call_id IN"
#: The position of each column in a row being folded (constants: rebuilds fold millions).
_CALL_ID = CALL_COLUMNS.index("call_id")
_STARTED_AT = CALL_COLUMNS.index("started_at")
_FINISHED_AT = CALL_COLUMNS.index("finished_at")
_STATUS = CALL_COLUMNS.index("status")
_CLIENT = CALL_COLUMNS.index("client")
_BACKEND = CALL_COLUMNS.index("backend")
_MODEL = CALL_COLUMNS.index("model")
_ATTEMPTS = CALL_COLUMNS.index("attempts")
_FAILURES = CALL_COLUMNS.index("failures")
_RETRIES = CALL_COLUMNS.index("retries")
_FALLBACKS = CALL_COLUMNS.index("fallbacks")
_ROUTE = CALL_COLUMNS.index("route")
_ROUTE_REASON = CALL_COLUMNS.index("route_reason")
_INPUT_TOKENS = CALL_COLUMNS.index("input_tokens")
_OUTPUT_TOKENS = CALL_COLUMNS.index("output_tokens")
_TOKENS_ESTIMATED = CALL_COLUMNS.index("tokens_estimated")
_COST = CALL_COLUMNS.index("cost")
_LATENCY_MS = CALL_COLUMNS.index("latency_ms")
_ERROR_TYPE = CALL_COLUMNS.index("error_type")
_ERROR_MESSAGE = CALL_COLUMNS.index("error_message")
_PROMPT_ID = CALL_COLUMNS.index("prompt_id")
_PARENT_CALL_ID = CALL_COLUMNS.index("parent_call_id")
_TAGS = CALL_COLUMNS.index("tags")
_PROMPT_PREVIEW = CALL_COLUMNS.index("prompt_preview")
_RESPONSE_PREVIEW = CALL_COLUMNS.index("response_preview")
_FIRST_SEQ = CALL_COLUMNS.index("first_seq")
_LAST_SEQ = CALL_COLUMNS.index("last_seq")
_SOURCE = CALL_COLUMNS.index("source")
#: A call seen for the first time: running, no attempt yet (its id and first seq set).
_NEW_ROW: list[Any] = [None] * len(CALL_COLUMNS)
_NEW_ROW[_ATTEMPTS] = _NEW_ROW[_FAILURES] = _NEW_ROW[_RETRIES] = _NEW_ROW[_FALLBACKS] = 0
_NEW_ROW[_STATUS] = "running"


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
        self.written = _Cache()  # call_id -> the row this process last stored for it
        #: prompt_id -> (seq, event) of the prompts in the batch being applied
        self.batch_prompts: dict[str, tuple[int, Any]] = {}

    def reset_caches(self) -> None:
        self.prompts = _Cache()
        self.written = _Cache()

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
        # The batch's prompts are cached once its rows are folded: a call folded here reads
        # only a prompt written before it (``_prompt``), as a rebuild does.
        self.batch_prompts = {}
        try:
            self._apply(conn, batch)
        finally:
            prompts = self.prompts
            for prompt_id, (_seq, event) in self.batch_prompts.items():
                if len(prompts) < _CACHE_MAX:  # ``put``, inlined: rebuilds cache millions
                    prompts[prompt_id] = event
                else:
                    prompts.put(prompt_id, event)
            self.batch_prompts = {}

    def _prompt(self, conn: sqlite3.Connection, prompt_id: str | None, seq: int) -> Any:
        """The prompt ``prompt_id`` as the log holds it before ``seq`` (None: not yet)."""
        found = self.batch_prompts.get(prompt_id) if prompt_id else None
        if found is not None:
            return found[1] if found[0] < seq else None
        return _load_prompt(conn, self.prompts, prompt_id, seq)

    def _apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        # (seq, event, call_id, fold) of each event that touches a call's row; a fold of
        # None (an event type this table ignores) still moves the row's ``last_seq``
        todo: list[tuple[int, Any, str, Any]] = []
        folds = _CALL_FOLDS
        batch_prompts = self.batch_prompts
        for seq, event in batch:
            fold = folds.get(type(event))
            if fold is not None:  # the common case: one exact type lookup
                call_id = event.call_id
            elif isinstance(event, PROMPT_TYPES):
                batch_prompts[event.prompt_id] = (seq, event)
                continue
            else:
                call_id = getattr(event, "call_id", None)
                if not isinstance(event, ev.Event):
                    continue
                # a subclass of an event type, or an event the calls table ignores
                fold = next((f for cls, f in folds.items() if isinstance(event, cls)), None)
            if call_id is None:
                continue
            todo.append((seq, event, call_id, fold))
        if not todo:
            return
        self.prices = price_table()  # one snapshot per batch, not one per answer
        # Each call's row is folded from the row this process last wrote for it (``written``,
        # valid while no other process applied a batch: see ``catchup``), else from a new
        # row, inserted unless one is stored already: then (rare: the call's first events
        # came in a batch another process applied) the batch is folded again into the
        # stored row.  No SELECT per batch, and no insert-then-update of a call's row.
        written = self.written
        state: dict[str, list] = {}  # call_id -> [row being folded, the row as stored or None]
        reports: list[tuple[int, str, str, str]] = []  # (seq, event id, message, call_id)
        self._fold_all(conn, todo, state, written, reports, None)
        inserts = [tuple(row) for row, stored in state.values() if stored is None]
        clipped = False
        redo: dict[str, tuple] = {}
        if inserts:
            before = conn.total_changes
            clipped = executemany(conn, _INSERT_NEW_CALL, inserts, report=False)
            if conn.total_changes - before != len(inserts):
                # stored before this batch: their ``last_seq`` is before its first event
                # (the others were inserted just now, before a retry after clipping)
                first_seq = todo[0][0]
                found = self._load_many(conn, {values[_CALL_ID] for values in inserts})
                redo = {
                    call_id: stored
                    for call_id, stored in found.items()
                    if stored[_LAST_SEQ] is None or stored[_LAST_SEQ] < first_seq
                }
                if redo:
                    reports = [r for r in reports if r[3] not in redo]
                    for call_id, stored in redo.items():
                        state[call_id] = [list(stored), stored]
                    self._fold_all(conn, todo, state, None, reports, redo)
                    reports.sort(key=lambda r: r[0])
        for _seq, event_id, message, _call_id in reports:
            salvage.report(event_id, message)
        if clipped and any(
            values != clip(values) for values in inserts if values[_CALL_ID] not in redo
        ):
            report_clipped()  # (only where a row new to the table held the count)
        clipped = self._update(conn, state) or clipped
        if clipped:  # a value was stored as NULL: these rows are not what is stored
            for call_id in state:
                written.pop(call_id, None)
        else:
            for call_id, (row, _stored) in state.items():
                if len(written) < _CACHE_MAX:
                    written[call_id] = tuple(row)
                else:
                    written.put(call_id, tuple(row))

    def _fold_all(
        self,
        conn: sqlite3.Connection,
        todo: list[tuple[int, Any, str, Any]],
        state: dict[str, list],
        written: dict[str, tuple] | None,
        reports: list[tuple[int, str, str, str]],
        only: dict[str, tuple] | None,
    ) -> None:
        """Fold the events of ``todo`` (of the calls in ``only``, if given) into ``state``,
        each row started from ``written`` or new; failures go to ``reports``."""
        for seq, event, call_id, fold in todo:
            if only is not None and call_id not in only:
                continue
            entry = state.get(call_id)
            if entry is None:
                stored = None if written is None else written.get(call_id)
                entry = state[call_id] = _start(call_id, seq, stored)
            row = entry[0]
            row[_LAST_SEQ] = seq
            if fold is None:
                continue
            try:
                fold(self, conn, row, seq, event)
            except Exception as e:  # one bad event never stops a projection (salvage.py)
                reports.append(
                    (seq, event.id, f"seq {seq} not projected into calls: {e!r}", call_id)
                )

    @staticmethod
    def _update(conn: sqlite3.Connection, state: dict[str, list]) -> bool:
        """Update stored rows in only the columns that changed (True: a count was clipped).

        An ``UPDATE`` that sets only the changed columns leaves the indexes on the other
        columns (and the rowid) untouched, where ``INSERT OR REPLACE`` would delete and
        re-insert the row in the table and all five indexes: far fewer pages per commit.
        """
        updates: dict[tuple[int, ...], list[tuple]] = {}
        for row, stored in state.values():
            if stored is None:
                continue
            changed = tuple(
                i for i, (new, old) in enumerate(zip(row, stored, strict=True)) if new != old
            )
            if changed:
                updates.setdefault(changed, []).append((*(row[i] for i in changed), row[_CALL_ID]))
        clipped = False
        for changed, params in updates.items():
            sets = ", ".join(f"{CALL_COLUMNS[i]} = ?" for i in changed)
            sql = f"UPDATE calls SET {sets} WHERE call_id = ?"
            clipped = executemany(conn, sql, params) or clipped
        return clipped

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

    # One function per event type (a dict lookup instead of a chain of isinstance checks:
    # rebuilds fold millions of events), on the row as a list (``_C`` names its positions).

    def _call_started(
        self, conn: sqlite3.Connection, row: list, seq: int, e: ev.CallStarted
    ) -> None:
        row[_STARTED_AT] = e.ts
        row[_CLIENT] = e.client
        row[_PROMPT_ID] = e.prompt_id
        row[_PARENT_CALL_ID] = e.parent_call_id
        row[_TAGS] = dumps(e.tags)
        row[_FIRST_SEQ] = seq
        if e.model and not row[_MODEL]:
            row[_MODEL] = e.model
        prompt = self._prompt(conn, e.prompt_id, seq)
        if prompt is not None:
            row[_PROMPT_PREVIEW] = _preview(prompt.user)
        row[_SOURCE] = call_source(e, prompt)

    def _route_chosen(
        self, conn: sqlite3.Connection, row: list, seq: int, e: ev.RouteChosen
    ) -> None:
        row[_ROUTE] = e.chosen
        row[_ROUTE_REASON] = e.reason

    def _attempt_started(
        self, conn: sqlite3.Connection, row: list, seq: int, e: ev.AttemptStarted
    ) -> None:
        row[_ATTEMPTS] = max(row[_ATTEMPTS] or 0, e.attempt)
        row[_BACKEND] = e.backend
        if e.model:
            row[_MODEL] = e.model

    def _attempt_failed(
        self, conn: sqlite3.Connection, row: list, seq: int, e: ev.AttemptFailed
    ) -> None:
        row[_FAILURES] = (row[_FAILURES] or 0) + 1
        row[_ERROR_TYPE] = e.error_type
        row[_ERROR_MESSAGE] = e.message

    def _retry_scheduled(
        self, conn: sqlite3.Connection, row: list, seq: int, e: ev.RetryScheduled
    ) -> None:
        row[_RETRIES] = (row[_RETRIES] or 0) + 1

    def _fallback_taken(
        self, conn: sqlite3.Connection, row: list, seq: int, e: ev.FallbackTaken
    ) -> None:
        row[_FALLBACKS] = (row[_FALLBACKS] or 0) + 1

    def _attempt_succeeded(
        self, conn: sqlite3.Connection, row: list, seq: int, e: ev.AttemptSucceeded
    ) -> None:
        row[_ATTEMPTS] = max(row[_ATTEMPTS] or 0, e.attempt)
        if e.backend:
            row[_BACKEND] = e.backend
        if e.model:
            row[_MODEL] = e.model
        row[_INPUT_TOKENS] = e.input_tokens
        row[_OUTPUT_TOKENS] = e.output_tokens
        row[_TOKENS_ESTIMATED] = int(e.tokens_estimated)
        row[_COST] = price_call(e, row[_BACKEND], row[_MODEL], self.prices)
        row[_RESPONSE_PREVIEW] = _answer_preview(e)

    def _call_finished(
        self, conn: sqlite3.Connection, row: list, seq: int, e: ev.CallFinished
    ) -> None:
        row[_STATUS] = e.status
        row[_FINISHED_AT] = e.ts
        row[_LATENCY_MS] = e.latency_ms
        if e.backend:
            row[_BACKEND] = e.backend
        if e.model:
            row[_MODEL] = e.model
        if e.status == "ok":
            row[_ERROR_TYPE] = None
            row[_ERROR_MESSAGE] = None
        else:
            row[_ERROR_TYPE] = e.error_type
            row[_ERROR_MESSAGE] = e.error_message


def _start(call_id: str, seq: int, stored: tuple | None) -> list:
    """``[row to fold, row as stored]`` of a call met first at ``seq`` in a batch."""
    if stored is not None:
        return [list(stored), stored]
    row = _NEW_ROW.copy()
    row[_CALL_ID] = call_id
    row[_FIRST_SEQ] = seq
    return [row, None]


def call_source(started: ev.CallStarted, prompt: Any) -> str:
    """Where a call came from: its ``source`` (schema 3), else derived from what older
    events say: a replay links its original or carries the ``replay`` tag; an import names
    its importer as client, builder or tag; anything else is the application's own."""
    if started.source:
        return started.source
    tags = started.tags
    if started.parent_call_id or (tags and "replay" in tags):
        return "replay"
    if (
        started.client in _IMPORT_CLIENTS
        or (tags and any(t in _IMPORT_TAGS for t in tags))
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

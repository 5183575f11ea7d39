"""Projections: tables derived from events, subscribers that run a little behind the log.

Each projection folds a batch of ``(seq, event)`` pairs into its table(s).  They depend only
on the event vocabulary; :mod:`.catchup` decides when to run them (in batches after appends,
from each one's checkpoint in ``_projections``, and from seq 0 on ``rebuild``).  A projection whose ``version`` changed is rebuilt when a store is opened,
so a new column or a fixed rule re-derives history.

Tables: ``calls`` (one row per logical call), ``prompts`` (the seed's PromptDB: one row per
answered call, plus ``call_id``; full-text index ``prompts_fts``), ``replay_results`` and
``replays`` (one row per replay run).
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from . import events as ev
from . import fts, salvage
from .pricing import price_call, price_table

_json = msgspec.json.Encoder()
_decode_any = msgspec.json.Decoder()

PREVIEW_CHARS = 200
_CACHE_MAX = 20_000


def dumps(value: Any) -> str:
    return _json.encode(value).decode()


def _answer_preview(e: ev.AttemptSucceeded) -> str | None:
    """What a person scanning ``calls`` should see of an answer: its text, else the tools it
    called (an agent's turn is often only tool calls), else its refusal."""
    if e.text or not (e.tool_calls or e.refusal):
        return _preview(e.text)
    if e.tool_calls:
        return _preview("; ".join(f"{c.name}({c.arguments})" for c in e.tool_calls))
    return _preview(f"refused: {e.refusal}")


def _preview(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text[: 4 * PREVIEW_CHARS].split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


class _Cache(dict):
    """A small insertion-ordered cache: bounded memory during rebuilds of huge stores."""

    def put(self, key: str, value: Any) -> None:
        if len(self) >= _CACHE_MAX:
            for old in list(self)[: _CACHE_MAX // 4]:
                del self[old]
        self[key] = value


class Projection:
    name: str = ""
    version: int = 1
    tables: tuple[str, ...] = ()
    #: the checkpoint this process last left the projection at (``None``: unknown); its
    #: caches are valid only while the stored checkpoint is still this (see ``catchup``)
    applied_upto: int | None = None

    def create(self, conn: sqlite3.Connection) -> None:
        raise NotImplementedError

    def drop(self, conn: sqlite3.Connection) -> None:
        for table in self.tables:
            conn.execute(f"DROP TABLE IF EXISTS [{table}]")

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        raise NotImplementedError

    def reset_caches(self) -> None:
        """Forget cached state (called before a rebuild)."""

    def pending(self) -> bool:
        """True when :meth:`apply` left work for later (see :meth:`settle`)."""
        return False

    def settle(self, conn: sqlite3.Connection) -> None:
        """Do the work :meth:`apply` left for later, inside the caller's write transaction.

        The store calls it at flush, close and exit, once appends pause, and at the end of
        a rebuild.
        """


_INT_RANGE = range(-(2**63), 2**63)


def executemany(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple]) -> None:
    """``conn.executemany``; a count past SQLite's 64-bit integers (an event written with
    ``2**70`` tokens) is stored as NULL instead of stopping the projection."""
    try:
        conn.executemany(sql, rows)
    except OverflowError:
        salvage.report("", "a count past 2**63-1 was projected as NULL")
        clipped = [
            tuple(
                None if type(v) is int and v not in _INT_RANGE else v  # noqa: E721
                for v in row
            )
            for row in rows
        ]
        conn.executemany(sql, clipped)


def _load_prompt(conn: sqlite3.Connection, cache: _Cache, prompt_id: str | None) -> Any:
    if not prompt_id:
        return None
    hit = cache.get(prompt_id)
    if hit is not None:
        return hit
    row = conn.execute(
        "SELECT payload FROM events WHERE id = ? AND type = 'prompt_built'", (prompt_id,)
    ).fetchone()
    if row is None:
        return None
    prompt = ev.decode(row[0], "prompt_built")
    cache.put(prompt_id, prompt)
    return prompt


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
    version = 3
    tables = ("calls",)

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
        conn.execute(
            "CREATE INDEX IF NOT EXISTS calls_parent ON calls(parent_call_id) "
            "WHERE parent_call_id IS NOT NULL"
        )

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        todo: list[tuple[int, Any, str]] = []
        for seq, event in batch:
            if isinstance(event, ev.PromptBuilt):
                self.prompts.put(event.prompt_id, event)
                continue
            call_id = getattr(event, "call_id", None)
            if call_id is None or not isinstance(event, ev.Event):
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


PROMPT_COLUMNS = (
    "call_id",
    "prompt",
    "text",
    "system",
    "examples",
    "vector_confidence",
    "vector_confidences",
    "outcome_tags",
    "completion_raw",
    "completion_parsed",
    "response_text",
    "response_parsed",
    "model",
    "timestamp",
    "prompt_tokens",
    "completion_tokens",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "cost",
    "backend",
    "tool_calls",
)


def tool_calls_text(calls: Sequence[Any]) -> str | None:
    """An answer's tool calls as searchable text, one ``name(arguments)`` a line."""
    if not calls:
        return None
    return "\n".join(f"{c.name}({c.arguments})" for c in calls)


class PromptsProjection(Projection):
    """``prompts``: the seed's PromptDB table, one row per answered call, searchable."""

    name = "prompts"
    # 2: ``prompt`` holds the user text, as the original's did (was JSON)
    # 3: ``prompts_fts`` is filled in batches (llm_events.log.fts), not by a trigger per row
    # 4: ``tool_calls`` (the answer's tool calls, ``name(arguments)``), indexed for search
    version = 4
    tables = ("prompts",)

    def __init__(self) -> None:
        self.prompts = _Cache()
        self.successes = _Cache()
        self.calls = _Cache()
        self.unindexed = 0  # rows this process added that the search index lacks

    def reset_caches(self) -> None:
        self.__init__()

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS prompts (
                id INTEGER PRIMARY KEY,
                call_id TEXT UNIQUE,
                prompt TEXT,
                text TEXT,
                system TEXT,
                examples TEXT,
                vector_confidence REAL,
                vector_confidences TEXT,
                outcome_tags TEXT,
                completion_raw TEXT,
                completion_parsed TEXT,
                response_text TEXT,
                response_parsed TEXT,
                model TEXT,
                timestamp TEXT,
                prompt_tokens INTEGER,
                completion_tokens INTEGER,
                input_tokens INTEGER,
                output_tokens INTEGER,
                latency_ms REAL,
                cost REAL,
                backend TEXT,
                tool_calls TEXT
            )"""
        )
        conn.execute("CREATE INDEX IF NOT EXISTS prompts_model ON prompts(model)")
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS prompts_fts USING fts5("
            "text, response_text, tool_calls, content='prompts', content_rowid='id')"
        )
        fts.mark_indexed(conn)

    def drop(self, conn: sqlite3.Connection) -> None:
        conn.execute("DROP TABLE IF EXISTS prompts_fts")
        conn.execute("DROP TABLE IF EXISTS prompts")
        self.unindexed = 0

    def pending(self) -> bool:
        return self.unindexed > 0

    def settle(self, conn: sqlite3.Connection) -> None:
        fts.index_pending(conn)
        self.unindexed = 0

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        rows = []
        self.prices = price_table()  # one snapshot per batch, not one per answer
        for _seq, e in batch:
            if isinstance(e, ev.PromptBuilt):
                self.prompts.put(e.prompt_id, e)
            elif isinstance(e, ev.CallStarted):
                self.calls.put(e.call_id, e)
            elif isinstance(e, ev.AttemptSucceeded):
                self.successes.put(e.call_id, e)
            elif isinstance(e, ev.CallFinished):
                if e.status == "ok":
                    try:
                        row = self._row(conn, e)
                    except Exception as err:  # one bad event never stops a projection
                        salvage.report(e.id, f"not projected into prompts: {err!r}")
                        row = None
                    if row is not None:
                        rows.append(row)
                self.successes.pop(e.call_id, None)
                self.calls.pop(e.call_id, None)
        if rows:
            executemany(
                conn,
                f"INSERT OR IGNORE INTO prompts ({','.join(PROMPT_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(PROMPT_COLUMNS))})",
                rows,
            )
            self.unindexed += len(rows)
            if self.unindexed >= fts.FTS_BATCH:
                self.settle(conn)

    def _row(self, conn: sqlite3.Connection, done: ev.CallFinished) -> tuple | None:
        success = self.successes.get(done.call_id) or _last_of(
            conn, done.call_id, "attempt_succeeded"
        )
        if success is None:
            return None
        started = self.calls.get(done.call_id) or _last_of(conn, done.call_id, "call_started")
        prompt = _load_prompt(conn, self.prompts, started.prompt_id if started else None)
        backend = done.backend or success.backend or None
        model = done.model or success.model or (started.model if started else None)
        if prompt is not None:
            confs = prompt.metadata.get("vector_confidences")
            if not isinstance(confs, list):
                confs = [] if prompt.vector_confidence is None else [prompt.vector_confidence]
            values = (
                prompt.user,  # the original PromptDB wrote the user text to prompt and text
                prompt.user,
                prompt.system,
                dumps(prompt.examples),
                prompt.vector_confidence,
                dumps(confs),
                dumps(prompt.tags),
            )
        else:
            values = (None, None, None, "[]", None, "[]", "[]")
        return (
            done.call_id,
            *values,
            dumps(success.raw),
            dumps(success.parsed),
            success.text,
            dumps(success.parsed),
            model,
            done.ts,
            success.input_tokens,
            success.output_tokens,
            success.input_tokens,
            success.output_tokens,
            success.latency_ms if success.latency_ms is not None else done.latency_ms,
            price_call(success, backend, model, self.prices),
            backend,
            tool_calls_text(success.tool_calls),
        )


def _last_of(conn: sqlite3.Connection, call_id: str, type_: str) -> Any:
    row = conn.execute(
        "SELECT payload FROM events WHERE call_id = ? AND +type = ? ORDER BY seq DESC LIMIT 1",
        (call_id, type_),
    ).fetchone()
    return None if row is None else ev.decode(row[0], type_)


REPLAY_COLUMNS = (
    "replay_id",
    "source_call_id",
    "replay_call_id",
    "verdict",
    "score",
    "diff",
    "reason",
    "compare",
    "latency_delta_ms",
    "input_tokens_delta",
    "output_tokens_delta",
    "cost_delta",
    "ts",
)


class ReplayResultsProjection(Projection):
    """``replay_results``: one row per compared call of a replay run."""

    name = "replay_results"
    version = 1
    tables = ("replay_results",)

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS replay_results (
                id INTEGER PRIMARY KEY,
                replay_id TEXT NOT NULL,
                source_call_id TEXT NOT NULL,
                replay_call_id TEXT,
                verdict TEXT NOT NULL,
                score REAL,
                diff TEXT,
                reason TEXT,
                compare TEXT,
                latency_delta_ms REAL,
                input_tokens_delta INTEGER,
                output_tokens_delta INTEGER,
                cost_delta REAL,
                ts TEXT,
                UNIQUE (replay_id, source_call_id)
            )"""
        )
        conn.execute(
            "CREATE INDEX IF NOT EXISTS replay_results_verdict ON replay_results(replay_id, verdict)"
        )

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        rows = [
            tuple(getattr(e, c) for c in REPLAY_COLUMNS)
            for _seq, e in batch
            if isinstance(e, ev.ReplayCompared)
        ]
        if rows:
            executemany(
                conn,
                f"INSERT OR REPLACE INTO replay_results ({','.join(REPLAY_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(REPLAY_COLUMNS))})",
                rows,
            )


class ReplaysProjection(Projection):
    """``replays``: one row per replay run, its status and counts per verdict.

    A resumed run keeps its first ``started_at`` and ``total``; ``status`` is ``running``
    until a ``replay_finished`` (a run killed mid-way stays ``running``).
    """

    name = "replays"
    version = 1
    tables = ("replays",)

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS replays (
                replay_id TEXT PRIMARY KEY,
                started_at TEXT,
                finished_at TEXT,
                status TEXT,
                against TEXT,
                compare TEXT,
                selection TEXT,
                total INTEGER,
                same INTEGER,
                changed INTEGER,
                error INTEGER,
                skipped INTEGER,
                resumes INTEGER NOT NULL DEFAULT 0
            )"""
        )
        conn.execute("CREATE INDEX IF NOT EXISTS replays_started ON replays(started_at)")

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        for _seq, e in batch:
            try:
                self._apply_one(conn, e)
            except (OverflowError, TypeError, ValueError) as err:  # one bad event never stops it
                salvage.report(e.id, f"not projected into replays: {err!r}")

    @staticmethod
    def _apply_one(conn: sqlite3.Connection, e: Any) -> None:
        if isinstance(e, ev.ReplayStarted):
            conn.execute(
                "INSERT INTO replays (replay_id, started_at, status, against, compare, "
                "selection, total) VALUES (?,?,?,?,?,?,?) ON CONFLICT(replay_id) DO UPDATE "
                "SET status = 'running', finished_at = NULL, resumes = resumes + 1",
                (
                    e.replay_id,
                    e.ts,
                    "running",
                    e.against,
                    e.compare,
                    dumps(e.selection),
                    e.total,
                ),
            )
        elif isinstance(e, ev.ReplayFinished):
            c = e.counts
            conn.execute(
                "UPDATE replays SET finished_at = ?, status = ?, same = ?, changed = ?, "
                "error = ?, skipped = ? WHERE replay_id = ?",
                (
                    e.ts,
                    e.status,
                    c.get("same"),
                    c.get("changed"),
                    c.get("error"),
                    c.get("skipped"),
                    e.replay_id,
                ),
            )


def default_projections() -> list[Projection]:
    """Fresh instances of the built-in projections, in the order they are applied."""
    return [CallsProjection(), PromptsProjection(), ReplayResultsProjection(), ReplaysProjection()]

"""``prompts``: the seed's PromptDB table, one row per answered call, and its search index."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .. import events as ev
from .. import fts, salvage
from ..pricing import price_call, price_table
from ..versions import VERSIONS
from .base import _CACHE_MAX, PROMPT_TYPES, Projection, _Cache, _load_prompt, dumps, executemany

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
    version = VERSIONS["prompts"]
    tables = ("prompts",)
    types = frozenset({"prompt_built", "call_started", "attempt_succeeded", "call_finished"})

    def __init__(self) -> None:
        self.prompts = _Cache()
        self.successes = _Cache()
        self.calls = _Cache()
        self.unindexed = 0  # rows this process added that the search index lacks
        self.index_every: int | None = fts.FTS_BATCH  # index once this many are waiting

    def reset_caches(self) -> None:
        index_every, unindexed = self.index_every, self.unindexed
        self.__init__()
        self.index_every = index_every  # a rebuild's choice outlives the caches
        # the rows waiting for the index are not a cache: forgetting them (after a
        # catch-up that failed) would leave them unindexed at close
        self.unindexed = unindexed

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
        conn.execute("CREATE INDEX IF NOT EXISTS prompts_backend ON prompts(backend)")
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

    def settle(self, conn: sqlite3.Connection, limit: int | None = None) -> bool:
        fts.index_pending(conn, limit)
        if limit is not None and fts.behind(conn):
            return True
        self.unindexed = 0
        return False

    def bulk(self, on: bool) -> None:
        # A rebuild indexes at its end, in a few large transactions: FTS5 writes a segment
        # per transaction and merges them as they pile up, so indexing 64 answers at a
        # time cost a 1,000,000-event rebuild 4.3 s where the same rows in large batches
        # take 2.6 s.
        self.index_every = None if on else fts.FTS_BATCH

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        rows = []
        self.prices = price_table()  # one snapshot per batch, not one per answer
        prompts, calls, successes = self.prompts, self.calls, self.successes
        for seq, e in batch:
            kind = _KINDS.get(type(e))  # one exact type lookup; a subclass is matched below
            if kind is None:
                kind = next((k for cls, k in _KIND_OF if isinstance(e, cls)), None)
                if kind is None:
                    continue
            if kind == _FINISHED:
                if e.status == "ok":
                    try:
                        row = self._row(conn, seq, e)
                    except Exception as err:  # one bad event never stops a projection
                        salvage.report(e.id, f"not projected into prompts: {err!r}")
                        row = None
                    if row is not None:
                        rows.append(row)
                successes.pop(e.call_id, None)
                calls.pop(e.call_id, None)
                continue
            # ``put``, inlined (rebuilds cache millions of events)
            cache = successes if kind == _SUCCEEDED else calls if kind == _STARTED else prompts
            key = e.prompt_id if kind == _PROMPT else e.call_id
            if len(cache) < _CACHE_MAX:
                cache[key] = e
            else:
                cache.put(key, e)
        if rows:
            executemany(conn, _INSERT_PROMPT, rows)
            self.unindexed += len(rows)
            if self.index_every is not None and self.unindexed >= self.index_every:
                self.settle(conn)

    def _row(self, conn: sqlite3.Connection, seq: int, done: ev.CallFinished) -> tuple | None:
        """The row of a call that finished ok, from what the log holds before ``seq`` (an
        answer committed after its call's end is in no row, rebuilt or caught up)."""
        call_id = done.call_id
        success = self.successes.get(call_id) or _last_of(conn, call_id, "attempt_succeeded", seq)
        if success is None:
            return None
        started = self.calls.get(call_id) or _last_of(conn, call_id, "call_started", seq)
        prompt = _load_prompt(conn, self.prompts, started.prompt_id if started else None, seq)
        backend = done.backend or success.backend or None
        model = done.model or success.model or (started.model if started else None)
        if prompt is not None:
            confs = prompt.metadata.get("vector_confidences")
            if not isinstance(confs, list):
                confs = [] if prompt.vector_confidence is None else [prompt.vector_confidence]
            user = prompt.user  # the original PromptDB wrote the user text to prompt and text
            values = (
                user,
                user,
                prompt.system,
                _dumps_list(prompt.examples),
                prompt.vector_confidence,
                _dumps_list(confs),
                _dumps_list(prompt.tags),
            )
        else:
            values = (None, None, None, "[]", None, "[]", "[]")
        parsed = dumps(success.parsed)
        input_tokens, output_tokens = success.input_tokens, success.output_tokens
        latency_ms = success.latency_ms
        return (
            call_id,
            *values,
            dumps(success.raw),
            parsed,
            success.text,
            parsed,
            model,
            done.ts,
            input_tokens,
            output_tokens,
            input_tokens,
            output_tokens,
            latency_ms if latency_ms is not None else done.latency_ms,
            price_call(success, backend, model, self.prices),
            backend,
            tool_calls_text(success.tool_calls) if success.tool_calls else None,
        )


_INSERT_PROMPT = (
    f"INSERT OR IGNORE INTO prompts ({','.join(PROMPT_COLUMNS)}) "
    f"VALUES ({','.join('?' * len(PROMPT_COLUMNS))})"
)

# What :meth:`PromptsProjection.apply` does with each event type (checked in this order
# for a subclass, as ``isinstance`` would).
_PROMPT, _STARTED, _SUCCEEDED, _FINISHED = range(4)
_KIND_OF: tuple[tuple[type, int], ...] = (
    *((cls, _PROMPT) for cls in PROMPT_TYPES),
    (ev.CallStarted, _STARTED),
    (ev.AttemptSucceeded, _SUCCEEDED),
    (ev.CallFinished, _FINISHED),
)
_KINDS: dict[type, int] = dict(_KIND_OF)


def _dumps_list(value: Any) -> str:
    """``dumps`` of a list (an empty one, the most common, without encoding it)."""
    return "[]" if value == [] else dumps(value)


def _last_of(conn: sqlite3.Connection, call_id: str, type_: str, before_seq: int) -> Any:
    """The call's last event of ``type_`` before ``before_seq`` (never a later one)."""
    row = conn.execute(
        "SELECT payload FROM events WHERE call_id = ? AND +type = ? AND seq < ? "
        "ORDER BY seq DESC LIMIT 1",
        (call_id, type_, before_seq),
    ).fetchone()
    return None if row is None else ev.decode(row[0], type_)

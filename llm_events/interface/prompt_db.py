"""``PromptDB``: the seed's prompt log, now a projection over recorded events.

``log(prompt, result)`` records a call (prompt, answer, outcome) as events, and the
``prompts`` table is derived from them.  A result that a recorded ``generate`` produced in the
same store is already there, so logging it again adds nothing.  With the seed's ``router``,
the whole store (events and projections) lives on the connection the router hands out.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from ..log import events as ev
from ..log.redaction import clean, clean_text
from ..log.store import EventStore
from ..recording.config import settings
from ..recording.prompt_events import mark_recorded, prompt_built_event, recorded_prompt_id
from ..recording.store_access import emit
from ..recording.values import check_result
from .prompt import LLMResult, Prompt


class PromptDB:
    """Prompts and responses, one row per answered call, newest first from ``fetch_logs``."""

    def __init__(self, model: str, path: str | os.PathLike[str] | None = None, router: Any = None):
        self.model = model
        self.router = router
        if router is not None:
            self.conn: sqlite3.Connection = router.get_connection("prompts", operation="write")
            self.path: Path | None = None
            self.store = EventStore(conn=self.conn)
        else:
            self.path = Path(path or os.getenv("PROMPT_DB_PATH", "prompts.db"))
            self.store = EventStore(self.path)
            self.conn = self.store.conn()

    def log(self, prompt: Prompt, result: LLMResult, backend: str | None = None) -> str:
        """Record ``prompt`` answered by ``result``; returns the call id."""
        call_id = result.call_id
        if call_id is not None and self.store.has_call(call_id):
            return call_id
        redact = settings().redactor
        check_result(result)  # coerced or refused before anything is written
        raw = result.raw if isinstance(result.raw, dict) else {}
        model = raw.get("model") or self.model
        backend = backend or raw.get("backend") or prompt.metadata.get("backend") or "prompt_db"
        events: list[ev.Event] = []
        prompt_id = recorded_prompt_id(prompt, self.store)
        built = None
        if prompt_id is None:
            built = prompt_built_event(prompt, redact, builder="PromptDB.log")
            events.append(built)
            prompt_id = built.prompt_id
        events += ev.answered_call_events(
            prompt_id=prompt_id,
            ts=ev.now_iso(),
            client="PromptDB.log",
            backend=str(backend),
            model=str(model),
            success={
                "text": clean_text(result.text or "", redact, "result.text"),
                "parsed": clean(result.parsed, redact, "result.parsed"),
                "raw": clean(result.raw, redact, "result.raw"),
                "input_tokens": _first(result.input_tokens, result.prompt_tokens),
                "output_tokens": _first(result.output_tokens, result.completion_tokens),
                "cost": result.cost,
                "latency_ms": result.latency_ms,
            },
        )
        call_id = events[-1].call_id
        emit(self.store, events, settings().on_store_error, what="PromptDB.log")
        if built is not None:
            mark_recorded(prompt, built, self.store)
        result.__dict__["_call_id"] = call_id
        return call_id

    def fetch_logs(
        self, limit: int | None = None, *, model: str | None = None, tag: str | None = None
    ) -> list[dict[str, Any]]:
        """Logged rows as dicts, newest first, filtered by model and/or outcome tag."""
        self.store.catch_up()  # ``prompts`` follows the log: read what was just logged
        return query_prompts(self.conn, limit=limit, model=model, tag=tag)

    def close(self) -> None:
        if self.router is None:
            self.store.close()


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def query_prompts(
    conn: sqlite3.Connection,
    *,
    limit: int | None = None,
    model: str | None = None,
    tag: str | None = None,
) -> list[dict[str, Any]]:
    where, args = [], []
    if model is not None:
        where.append("model = ?")
        args.append(model)
    if tag is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(prompts.outcome_tags) WHERE value = ?)")
        args.append(tag)
    sql = "SELECT * FROM prompts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def fetch_logs(
    limit: int | None = None,
    *,
    model: str | None = None,
    tag: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Module-level convenience: read the prompt log at ``path`` (default ``PROMPT_DB_PATH``)."""
    db = PromptDB("", path=path)
    try:
        return db.fetch_logs(limit, model=model, tag=tag)
    finally:
        db.close()

"""Migrating a prompt log written by the original PromptDB (a mutable ``prompts`` table).

On first open, such a table is renamed ``prompts_legacy`` and every row becomes a recorded
call (``prompt_built``, ``call_started``, ``attempt_started``, ``attempt_succeeded``,
``call_finished``), so the old history projects into the new ``prompts`` table and replays.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from . import events as ev


def _json(value: Any, default: Any) -> Any:
    if value is None:
        return default
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return default


def import_legacy_prompts(store: Any, conn: sqlite3.Connection) -> int:
    cur = conn.execute("SELECT * FROM prompts_legacy ORDER BY rowid")
    names = [d[0] for d in cur.description]
    batch: list[ev.Event] = []
    count = 0
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        ts = str(row.get("timestamp") or ev.now_iso())
        if not ts.endswith("Z") and "+" not in ts:
            ts += "Z"
        text = row.get("text") or row.get("prompt") or ""
        tags = _json(row.get("outcome_tags"), [])
        confs = _json(row.get("vector_confidences"), [])
        model = row.get("model")
        backend = row.get("backend") or "legacy"
        prompt_id = ev.new_id()
        batch += [
            ev.PromptBuilt(
                id=prompt_id,
                ts=ts,
                prompt_id=prompt_id,
                user=str(text),
                examples=[str(e) for e in _json(row.get("examples"), [])],
                tags=[str(t) for t in tags] if isinstance(tags, list) else [],
                metadata={"vector_confidences": confs, "legacy_id": row.get("id")}
                if confs
                else {"legacy_id": row.get("id")},
                vector_confidence=float(confs[0]) if confs else None,
                origin="context_builder",
                builder="legacy-prompts",
            ),
        ]
        batch += ev.answered_call_events(
            prompt_id=prompt_id,
            ts=ts,
            client="legacy PromptDB",
            backend=backend,
            model=model,
            success={
                "text": str(row.get("response_text") or ""),
                "parsed": _json(row.get("response_parsed") or row.get("completion_parsed"), None),
                "raw": _json(row.get("response_raw") or row.get("completion_raw"), None),
            },
        )
        count += 1
        if len(batch) >= 5000:
            store.append(batch)
            batch = []
    if batch:
        store.append(batch)
    return count

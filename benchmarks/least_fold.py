"""The least Python that turns the benchmark's decoded events into its projection rows.

``bench_core``'s rebuild floor measures what a rebuild cannot do without: reading the
events, decoding them, writing the rows and indexing them.  Between decoding and writing
sits the fold, and a fold of no cost is no floor at all.  This is the fold cut to what the
synthetic store (``bench_core.synthetic_calls``) needs: no salvage, no subclass checks, no
caches bounded for huge stores, no reading back from the file, previews and sources in the
one shape the synthetic texts take.  It is therefore cheaper than any fold that handles
real logs, which keeps the floor a floor; :func:`check` proves it makes the same rows as
the rebuild, so what it measures is the work, not a shortcut past it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from llm_events.log.pricing import price_table, unit_prices
from llm_events.log.projections import CALL_COLUMNS, PROMPT_COLUMNS

_encode = msgspec.json.Encoder().encode
_PREVIEW = 200


def _cost(e: Any, backend: str, model: str, prices: dict) -> float | None:
    if e.cost is not None:
        return e.cost
    p = unit_prices(backend, model, prices)
    if p is None or e.input_tokens is None or e.output_tokens is None:
        return None
    return (e.input_tokens * p.get("input", 0.0) + e.output_tokens * p.get("output", 0.0)) / 1e6


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= _PREVIEW:
        return text if text is None or text[-1:] != " " else text.rstrip()
    return text[: _PREVIEW - 1] + "…"


class LeastFold:
    """Folds batches of decoded events into ``calls`` and ``prompts`` rows (``self.calls``,
    ``self.prompts``), as the rebuild's projections do for the synthetic store."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.prompts: list[tuple] = []
        self._prompt: dict[str, Any] = {}
        self._open: dict[str, list] = {}
        self._answer: dict[str, Any] = {}
        self._prices = price_table()

    def apply(self, batch: list[tuple[int, str, Any]]) -> None:
        """Fold ``(seq, type, event)`` triples (the type as the ``events`` row holds it)."""
        prompt_of, open_, answer_of, prices = self._prompt, self._open, self._answer, self._prices
        for seq, t, e in batch:
            if t == "prompt_built":
                prompt_of[e.prompt_id] = e
            elif t == "call_started":
                p = prompt_of.get(e.prompt_id)
                open_[e.call_id] = [
                    e.call_id, e.ts, None, "running", e.client, None, e.model, 0, 0, 0, 0,
                    None, None, None, None, None, None, None, None, None, e.prompt_id,
                    e.parent_call_id, _encode(e.tags).decode(),
                    None if p is None else _short(p.user), None, seq, seq,
                    e.source or ("replay" if e.parent_call_id else "application"),
                ]  # fmt: skip
            elif t == "attempt_started":
                row = open_[e.call_id]
                row[7], row[5], row[26] = e.attempt, e.backend, seq
                if e.model:
                    row[6] = e.model
            elif t == "attempt_succeeded":
                row = open_[e.call_id]
                row[7], row[26] = e.attempt, seq
                row[13], row[14], row[15] = e.input_tokens, e.output_tokens, int(e.tokens_estimated)
                row[16] = _cost(e, row[5], row[6], prices)
                row[24] = _short(e.text)
                answer_of[e.call_id] = e
            elif t == "call_finished":
                row = open_.pop(e.call_id)
                row[2], row[3], row[17], row[26] = e.ts, e.status, e.latency_ms, seq
                row[18], row[19] = e.error_type, e.error_message
                self.calls.append(tuple(row))
                a = answer_of.pop(e.call_id, None)
                if e.status != "ok" or a is None:
                    continue
                p = prompt_of.get(row[20])
                confs = p.metadata.get("vector_confidences")
                parsed = _encode(a.parsed).decode()
                self.prompts.append(
                    (
                        e.call_id,
                        p.user,
                        p.user,
                        p.system,
                        _encode(p.examples).decode(),
                        p.vector_confidence,
                        _encode(confs).decode(),
                        _encode(p.tags).decode(),
                        _encode(a.raw).decode(),
                        parsed,
                        a.text,
                        parsed,
                        row[6],
                        e.ts,
                        a.input_tokens,
                        a.output_tokens,
                        a.input_tokens,
                        a.output_tokens,
                        a.latency_ms,
                        row[16],
                        row[5],
                        None,
                    )  # fmt: skip
                )


def check(fold: LeastFold, conn: sqlite3.Connection) -> None:
    """Raise unless ``fold`` made exactly the rows the rebuild stored (same order)."""
    stored_calls = conn.execute(
        f"SELECT {','.join(CALL_COLUMNS)} FROM calls ORDER BY first_seq"
    ).fetchall()
    stored_prompts = conn.execute(
        f"SELECT {','.join(PROMPT_COLUMNS)} FROM prompts ORDER BY id"
    ).fetchall()
    made_calls = sorted(fold.calls, key=lambda r: r[CALL_COLUMNS.index("first_seq")])
    for name, made, stored in (
        ("calls", made_calls, stored_calls),
        ("prompts", fold.prompts, stored_prompts),
    ):
        if len(made) != len(stored):
            raise AssertionError(f"least fold: {len(made)} {name} rows, the rebuild {len(stored)}")
        for a, b in zip(made, stored, strict=True):
            if a != b:
                raise AssertionError(f"least fold differs from the rebuild in {name}: {a} != {b}")

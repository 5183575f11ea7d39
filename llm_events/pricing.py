"""Prices per million tokens, keyed by backend and model, and the cost of one answer.

Cost is computed when projecting (not when recording), so changing the price table and
running ``llm-events rebuild`` re-prices history.  A model with no known price costs ``None``,
never 0.  Users override or extend the table with a JSON file named by ``LLM_EVENTS_PRICES``:
``{"openai:gpt-4o-mini": {"input": 0.15, "output": 0.60}, "echo:*": {"input": 0, "output": 0}}``.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

#: USD per million tokens.  ``backend:*`` matches every model of a backend.
BUILTIN_PRICES: dict[str, dict[str, float]] = {
    "echo:*": {"input": 0.0, "output": 0.0},
}


@lru_cache(maxsize=8)
def _load(path: str | None) -> dict[str, dict[str, float]]:
    table = dict(BUILTIN_PRICES)
    if path:
        with open(path, encoding="utf-8") as f:
            table.update(json.load(f))
    return table


def price_table() -> dict[str, dict[str, float]]:
    """The effective table: built-in prices updated by the file in ``LLM_EVENTS_PRICES``."""
    return _load(os.environ.get("LLM_EVENTS_PRICES") or None)


def unit_prices(backend: str | None, model: str | None) -> dict[str, float] | None:
    table = price_table()
    for key in (f"{backend}:{model}", f"{model}", f"{backend}:*"):
        if key in table:
            return table[key]
    return None


def price_call(success: Any, backend: str | None, model: str | None) -> float | None:
    """The cost of one answer: the backend's own figure if it gave one, else the table's."""
    if getattr(success, "cost", None) is not None:
        return success.cost
    prices = unit_prices(backend, model)
    if prices is None or success.input_tokens is None or success.output_tokens is None:
        return None
    return (
        success.input_tokens * prices.get("input", 0.0)
        + success.output_tokens * prices.get("output", 0.0)
    ) / 1_000_000

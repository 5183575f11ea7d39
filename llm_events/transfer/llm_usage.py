"""Token details from the ``llm`` package's usage records.

``llm`` keeps each provider's own usage fields (``cached_tokens`` for OpenAI,
``cache_read_input_tokens`` for Anthropic, sometimes nested one level down).  The ``llm``
backend and the import of ``llm``'s logs.db read them the same way, here.
"""

from __future__ import annotations

from typing import Any


def detail_tokens(details: Any) -> dict[str, int | None]:
    """``{"cached_tokens": ..., "reasoning_tokens": ...}`` from ``llm``'s usage details."""
    if not isinstance(details, dict):
        return {"cached_tokens": None, "reasoning_tokens": None}

    def find(*names: str) -> int | None:
        for name in names:
            value = details.get(name)
            if isinstance(value, int):
                return value
            for nested in details.values():
                if isinstance(nested, dict) and isinstance(nested.get(name), int):
                    return nested[name]
        return None

    return {
        "cached_tokens": find("cached_tokens", "cache_read_input_tokens"),
        "reasoning_tokens": find("reasoning_tokens"),
    }

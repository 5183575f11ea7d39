"""Small formatting helpers the pages and the cell renderer share (times, money, JSON).

Numbers and times are formatted as the CLI formats them (:mod:`llm_events.cli.format`), so a
call reads the same in ``llm-events show`` and in the browser.  Nothing here emits HTML:
templates escape (Jinja autoescape) and :mod:`.cells` escapes with ``markupsafe``.
"""

from __future__ import annotations

import json
from typing import Any

from ..cli.format import SHORT_ID, fmt_cost, fmt_int, fmt_ms, fmt_pct, short_id

__all__ = [
    "SHORT_ID",
    "attempt_label",
    "compact_json",
    "fmt_cost",
    "fmt_int",
    "fmt_ms",
    "fmt_pct",
    "pretty_json",
    "short_id",
    "utc_time",
]


def attempt_label(backend: str | None, model: str | None) -> str:
    """``backend / model``; one of them alone when the other is unknown."""
    backend, model = backend or "", model or ""
    if backend and model and model not in backend:
        return f"{backend} / {model}"
    return backend or model or "?"


def pretty_json(text: Any) -> str:
    """JSON text indented for reading; anything that is not JSON comes back as it was."""
    if text is None:
        return ""
    if not isinstance(text, str):
        return json.dumps(text, indent=2, ensure_ascii=False)
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def compact_json(value: Any) -> str:
    """One line of JSON (``{"a": 1}`` -> ``{"a":1}``-like, spaces after separators kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def utc_time(ts: str | None, *, millis: bool = False) -> str:
    """``2026-11-24T22:35:34.433978Z`` -> ``2026-11-24 22:35:34`` (UTC, as stored)."""
    if not ts:
        return "-"
    text = ts.replace("T", " ").rstrip("Z")
    return text[:23] if millis else text[:19]

"""Checking a client's answer and a prompt before they become events.

Events are immutable and every later version must read them, so a value of the wrong type
must never reach the store: a ``str`` in an ``int`` field made ``rebuild``, ``export`` and
``calls`` fail for ever.  The rule, applied before anything of the value is written:

- **coerce what converts exactly** (and say so by changing the object, so the caller sees
  what was recorded): ``"12"`` or ``12.0`` tokens -> ``12``; ``"0.5"`` or ``1`` cost ->
  ``0.5`` / ``1.0``; an ``int`` id -> ``"7"``; ``None`` text -> ``""``;
- **refuse the rest** with :class:`UnstorableValueError` naming the field: ``3.7`` or
  ``"many"`` tokens, negative counts, counts past 2**63 - 1 (SQLite's integers),
  ``"free"`` cost, NaN, a list where a string belongs.  A refused answer is recorded as a
  failed attempt and the call ends with ``call_finished(status="error")``; a refused prompt
  stops the call before anything of it is written.

Nesting deeper than :data:`llm_events.log.redaction.MAX_DEPTH` in ``parsed``, ``raw`` or
metadata is refused by the redaction walk (the JSON readers could not decode it back).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..log.redaction import UnstorableValueError

#: SQLite's INTEGER range: a count past it cannot be projected.
INT_MAX = 2**63 - 1

_COUNTS = (  # the recorded names first: errors name the field the caller set
    "input_tokens",
    "output_tokens",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_AMOUNTS = ("cost", "latency_ms")
_OPTIONAL_TEXT = ("refusal", "finish_reason", "response_id", "response_model", "request_id")
_LISTS_OF_OBJECTS = ("tool_calls", "reasoning")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def count(value: Any, where: str) -> int | None:
    """A token count: ``None`` or an int in 0..2**63-1 (exact conversions accepted)."""
    if value is None:
        return None
    out: int | None = None
    if isinstance(value, bool):
        out = None
    elif (
        isinstance(value, int)
        or isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
    ):
        out = int(value)
    elif isinstance(value, str) and value.strip().isdecimal() and len(value) < 40:
        out = int(value.strip())
    if out is None:
        raise UnstorableValueError(f"{where} is {_shown(value)}: expected a whole number")
    if not 0 <= out <= INT_MAX:
        raise UnstorableValueError(f"{where} is {_shown(value)}: expected 0 to 2**63-1")
    return out


def amount(value: Any, where: str) -> float | None:
    """A cost or a duration: ``None`` or a finite float (numbers and numeric strings)."""
    if value is None:
        return None
    out: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            out = float(value)
        except OverflowError:
            out = None
    elif isinstance(value, str) and len(value) < 40:
        try:
            out = float(value)
        except ValueError:
            out = None
    if out is None or not math.isfinite(out):
        raise UnstorableValueError(f"{where} is {_shown(value)}: expected a finite number")
    return out


def safe_amount(value: Any) -> float | None:
    """:func:`amount`, or ``None`` for a value it refuses (for what we record of a failure)."""
    try:
        return amount(value, "")
    except UnstorableValueError:
        return None


def text(value: Any, where: str, *, optional: bool) -> str | None:
    """A string (``None`` for optional fields, else ``""``); ints and floats as their text."""
    if value is None:
        return None if optional else ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise UnstorableValueError(f"{where} is {_shown(value)}: expected a string")


def check_result(result: Any) -> None:
    """Coerce an :class:`~llm_events.LLMResult`'s typed fields in place, or refuse it."""
    d = result.__dict__
    # the common case (exact types, in range) is tested inline: this runs twice per call
    for name in _COUNTS:
        value = d.get(name)
        if value is not None and not (type(value) is int and 0 <= value <= INT_MAX):
            d[name] = count(value, f"result.{name}")
    for name in _AMOUNTS:
        value = d.get(name)
        if value is not None and not (type(value) is float and math.isfinite(value)):
            d[name] = amount(value, f"result.{name}")
    if not isinstance(d.get("text"), str):
        d["text"] = text(d.get("text"), "result.text", optional=False)
    for name in _OPTIONAL_TEXT:
        if name in d and d[name] is not None and not isinstance(d[name], str):
            d[name] = text(d[name], f"result.{name}", optional=True)
    for name in _LISTS_OF_OBJECTS:
        value = d.get(name)
        if value is None:
            d[name] = []
        elif not value:
            continue
        elif not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
            raise UnstorableValueError(
                f"result.{name} is {_shown(value)}: expected a list of dicts"
            )
    headers = d.get("headers")
    if headers is None:
        d["headers"] = {}
    elif headers:
        if not isinstance(headers, Mapping):
            raise UnstorableValueError(f"result.headers is {_shown(headers)}: expected a dict")
        d["headers"] = {
            text(k, "result.headers key", optional=False): text(
                v, f"result.headers[{k!r}]", optional=False
            )
            for k, v in headers.items()
        }
    stop = d.get("stop_details")
    if stop is not None and not isinstance(stop, Mapping):
        raise UnstorableValueError(f"result.stop_details is {_shown(stop)}: expected a dict")


def check_prompt(prompt: Any) -> None:
    """Coerce a :class:`~llm_events.Prompt`'s typed fields in place, or refuse it."""
    d = prompt.__dict__
    for name in ("system", "user", "origin"):
        if not isinstance(d.get(name), str):
            d[name] = text(d.get(name), f"prompt.{name}", optional=False)
    for name in ("examples", "tags"):
        value = d.get(name)
        if value is None:
            d[name] = []
        elif isinstance(value, (list, tuple)):
            if not all(isinstance(v, str) for v in value):
                d[name] = [
                    text(v, f"prompt.{name}[{i}]", optional=False) for i, v in enumerate(value)
                ]
        else:
            raise UnstorableValueError(
                f"prompt.{name} is {_shown(value)}: expected a list of strings"
            )
    if d.get("vector_confidence") is not None:
        d["vector_confidence"] = amount(d["vector_confidence"], "prompt.vector_confidence")
    for name in ("metadata", "options"):
        value = d.get(name)
        if value is None:
            d[name] = {}
        elif not isinstance(value, Mapping):
            raise UnstorableValueError(f"prompt.{name} is {_shown(value)}: expected a dict")

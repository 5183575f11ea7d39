"""Comparators: decide whether a replayed answer is the ``same`` as the recorded one.

A comparator takes the recorded answer and the new one and returns a :class:`Comparison`
(verdict ``same`` / ``changed`` / ``error``, a score in [0, 1], a short diff).  Built-ins:
``exact``, ``normalized`` (whitespace and case), ``json`` (equality of the parsed value; key
order ignored), ``similarity`` (``difflib`` ratio against a threshold), ``tools`` (the same
functions called with JSON-equal arguments).  Users name their own
as ``module:function``: it gets the two texts and returns a verdict, ``(verdict, score)``,
a bool (True = same), a dict with ``verdict``/``score``/``diff``, or a :class:`Comparison`.
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

VERDICTS = ("same", "changed", "error")
DIFF_CHARS = 400


@dataclass(frozen=True)
class Answer:
    """One side of a comparison: the text, the parsed value when the call parsed it, and
    the tool calls the model made (neutral dicts: ``name``, ``arguments`` JSON text, ``id``)."""

    text: str
    parsed: Any = None
    tool_calls: tuple[dict[str, Any], ...] | list[dict[str, Any]] = ()


@dataclass(frozen=True)
class Comparison:
    verdict: str
    score: float | None = None
    diff: str = ""
    reason: str = ""


Comparator = Callable[[Answer, Answer], Comparison]


def short_diff(old: str, new: str, limit: int = DIFF_CHARS) -> str:
    """A compact line diff (``-`` recorded, ``+`` replayed), cut to ``limit`` characters."""
    if old == new:
        return ""
    old_lines, new_lines = old.splitlines() or [""], new.splitlines() or [""]
    lines = [
        line
        for line in difflib.unified_diff(old_lines, new_lines, lineterm="", n=0)
        if not line.startswith(("---", "+++", "@@"))
    ]
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ratio(old: str, new: str) -> float:
    """Similarity of two texts in [0, 1] (1.0 = identical)."""
    if old == new:
        return 1.0
    return round(difflib.SequenceMatcher(None, old, new).ratio(), 4)


def exact(old: Answer, new: Answer) -> Comparison:
    if old.text == new.text:
        return Comparison("same", 1.0)
    return Comparison("changed", ratio(old.text, new.text), short_diff(old.text, new.text))


_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def normalized(old: Answer, new: Answer) -> Comparison:
    a, b = normalize(old.text), normalize(new.text)
    if a == b:
        return Comparison("same", 1.0)
    return Comparison("changed", ratio(a, b), short_diff(old.text, new.text))


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n\s*```\s*$", re.S)


class MalformedOutput(ValueError):
    """The answer cannot be read the way the comparator needs (e.g. not JSON)."""


def parse_json(answer: Answer, side: str) -> Any:
    """The parsed value of an answer: the recorded ``parsed`` or its text read as JSON."""
    if answer.parsed is not None:
        return answer.parsed
    text = answer.text
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except ValueError as e:
        preview = " ".join(answer.text.split())[:60]
        raise MalformedOutput(f"{side} answer is not JSON ({e.msg}): {preview!r}") from None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def json_equal(old: Answer, new: Answer) -> Comparison:
    try:
        a = parse_json(old, "recorded")
        b = parse_json(new, "replayed")
    except MalformedOutput as e:
        return Comparison("error", None, "", str(e))
    if a == b and type(a) is type(b):
        return Comparison("same", 1.0)
    ca, cb = _canonical(a), _canonical(b)
    return Comparison("changed", ratio(ca, cb), short_diff(ca, cb))


def similarity(threshold: float = 0.9) -> Comparator:
    """``same`` when the texts' similarity ratio is at least ``threshold``."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, not {threshold}")

    def compare(old: Answer, new: Answer) -> Comparison:
        score = ratio(old.text, new.text)
        if score >= threshold:
            return Comparison("same", score, short_diff(old.text, new.text))
        return Comparison("changed", score, short_diff(old.text, new.text))

    return compare


def _call_key(call: dict[str, Any]) -> tuple[str, str]:
    """(name, canonical arguments): JSON arguments compared as values, others as text."""
    name = str(call.get("name") or "")
    args = call.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return name, args  # not JSON: compared as the text it is
    return name, _canonical(args)


def _call_text(key: tuple[str, str]) -> str:
    return f"{key[0]}({key[1]})"


def tools(old: Answer, new: Answer) -> Comparison:
    """``same`` when both answers call the same functions with JSON-equal arguments.

    Calls are matched by name and arguments whatever their order (and whatever their ids,
    which differ from run to run); the score is the share of calls matched; the reason says
    which calls are missing, new, or called with other arguments.
    """
    a = sorted(_call_key(c) for c in old.tool_calls)
    b = sorted(_call_key(c) for c in new.tool_calls)
    if not a and not b:
        return Comparison("same", 1.0, "", "neither answer called a tool")
    if a == b:
        return Comparison("same", 1.0)
    left, right = list(a), list(b)
    for key in a:
        if key in right:
            left.remove(key)
            right.remove(key)
    matched = len(a) - len(left)
    score = round(2 * matched / (len(a) + len(b)), 4)
    reasons = []
    changed_names = sorted({n for n, _ in left} & {n for n, _ in right})
    for name in changed_names:
        was = [args for n, args in left if n == name]
        now = [args for n, args in right if n == name]
        reasons.append(f"{name} called with other arguments: {', '.join(was)} -> {', '.join(now)}")
    missing = [k for k in left if k[0] not in changed_names]
    added = [k for k in right if k[0] not in changed_names]
    if missing:
        reasons.append("no longer called: " + ", ".join(map(_call_text, missing)))
    if added:
        reasons.append("newly called: " + ", ".join(map(_call_text, added)))
    diff = "\n".join([*(f"-{_call_text(k)}" for k in left), *(f"+{_call_text(k)}" for k in right)])
    if len(diff) > DIFF_CHARS:
        diff = diff[: DIFF_CHARS - 1] + "…"
    return Comparison("changed", score, diff, "; ".join(reasons))


BUILTINS = ("exact", "normalized", "json", "similarity", "tools")


def get_comparator(name: str | Callable[..., Any], *, threshold: float = 0.9) -> Comparator:
    """The comparator ``name`` names: a built-in, ``module:function``, or a callable."""
    if callable(name):
        return user_comparator(name)
    key = name.strip().lower()
    if key == "exact":
        return exact
    if key in ("normalized", "normalised"):
        return normalized
    if key == "json":
        return json_equal
    if key == "tools":
        return tools
    if key == "similarity":
        return similarity(threshold)
    if ":" in name:
        return user_comparator(load_dotted(name.strip()))
    raise ValueError(
        f"unknown comparator {name!r}; use one of {', '.join(BUILTINS)} or module:function"
    )


def comparator_label(name: str | Callable[..., Any], threshold: float = 0.9) -> str:
    if callable(name):
        return getattr(name, "__qualname__", repr(name))
    return f"similarity>={threshold}" if name.strip().lower() == "similarity" else name


def load_dotted(path: str) -> Any:
    """Import ``package.module:function`` (ValueError naming what is missing)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not a path like 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import comparator module {module_name!r}: {e}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"comparator module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"comparator {path!r} is a {type(obj).__name__}, not a function")
    return obj


def user_comparator(fn: Callable[..., Any]) -> Comparator:
    """Adapt ``fn(recorded_text, replayed_text)`` to a comparator (its result is checked)."""

    def compare(old: Answer, new: Answer) -> Comparison:
        return coerce(fn(old.text, new.text), old, new)

    compare.__qualname__ = getattr(fn, "__qualname__", "user")
    return compare


def coerce(value: Any, old: Answer, new: Answer) -> Comparison:
    """Turn what a user comparator returned into a :class:`Comparison` (TypeError if not)."""
    if isinstance(value, Comparison):
        result = value
    elif isinstance(value, bool):
        result = Comparison("same" if value else "changed", 1.0 if value else 0.0)
    elif isinstance(value, str):
        result = Comparison(value)
    elif isinstance(value, tuple) and len(value) == 2:
        result = Comparison(str(value[0]), None if value[1] is None else float(value[1]))
    elif isinstance(value, dict) and "verdict" in value:
        score = value.get("score")
        result = Comparison(
            str(value["verdict"]),
            None if score is None else float(score),
            str(value.get("diff", "")),
            str(value.get("reason", "")),
        )
    else:
        raise TypeError(
            f"comparator returned {type(value).__name__}; expected a verdict string, "
            "(verdict, score), a bool or a dict with 'verdict'"
        )
    if result.verdict not in VERDICTS:
        raise TypeError(
            f"comparator returned verdict {result.verdict!r}; expected one of {VERDICTS}"
        )
    if result.verdict == "changed" and not result.diff:
        result = Comparison(
            result.verdict, result.score, short_diff(old.text, new.text), result.reason
        )
    return result

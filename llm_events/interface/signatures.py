"""Calling a user's ``generate`` with only the arguments its signature takes.

The seed's clients define ``generate(self, prompt, *, context_builder)``; llm-events passes
more (``parse_fn``, ``backend``).  A user's method that does not take them must still work
as ``remote`` or ``local`` of a router, inside ``with_retry`` or a fallback chain: what it
does not take is applied by the recorder (``parse_fn``) or has no meaning for it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=256)
def _accepts(fn: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    """(keyword names ``fn`` takes, whether it takes ``**kwargs``)."""
    try:
        sig = inspect.signature(fn, follow_wrapped=False)
    except (TypeError, ValueError):  # a builtin or C callable: pass everything
        return frozenset(), True
    names, var_kw = set(), False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return frozenset(names), var_kw


def accepted_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without the names ``fn`` cannot take (all of them if it takes ``**kw``)."""
    target = getattr(fn, "__func__", fn)  # a bound method: its function (hashable, cached)
    try:
        names, var_kw = _accepts(target)
    except TypeError:  # unhashable callable
        names, var_kw = _accepts.__wrapped__(target)
    if var_kw:
        return kwargs
    return {k: v for k, v in kwargs.items() if k in names}

"""Token estimates, for routing and for answers whose backend reported no usage."""

from __future__ import annotations

from collections.abc import Iterable


def estimate_tokens(text: str) -> int:
    """About four characters a token: the usual rule of thumb for English text and code."""
    return (len(text) + 3) // 4


def estimate_prompt_tokens(system: str, user: str, examples: Iterable[str] = ()) -> int:
    return (
        estimate_tokens(system) + estimate_tokens(user) + sum(estimate_tokens(e) for e in examples)
    )

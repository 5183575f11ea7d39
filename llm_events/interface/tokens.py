"""Token estimates, for routing and for answers whose backend reported no usage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def estimate_tokens(text: str) -> int:
    """About four characters a token: the usual rule of thumb for English text and code."""
    return (len(text) + 3) // 4


def estimate_prompt_tokens(system: str, user: str, examples: Iterable[str] = ()) -> int:
    return (
        estimate_tokens(system) + estimate_tokens(user) + sum(estimate_tokens(e) for e in examples)
    )


def estimate_request_tokens(prompt: Any) -> int:
    """Estimated input tokens of a whole request: system, context, then every message's
    text, tool calls and results (the user text alone when there are no messages) and the
    tool definitions.  Images and files count nothing: their cost is provider-specific."""
    total = estimate_tokens(prompt.system or "") + sum(estimate_tokens(e) for e in prompt.examples)
    if not prompt.messages:
        total += estimate_tokens(prompt.user or "")
    for message in prompt.messages:
        for part in message.get("parts", ()):
            kind = part.get("type")
            if kind in ("text", "reasoning"):
                total += estimate_tokens(part.get("content") or "")
            elif kind == "tool_call":
                total += estimate_tokens(part.get("name", "") + part.get("arguments", ""))
            elif kind == "tool_call_response":
                response = part.get("response")
                total += estimate_tokens(response if isinstance(response, str) else repr(response))
    for tool in prompt.tools:
        total += estimate_tokens(repr(tool))
    return total

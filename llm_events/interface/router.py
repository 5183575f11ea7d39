"""``LLMRouter``: choose between a remote and a local client per prompt, fall back once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..recording.recorder import call_scope
from .client import LLMClient, check_origin
from .prompt import LLMResult, Prompt
from .signatures import accepted_kwargs
from .tokens import estimate_request_tokens


class LLMRouter(LLMClient):
    """Route each prompt to ``remote`` or ``local``; if that one raises, try the other once.

    Rules, in order: tags ``low_roi`` -> local and ``high_roi`` -> remote; a
    ``vector_confidence`` of 0.8 or more forces remote, 0.2 or less local; otherwise remote
    when the estimated token count exceeds ``size_threshold``, else local.  A backend that
    failed within ``failure_cooldown`` seconds is avoided while the other one has not.
    The choice is recorded as ``route_chosen``, the switch as ``fallback_taken``.
    """

    _records_itself = True
    backend_name = "router"

    def __init__(
        self,
        remote: LLMClient,
        local: LLMClient,
        *,
        size_threshold: int = 1000,
        failure_cooldown: float = 60.0,
        store: Any = None,
        on_store_error: str | None = None,
    ) -> None:
        for role, client in (("remote", remote), ("local", local)):
            if not callable(getattr(client, "generate", None)):
                raise TypeError(
                    f"LLMRouter {role} must be a client (an object with generate()), "
                    f"not {type(client).__name__}"
                )
        for option, value in (
            ("size_threshold", size_threshold),
            ("failure_cooldown", failure_cooldown),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise TypeError(f"LLMRouter {option} must be a number, not {value!r}")
        super().__init__("router", store=store, on_store_error=on_store_error)
        self.remote = remote
        self.local = local
        self.size_threshold = size_threshold
        self.failure_cooldown = failure_cooldown
        self._failed_at: dict[str, float] = {}

    @property
    def name(self) -> str:
        return f"router({self.remote.name}|{self.local.name})"

    def choose(self, prompt: Prompt) -> tuple[str, str, int]:
        """``(role, reason, estimated_tokens)`` for ``prompt``; role is remote or local."""
        tokens = estimate_request_tokens(prompt)
        tags = set(prompt.tags)
        if "low_roi" in tags:
            role, reason = "local", "tags"
        elif "high_roi" in tags:
            role, reason = "remote", "tags"
        elif prompt.vector_confidence is not None and prompt.vector_confidence >= 0.8:
            role, reason = "remote", "confidence"
        elif prompt.vector_confidence is not None and prompt.vector_confidence <= 0.2:
            role, reason = "local", "confidence"
        else:
            role = "remote" if tokens > self.size_threshold else "local"
            reason = "size"
        other = "local" if role == "remote" else "remote"
        if self._cooling(role) and not self._cooling(other):
            role, reason = other, "cooldown"
        return role, reason, tokens

    def _cooling(self, role: str) -> bool:
        failed = self._failed_at.get(role)
        return failed is not None and time.monotonic() - failed < self.failure_cooldown

    def _client(self, role: str) -> LLMClient:
        return self.remote if role == "remote" else self.local

    def generate(
        self,
        prompt: Prompt,
        *,
        context_builder: Any,
        parse_fn: Callable[[str], Any] | None = None,
        backend: str | None = None,
    ) -> LLMResult:
        check_origin(prompt)
        with call_scope(self.store, self.on_store_error, record=self.log_prompts) as (
            scope,
            _owner,
        ):
            scope.start(prompt, client=self.name, model=None)
            role, reason, tokens = self.choose(prompt)
            other = "local" if role == "remote" else "remote"
            scope.route(role, reason, ["remote", "local"], tokens)
            first = self._client(role)
            try:
                return _generate(first, prompt, context_builder, parse_fn)
            except Exception as exc:
                self._failed_at[role] = time.monotonic()
                second = self._client(other)
                scope.fallback(first.name, second.name, type(exc).__name__)
            try:
                return _generate(second, prompt, context_builder, parse_fn)
            except Exception:
                self._failed_at[other] = time.monotonic()
                raise


def _generate(
    client: Any, prompt: Prompt, context_builder: Any, parse_fn: Callable[[str], Any] | None
) -> LLMResult:
    """``client.generate`` with only the arguments it takes (a seed-style client takes no
    ``parse_fn``: then ``parse_fn`` is applied to its answer here)."""
    kwargs = accepted_kwargs(
        client.generate, {"context_builder": context_builder, "parse_fn": parse_fn}
    )
    result = client.generate(prompt, **kwargs)
    if parse_fn is not None and "parse_fn" not in kwargs and isinstance(result, LLMResult):
        try:
            result.parsed = parse_fn(result.text)
        except Exception:
            result.parsed = None
    return result

"""Client specs: ``backend:model`` strings, as the CLI, settings and replay take them.

``echo``, ``echo:upper``, ``openai:gpt-4o-mini``, ``recorded:PATH`` name a registered
backend and its model.  ``package.module:attr`` names users' own: an :class:`LLMClient`
instance, an LLMClient subclass (made with no arguments), or a function taking a Prompt and
returning a str or an :class:`LLMResult`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..backends import available_backends, get_backend, load_dotted
from .client import LLMClient, as_result
from .prompt import LLMResult, Prompt


class FunctionClient(LLMClient):
    """Wraps ``fn(prompt) -> str | LLMResult`` as a client (recorded like any other)."""

    def __init__(self, fn: Callable[[Prompt], Any], name: str | None = None, **options: Any):
        label = name or getattr(fn, "__qualname__", None) or repr(fn)
        super().__init__(label, **options)
        self.fn = fn

    def backend_label(self) -> str:
        return "function"

    def _generate(self, prompt: Prompt, *, context_builder: Any) -> LLMResult:
        return as_result(self.fn(prompt))


def split_spec(spec: str) -> tuple[str, str | None]:
    backend, sep, model = spec.partition(":")
    return backend, (model if sep else None)


def client_from_spec(spec: str | LLMClient, **options: Any) -> LLMClient:
    """Make the client a spec names; ValueError with the known backends if it names none."""
    if isinstance(spec, LLMClient):
        return spec
    spec = spec.strip()
    if not spec:
        raise ValueError("empty client spec")
    backend, model = split_spec(spec)
    if backend.lower() in available_backends():
        factory = get_backend(backend)
        if backend.lower() == "echo" and model == "upper":
            return factory(None, upper=True, **options)
        return factory(model or None, **options) if model or options else factory()
    if model is not None and ("." in backend or model):
        try:
            target = load_dotted(spec)
        except ValueError as e:
            raise ValueError(
                f"unknown client spec {spec!r}: not a backend "
                f"({', '.join(available_backends())}) and not an importable module:attr ({e})"
            ) from None
        return client_from_object(target, spec)
    raise ValueError(
        f"unknown client spec {spec!r}; use BACKEND[:MODEL] with a backend among "
        f"{', '.join(available_backends())}, or package.module:attr"
    )


def client_from_object(target: Any, label: str) -> LLMClient:
    if isinstance(target, LLMClient):
        return target
    if inspect.isclass(target) and issubclass(target, LLMClient):
        return target()
    if callable(target):
        return FunctionClient(target, name=label)
    raise ValueError(
        f"{label!r} is a {type(target).__name__}; expected an LLMClient, a subclass or a function"
    )

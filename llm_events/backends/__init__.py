"""The backend registry: names -> client factories, looked up case-insensitively.

A factory is called as ``factory(model=None, **options)`` and returns an :class:`LLMClient`.
Entries may be given as ``"package.module:attr"`` strings so that a backend's dependencies
are imported only when it is used.  Register your own with :func:`register_backend` or the
``@backend("name")`` decorator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Factory = Callable[..., Any]

_REGISTRY: dict[str, Factory | str] = {
    "echo": "llm_events.backends.echo:EchoBackend",
    "openai": "llm_events.backends.openai:OpenAIBackend",
    "anthropic": "llm_events.backends.anthropic:AnthropicBackend",
    "ollama": "llm_events.backends.ollama:OllamaBackend",
    "vllm": "llm_events.backends.vllm:VLLMBackend",
    "llm": "llm_events.backends.llm_package:LLMPackageBackend",
    "recorded": "replay.cassette:recorded_backend",
}


def register_backend(name: str, factory: Factory | str) -> None:
    """Make ``factory`` available as backend ``name`` (replacing any earlier one)."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"invalid backend name {name!r}")
    if not isinstance(factory, str) and not callable(factory):
        raise ValueError(
            f"backend {name!r}: {factory!r} is neither a client class, a factory function "
            "nor a dotted path to one ('package.module:factory')"
        )
    _REGISTRY[name.lower()] = factory


def backend(name: str) -> Callable[[Factory], Factory]:
    """Decorator: ``@backend("mine")`` registers a client class or factory function."""

    def register(factory: Factory) -> Factory:
        register_backend(name, factory)
        return factory

    return register


def load_dotted(path: str) -> Any:
    """Import ``package.module:attr`` (or ``package.module.attr``)."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not a dotted path like 'package.module:attr'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import {module_name!r} (from {path!r}): {e}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def get_backend(name: str) -> Factory:
    """The factory registered as ``name`` (any case); ValueError for unknown names."""
    entry = _REGISTRY.get(name.lower())
    if entry is None:
        raise ValueError(
            f"unknown LLM backend {name!r}; known backends: {', '.join(available_backends())}"
        )
    if isinstance(entry, str):
        path, entry = entry, load_dotted(entry)
        if not callable(entry):
            raise ValueError(
                f"backend {name!r}: {path!r} is a {type(entry).__name__}, not a client class "
                "or factory function"
            )
        _REGISTRY[name.lower()] = entry
    return entry


def available_backends() -> list[str]:
    return sorted(_REGISTRY)

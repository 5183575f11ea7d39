"""``client_from_settings``: the seed's way to build the configured client (or router)."""

from __future__ import annotations

import json
import os
from typing import Any

from ..backends import get_backend, register_backend
from .client import LLMClient
from .router import LLMRouter
from .specs import client_from_spec


def _setting(settings: Any, *names: str) -> Any:
    for name in names:
        if isinstance(settings, dict) and settings.get(name) is not None:
            return settings[name]
        value = getattr(settings, name, None)
        if value is not None and not isinstance(settings, dict):
            return value
    return None


def client_from_settings(settings: Any = None, *, size_threshold: int = 1000) -> LLMClient:
    """The preferred backend's client, or a router over it and the fallback.

    Reads ``preferred_llm_backend`` (env ``LLM_BACKEND``, default ``openai``),
    ``llm_fallback_backend`` (env ``LLM_FALLBACK_BACKEND``) and extra backends as name ->
    dotted factory path (``available_backends``, env ``AVAILABLE_LLM_BACKENDS`` as JSON).
    A name may also be a full spec such as ``ollama:llama3``.
    """
    extra = _setting(settings, "available_backends", "available_llm_backends")
    if extra is None and os.environ.get("AVAILABLE_LLM_BACKENDS"):
        try:
            extra = json.loads(os.environ["AVAILABLE_LLM_BACKENDS"])
        except ValueError as e:
            raise ValueError(f"AVAILABLE_LLM_BACKENDS is not valid JSON: {e}") from None
    if extra is not None and not isinstance(extra, dict):
        raise ValueError(
            "AVAILABLE_LLM_BACKENDS must map names to factories, as a JSON object like "
            f'{{"mine": "package.module:factory"}}, not a {type(extra).__name__}'
        )
    for name, path in (extra or {}).items():
        register_backend(name, path)
    preferred = (
        _setting(settings, "preferred_llm_backend", "llm_backend")
        or os.environ.get("LLM_BACKEND")
        or "openai"
    )
    fallback = _setting(settings, "llm_fallback_backend", "fallback_llm_backend") or os.environ.get(
        "LLM_FALLBACK_BACKEND"
    )
    primary = _make(str(preferred))
    if not fallback:
        return primary
    return LLMRouter(remote=primary, local=_make(str(fallback)), size_threshold=size_threshold)


def _make(name: str) -> LLMClient:
    if ":" not in name:
        get_backend(name)  # ValueError for unknown names, listing the known ones
    return client_from_spec(name)

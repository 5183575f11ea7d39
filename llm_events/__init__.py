"""llm-events: LLM traffic recorded as an immutable event log in SQLite.

The seed's API (``Prompt``, ``LLMResult``, ``LLMClient``, ``ContextBuilder``, ``with_retry``,
``PromptDB``, ``LLMRouter``, ``client_from_settings``) records every prompt, attempt, retry,
fallback and result into the current store (see :func:`configure`).

Names are imported lazily on first use (PEP 562): ``import llm_events`` stays cheap, so the
``llm-events`` command starts fast; ``from llm_events import X`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends import available_backends, backend, get_backend, register_backend
    from .client import LLMClient
    from .config import configure, default_db_path, flush, open_store, resolve_db_path
    from .context_builder import ContextBuilder, KeywordRetriever, Retriever
    from .events import ContextItem
    from .interrupted import record_interrupted
    from .prompt import LLMResult, Prompt
    from .prompt_db import PromptDB, fetch_logs
    from .recorder import RecordingError, RecordingLostWarning, call_options, current_call
    from .redaction import Redactor, UnstorableValueError
    from .retry import with_retry, with_retry_async
    from .router import LLMRouter
    from .settings import client_from_settings
    from .specs import client_from_spec
    from .store import EventStore, StoreError

#: public name -> submodule that defines it
_LAZY: dict[str, str] = {
    "available_backends": "backends",
    "backend": "backends",
    "get_backend": "backends",
    "register_backend": "backends",
    "LLMClient": "client",
    "configure": "config",
    "default_db_path": "config",
    "flush": "config",
    "open_store": "config",
    "resolve_db_path": "config",
    "ContextBuilder": "context_builder",
    "KeywordRetriever": "context_builder",
    "Retriever": "context_builder",
    "ContextItem": "events",
    "record_interrupted": "interrupted",
    "LLMResult": "prompt",
    "Prompt": "prompt",
    "PromptDB": "prompt_db",
    "fetch_logs": "prompt_db",
    "RecordingError": "recorder",
    "RecordingLostWarning": "recorder",
    "call_options": "recorder",
    "current_call": "recorder",
    "Redactor": "redaction",
    "UnstorableValueError": "redaction",
    "with_retry": "retry",
    "with_retry_async": "retry",
    "LLMRouter": "router",
    "client_from_settings": "settings",
    "client_from_spec": "specs",
    "EventStore": "store",
    "StoreError": "store",
}

__version__ = "0.1.0"

__all__ = [
    "ContextBuilder",
    "ContextItem",
    "EventStore",
    "KeywordRetriever",
    "LLMClient",
    "LLMResult",
    "LLMRouter",
    "Prompt",
    "PromptDB",
    "RecordingError",
    "RecordingLostWarning",
    "Redactor",
    "Retriever",
    "StoreError",
    "UnstorableValueError",
    "available_backends",
    "backend",
    "call_options",
    "client_from_settings",
    "client_from_spec",
    "configure",
    "current_call",
    "default_db_path",
    "fetch_logs",
    "flush",
    "get_backend",
    "open_store",
    "record_interrupted",
    "register_backend",
    "resolve_db_path",
    "with_retry",
    "with_retry_async",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

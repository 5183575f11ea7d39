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
    from .capture.transport import (
        AsyncRecordingTransport,
        RecordingTransport,
        async_httpx_client,
        httpx_client,
    )
    from .interface.client import LLMClient
    from .interface.context_builder import ContextBuilder, KeywordRetriever, Retriever
    from .interface.messages import MessageError
    from .interface.prompt import LLMResult, Prompt
    from .interface.prompt_db import PromptDB, fetch_logs
    from .interface.retry import with_retry, with_retry_async
    from .interface.router import LLMRouter
    from .interface.settings import client_from_settings
    from .interface.specs import client_from_spec
    from .log.events import ContextItem
    from .log.interrupted import record_interrupted
    from .log.redaction import Redactor, UnstorableValueError
    from .log.store import EventStore, StoreError
    from .recording.config import configure, default_db_path, flush, open_store, resolve_db_path
    from .recording.recorder import RecordingError, RecordingLostWarning, call_options, current_call

#: public name -> submodule that defines it
_LAZY: dict[str, str] = {
    "available_backends": "backends",
    "backend": "backends",
    "get_backend": "backends",
    "register_backend": "backends",
    "LLMClient": "interface.client",
    "httpx_client": "capture.transport",
    "async_httpx_client": "capture.transport",
    "RecordingTransport": "capture.transport",
    "AsyncRecordingTransport": "capture.transport",
    "configure": "recording.config",
    "default_db_path": "recording.config",
    "flush": "recording.config",
    "open_store": "recording.config",
    "resolve_db_path": "recording.config",
    "ContextBuilder": "interface.context_builder",
    "KeywordRetriever": "interface.context_builder",
    "Retriever": "interface.context_builder",
    "ContextItem": "log.events",
    "record_interrupted": "log.interrupted",
    "LLMResult": "interface.prompt",
    "MessageError": "interface.messages",
    "Prompt": "interface.prompt",
    "PromptDB": "interface.prompt_db",
    "fetch_logs": "interface.prompt_db",
    "RecordingError": "recording.store_access",
    "RecordingLostWarning": "recording.store_access",
    "call_options": "recording.recorder",
    "current_call": "recording.recorder",
    "Redactor": "log.redaction",
    "UnstorableValueError": "log.redaction",
    "with_retry": "interface.retry",
    "with_retry_async": "interface.retry",
    "LLMRouter": "interface.router",
    "client_from_settings": "interface.settings",
    "client_from_spec": "interface.specs",
    "EventStore": "log.store",
    "StoreError": "log.store",
}

__version__ = "0.1.0"

__all__ = [
    "AsyncRecordingTransport",
    "ContextBuilder",
    "ContextItem",
    "EventStore",
    "KeywordRetriever",
    "LLMClient",
    "LLMResult",
    "LLMRouter",
    "MessageError",
    "Prompt",
    "PromptDB",
    "RecordingTransport",
    "RecordingError",
    "RecordingLostWarning",
    "Redactor",
    "Retriever",
    "StoreError",
    "UnstorableValueError",
    "async_httpx_client",
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
    "httpx_client",
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

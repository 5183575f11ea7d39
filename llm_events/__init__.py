"""llm-events: LLM traffic recorded as an immutable event log in SQLite.

The seed's API (``Prompt``, ``LLMResult``, ``LLMClient``, ``ContextBuilder``, ``with_retry``,
``PromptDB``, ``LLMRouter``, ``client_from_settings``) records every prompt, attempt, retry,
fallback and result into the current store (see :func:`configure`).
"""

from .backends import available_backends, backend, get_backend, register_backend
from .client import LLMClient
from .config import configure, default_db_path, open_store, resolve_db_path
from .context_builder import ContextBuilder, KeywordRetriever, Retriever
from .events import ContextItem
from .prompt import LLMResult, Prompt
from .prompt_db import PromptDB, fetch_logs
from .recorder import RecordingError, RecordingLostWarning, call_options, current_call
from .redaction import Redactor, UnstorableValueError
from .retry import with_retry
from .router import LLMRouter
from .settings import client_from_settings
from .specs import client_from_spec
from .store import EventStore, StoreError

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
    "get_backend",
    "open_store",
    "register_backend",
    "resolve_db_path",
    "with_retry",
]

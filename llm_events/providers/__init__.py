"""Wire-format adapters: the neutral conversation shape <-> each provider's HTTP bodies.

One adapter per wire format (``openai_chat``, ``openai_completions``,
``openai_responses``, ``anthropic``, ``ollama``), each a stateless object with ``build_request``, ``parse_request``,
``parse_response``, ``stream_parser`` and ``parse_error`` (see :mod:`.base`).  The
backends, the httpx transport and the recording proxy all use them, so a call is recorded
the same way whichever of them carried it.  Only log-level types are imported here.

>>> adapter_for_path("/v1/chat/completions").name
'openai_chat'
"""

from __future__ import annotations

import importlib

from .base import (
    Adapter,
    Blobs,
    StreamFormatError,
    StreamParser,
    is_retryable_status,
    kept_headers,
    parse_error,
    parse_retry_after,
)
from .lines import LineSplitter, SSEDecoder, SSEEvent, SSEStream, aiter_lines, iter_lines, iter_sse

__all__ = [
    "Adapter",
    "Blobs",
    "LineSplitter",
    "SSEDecoder",
    "SSEEvent",
    "SSEStream",
    "StreamFormatError",
    "StreamParser",
    "adapter_for_path",
    "aiter_lines",
    "get_adapter",
    "is_retryable_status",
    "iter_lines",
    "iter_sse",
    "kept_headers",
    "names",
    "parse_error",
    "parse_retry_after",
]

_MODULES = {
    "openai_chat": "openai_chat",
    "openai_completions": "openai_completions",
    "openai_responses": "openai_responses",
    "anthropic": "anthropic",
    "ollama": "ollama",
}

#: Path endings and the format they speak (matched after any prefix such as ``/vllm/v1``).
_PATHS = (
    ("/chat/completions", "openai_chat"),
    ("/completions", "openai_completions"),
    ("/responses", "openai_responses"),
    ("/v1/messages", "anthropic"),
    ("/api/chat", "ollama"),
    ("/api/generate", "ollama"),
)


def names() -> list[str]:
    return list(_MODULES)


def get_adapter(name: str) -> Adapter:
    """The adapter for a format name (``KeyError`` for an unknown one)."""
    module = importlib.import_module(f".{_MODULES[name]}", __name__)
    return module.adapter


def adapter_for_path(path: str) -> Adapter | None:
    """The adapter for a request path: ``.../chat/completions`` -> ``openai_chat``,
    ``.../completions`` -> ``openai_completions``, ``.../responses`` -> ``openai_responses``,
    ``/v1/messages`` -> ``anthropic``, ``/api/chat`` and ``/api/generate`` -> ``ollama``;
    ``None`` for any other path (``/v1/messages/count_tokens``, ``/v1/embeddings``,
    ``/v1/responses/{id}``...)."""
    path = path.partition("?")[0].rstrip("/")
    for ending, name in _PATHS:
        if path.endswith(ending):
            return get_adapter(name)
    return None

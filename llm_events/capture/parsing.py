"""Where capture meets the provider adapters (``llm_events.providers``).

The proxy and the transport see wire traffic; the adapters turn it into the neutral shapes
of :mod:`llm_events.log.conversation`, the same code the backends use, so a call is recorded
alike whichever path carried it.  This module names the little capture needs of them.
"""

from __future__ import annotations

from typing import Any

from ..log.conversation import ChatRequest
from ..providers import Adapter, StreamParser, adapter_for_path, kept_headers

__all__ = ["Adapter", "StreamParser", "adapter_for_path", "kept_headers", "request_of"]


def request_of(adapter: Adapter, body: dict[str, Any]) -> tuple[ChatRequest, dict[str, bytes]]:
    """The neutral request and the inline blobs (sha256 -> bytes) of a wire body."""
    request, blobs = adapter.parse_request(body)
    return request, dict(blobs or {})

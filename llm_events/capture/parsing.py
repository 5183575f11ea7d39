"""Where capture meets the provider adapters (``llm_events.providers``).

The proxy and the transport see wire traffic; the adapters turn it into the neutral shapes
of :mod:`llm_events.log.conversation`, the same code the backends use, so a call is recorded
alike whichever path carried it.  This module names the little capture needs of them.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from ..log.conversation import ChatRequest
from ..providers import Adapter, StreamParser, adapter_for_path, kept_headers

__all__ = ["Adapter", "StreamParser", "adapter_for_path", "kept_headers", "request_of"]


def request_of(adapter: Adapter, body: dict[str, Any]) -> tuple[ChatRequest, dict[str, bytes]]:
    """The neutral request and the inline blobs (sha256 -> bytes) of a wire body."""
    request, blobs = adapter.parse_request(body)
    model = storable_str(request.model)
    if model is not request.model:
        request = msgspec.structs.replace(request, model=model)
    return request, dict(blobs or {})


def storable_str(model: Any) -> str | None:
    """A name off the wire (a model, an id) as the events can hold it, whatever was sent: a
    number or an object as its JSON (``5`` -> ``"5"``), a lone surrogate (``"\\ud800"`` in
    the JSON) escaped.  The bytes go on as they came; this is only what is recorded."""
    if model is None:
        return None
    if not isinstance(model, str):
        model = json.dumps(model, ensure_ascii=False, default=repr)
    try:
        model.encode("utf-8")
    except UnicodeEncodeError:
        model = model.encode("utf-8", "backslashreplace").decode("utf-8")
    return model

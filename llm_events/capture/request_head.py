"""What capture knows of a request before it is sent: its head and body as a client sent
them, and what an application attached to it with ``X-LLM-Events-*`` headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Request headers that carry credentials: sent upstream, never recorded.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"}
)
#: Request headers that annotate the call; recorded, never sent upstream.
ANNOTATION_PREFIX = "x-llm-events-"


@dataclass
class Request:
    """What a client sent, as capture sees it (header names lower-cased)."""

    method: str
    path: str
    url: str
    upstream: str
    headers: dict[str, str]
    body: bytes
    #: the provider path that names the wire format (``/v1/chat/completions``)
    provider_path: str = ""
    #: who sent it (the proxy: the peer address; the transport: the process)
    client: str = ""


@dataclass
class Annotations:
    """What an application attached with ``X-LLM-Events-*`` headers."""

    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def annotations(headers: dict[str, str]) -> Annotations:
    """Tags, session, user and metadata (JSON object) from ``X-LLM-Events-*`` headers."""
    out = Annotations()
    tags = headers.get("x-llm-events-tags")
    if tags:
        out.tags = [t.strip() for t in tags.split(",") if t.strip()]
    meta = headers.get("x-llm-events-metadata")
    if meta:
        try:
            value = json.loads(meta)
        except ValueError:
            value = None
        out.metadata = value if isinstance(value, dict) else {"metadata": meta}
    for name in ("session", "user"):
        value = headers.get(f"x-llm-events-{name}")
        if value:
            out.metadata[name] = value
    return out

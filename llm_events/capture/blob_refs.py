"""Inline bytes in a recorded wire body, by reference: stored once, put back for a re-send.

A provider body carrying an image (a ``data:`` URL, Anthropic's base64 source) is recorded
with the bytes replaced by ``llm-events-blob:sha256:<digest>``; the bytes go to ``blobs``
once, and ``replay --to-url`` resolves the references to send the exact body again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from typing import Any

from ..log.blobs import Blob
from ..log.conversation import (
    BlobPart,
    Message,
)

#: What an inline payload the blobs table holds becomes in a recorded request body.
BLOB_REF = "llm-events-blob:sha256:"
_MIN_INLINE = 64


def blob_refs(value: Any, blobs: dict[str, bytes]) -> Any:
    """``value`` with each base64 payload (bare or in a ``data:`` URL) whose bytes are in
    ``blobs`` replaced by ``llm-events-blob:sha256:<digest>``: a large image is stored once,
    and :func:`resolve_blob_refs` puts the bytes back for an exact re-send."""
    if isinstance(value, dict):
        return {k: blob_refs(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [blob_refs(v, blobs) for v in value]
    if isinstance(value, str) and len(value) >= _MIN_INLINE:
        prefix, payload = "", value
        if value.startswith("data:"):
            head, comma, payload = value.partition(",")
            if not comma:
                return value
            prefix = head + ","
        try:
            digest = hashlib.sha256(base64.b64decode(payload, validate=True)).hexdigest()
        except (binascii.Error, ValueError):
            return value
        if digest in blobs:
            return prefix + BLOB_REF + digest
    return value


def resolve_blob_refs(value: Any, read: Any) -> Any:
    """The inverse of :func:`blob_refs`: ``read(sha256) -> bytes | None``."""
    if isinstance(value, dict):
        return {k: resolve_blob_refs(v, read) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_blob_refs(v, read) for v in value]
    if isinstance(value, str) and BLOB_REF in value:
        prefix, _, digest = value.partition(BLOB_REF)
        data = read(digest)
        if data is None:
            raise ValueError(f"the bytes of blob {digest} are not in the store")
        return prefix + base64.b64encode(data).decode("ascii")
    return value


def blob_rows(messages: Sequence[Message], blobs: dict[str, bytes]) -> list[Blob]:
    """The blobs to store, with the media type their parts name."""
    mime = {p.sha256: p.mime_type for m in messages for p in m.parts if isinstance(p, BlobPart)}
    return [Blob(digest, mime.get(digest), data) for digest, data in blobs.items()]

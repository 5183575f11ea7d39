"""Inline bytes in JSON Lines exports: one line per stored blob, before the first event
that refers to it.

Why: events hold only the digest of an image or file a conversation carried (the bytes are
in ``blobs``, once).  An export of events alone would lose the bytes that ``show``, the call
page and a replay put back, so ``export`` writes each blob once as
``{"blob": {"sha256", "mime_type", "size", "data": base64}}`` (no ``type``: no reader can take
it for an event) and ``import`` stores it again, checking that the bytes are what the digest
names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from ..log.blobs import Blob

_MARK = '"type":"blob"'  # how msgspec writes a blob part; events without it are not parsed
_encoder = msgspec.json.Encoder()


class BadBlob(ValueError):
    """A blob line that cannot be stored; the message says why."""


def digests(payload: str) -> list[str]:
    """The digests of the blob parts an event's JSON refers to, in order, each once."""
    if _MARK not in payload:
        return []
    found: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") == "blob" and isinstance(value.get("sha256"), str):
                found[value["sha256"]] = None
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(msgspec.json.decode(payload))
    return list(found)


def with_blob_lines(conn: sqlite3.Connection, payloads: Iterable[str]) -> Iterator[str]:
    """``payloads`` with a blob line before the first event that refers to each stored blob
    (a digest whose bytes were never stored, ``store_blobs=False``, gets none)."""
    written: set[str] = set()
    has_table = bool(
        conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='blobs'").fetchone()
    )
    for payload in payloads:
        if has_table:
            for digest in digests(payload):
                if digest in written:
                    continue
                written.add(digest)
                row = conn.execute(
                    "SELECT mime_type, data FROM blobs WHERE sha256 = ?", (digest,)
                ).fetchone()
                if row is not None and row[1] is not None:
                    yield blob_line(Blob(digest, row[0], bytes(row[1])))
        yield payload


def blob_line(blob: Blob) -> str:
    body = {
        "sha256": blob.sha256,
        "mime_type": blob.mime_type,
        "size": len(blob.data),
        "data": base64.b64encode(blob.data).decode("ascii"),
    }
    return _encoder.encode({"blob": body}).decode("utf-8")


def is_blob_line(loose: Any) -> bool:
    return isinstance(loose, dict) and "blob" in loose and "type" not in loose


def parse_blob(loose: dict[str, Any]) -> Blob:
    """The blob a line holds, or :class:`BadBlob` (bytes that do not match their digest or
    size are refused: they would be shown and re-sent as the recorded image)."""
    body = loose.get("blob")
    if not isinstance(body, dict):
        raise BadBlob("its 'blob' is not an object")
    digest, mime, data = body.get("sha256"), body.get("mime_type"), body.get("data")
    if not isinstance(digest, str) or not isinstance(data, str):
        raise BadBlob("a blob line needs a 'sha256' and base64 'data'")
    if mime is not None and not isinstance(mime, str):
        raise BadBlob(f"its mime_type is {mime!r}, not a string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadBlob("its data is not valid base64") from None
    if hashlib.sha256(raw).hexdigest() != digest:
        raise BadBlob(f"its bytes do not match their sha256 {digest[:16]}…")
    if body.get("size") not in (None, len(raw)):
        raise BadBlob(f"its size says {body.get('size')!r} but it holds {len(raw)} bytes")
    return Blob(digest, mime, raw)

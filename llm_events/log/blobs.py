"""Inline bytes (images, audio, files) stored once by sha256, beside the events.

A conversation may carry a large image in every request of an agent loop; the events hold
only its digest, media type and size (a ``blob`` part), and the ``blobs`` table holds the
bytes once, written in the same transaction as the first event that refers to them.
``configure(store_blobs=False)`` leaves the bytes out altogether (the digest still says
which image was sent).  Nothing else of ours is imported: this is log-level.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

CREATE_SQL = (
    "CREATE TABLE IF NOT EXISTS blobs ("
    "sha256 TEXT PRIMARY KEY, mime_type TEXT, size INTEGER NOT NULL, data BLOB)"
)


class Blob(NamedTuple):
    sha256: str
    mime_type: str | None
    data: bytes


def write(conn: sqlite3.Connection, blobs: Iterable[Blob]) -> None:
    """Store each blob once (inside the caller's write transaction)."""
    rows = [(b.sha256, b.mime_type, len(b.data), b.data) for b in blobs]
    if rows:
        conn.execute(CREATE_SQL)
        conn.executemany("INSERT OR IGNORE INTO blobs VALUES (?,?,?,?)", rows)


#: event id -> the blobs it refers to, until the transaction that writes the event commits
_attached: dict[str, list[Blob]] = {}
_attached_lock = threading.Lock()


def attach(event_id: str, found: Sequence[Blob]) -> None:
    """Write ``found`` in the transaction that writes event ``event_id``, however and
    whenever the store writes it (at once, deferred, batched, group-committed)."""
    if found:
        with _attached_lock:
            _attached.setdefault(event_id, []).extend(found)


def write_attached(conn: sqlite3.Connection, encoded: Sequence[tuple[Any, Any]]) -> None:
    """In the store's insert: the blobs attached to these ``(event, payload)`` rows."""
    if not _attached:
        return
    with _attached_lock:
        held = [_attached.get(e.id) for e, _ in encoded]
    write(conn, [b for found in held if found for b in found])


def forget(event_ids: Iterable[str]) -> None:
    """Drop what was attached to these events (committed, or never to be written)."""
    if _attached:
        with _attached_lock:
            for event_id in event_ids:
                _attached.pop(event_id, None)


def read(conn: sqlite3.Connection, sha256: str) -> bytes | None:
    """The bytes stored for ``sha256`` (``None`` if absent, or the store has no blobs)."""
    try:
        row = conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
    except sqlite3.OperationalError:  # no blobs table: none was ever stored
        return None
    return None if row is None or row[0] is None else bytes(row[0])


def _decoded(content: Any) -> bytes:
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("a blob part's content is not valid base64") from None


def split_blobs(
    messages: Sequence[dict[str, Any]], keep: bool = True
) -> tuple[list[dict[str, Any]], list[Blob]]:
    """Messages with every blob part's ``content`` taken out, and the blobs taken.

    The digest and size are recomputed from the bytes (a part edited after it was made
    still names what was sent).  With ``keep=False`` the bytes are dropped, not returned.
    """
    out: list[dict[str, Any]] = []
    found: dict[str, Blob] = {}
    for message in messages:
        parts = message.get("parts") or ()
        if not any(p.get("type") == "blob" and "content" in p for p in parts):
            out.append(message)
            continue
        new_parts = []
        for part in parts:
            if part.get("type") == "blob" and "content" in part:
                data = _decoded(part["content"])
                digest = hashlib.sha256(data).hexdigest()
                part = {k: v for k, v in part.items() if k != "content"}
                part.update(sha256=digest, size=len(data))
                if keep:
                    found.setdefault(digest, Blob(digest, part.get("mime_type"), data))
            new_parts.append(part)
        out.append({**message, "parts": new_parts})
    return out, list(found.values())


def with_content(
    conn: sqlite3.Connection, messages: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Messages with each blob part's bytes put back from the ``blobs`` table (base64
    ``content``), and the digests that are not stored (left without content)."""
    out: list[dict[str, Any]] = []
    missing: list[str] = []
    for message in messages:
        parts = message.get("parts") or ()
        if not any(p.get("type") == "blob" for p in parts):
            out.append(message)
            continue
        new_parts = []
        for part in parts:
            if part.get("type") == "blob" and "content" not in part:
                data = read(conn, part.get("sha256", ""))
                if data is None:
                    missing.append(part.get("sha256", ""))
                else:
                    part = {**part, "content": base64.b64encode(data).decode("ascii")}
            new_parts.append(part)
        out.append({**message, "parts": new_parts})
    return out, missing

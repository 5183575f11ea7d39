"""What the call page (``/-/calls/{call_id}``) shows, read from a store connection.

Why a module apart from the Datasette plugin: the page is a pure function of the store (one
call's events, its ``calls`` row, its answer, the replays of it), testable without a server,
and the plugin only renders it.  Every event field beyond the seed's is optional here (event
schema 3 adds conversations, tool calls, reasoning and provider error codes): absent fields
are simply not shown.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from ..log.queries import call_timeline, get_answer, get_call, resolve_call_id
from .render import attempt_label, compact_json, pretty_json

#: Messages longer than this many characters are folded (a click opens them).
FOLD_CHARS = 1200


@dataclass
class Attempt:
    """One request to one backend, as the timeline row draws it."""

    number: int
    backend: str = ""
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    start_ms: float = 0.0
    latency_ms: float | None = None
    outcome: str = "running"  # ok, error or running
    error: dict[str, Any] | None = None
    retry_delay_s: float | None = None
    fallback_to: str | None = None
    fallback_reason: str = ""
    seq: int | None = None

    @property
    def label(self) -> str:
        return attempt_label(self.backend, self.model)

    @property
    def param_items(self) -> list[tuple[str, str, str | None]]:
        """``(name, one line, indented JSON or None)`` per parameter: a value as JSON (not
        Python's repr), cut to one line; a long one (a proxy's whole request ``body``)
        unfolds indented."""
        return [param_item(k, v) for k, v in self.params.items()]


#: A parameter's value is one line of at most this many characters; past it, it folds.
PARAM_CHARS = 80


def param_item(name: str, value: Any) -> tuple[str, str, str | None]:
    line = value if isinstance(value, str) else compact_json(value)
    if len(line) <= PARAM_CHARS:
        return name, line, None
    full = pretty_json(value)
    if len(full) > FOLD_CHARS * 20:
        full = full[: FOLD_CHARS * 20] + "\n… (cut: the raw event has it all)"
    return name, line[:PARAM_CHARS] + "…", full


def find_call(conn: sqlite3.Connection, prefix: str) -> str:
    """The full id for a unique prefix (``QueryError`` when none or several match)."""
    return resolve_call_id(conn, prefix)


def call_page(conn: sqlite3.Connection, call_id: str) -> dict[str, Any]:
    """Everything the call page shows for one (full) call id."""
    call = get_call(conn, call_id) or {"call_id": call_id}
    events = call_timeline(conn, call_id)
    answer = get_answer(conn, call_id)
    prompt = next((e for e in events if e.get("type") == "prompt_built"), None)
    started = next((e for e in events if e.get("type") == "call_started"), {})
    success = next((e for e in reversed(events) if e.get("type") == "attempt_succeeded"), None)
    attempts = _attempts(events)
    messages = conversation(prompt)
    mark_stored_images(conn, messages)
    total_ms = max(
        [call.get("latency_ms") or 0.0]
        + [(a.start_ms + (a.latency_ms or 0.0)) for a in attempts]
        + [1.0]
    )
    return {
        "call": call,
        "events": events,
        "prompt": prompt,
        "started": started,
        "conversation": messages,
        "tools": (prompt or {}).get("tools") or [],
        "options": (prompt or {}).get("options") or {},
        "attempts": attempts,
        "total_ms": total_ms,
        "route": next((e for e in events if e.get("type") == "route_chosen"), None),
        "answer": _answer(success, answer),
        "tags": _tags(call, prompt),
        "replays": replays_of(conn, call_id),
        "replay_of": _replay_of(conn, call),
    }


def conversation(prompt: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The messages sent, as ``{"role", "parts": [...]}``: schema 3's ``messages`` when the
    prompt has them, else the seed's system + context/examples + user."""
    if prompt is None:
        return []
    messages = prompt.get("messages") or []
    if messages:
        return [
            {
                "role": m.get("role") or "?",
                "name": m.get("name"),
                "parts": [_part(p) for p in m.get("parts") or []],
            }
            for m in messages
        ]
    out = []
    if prompt.get("system"):
        out.append({"role": "system", "parts": [_text(prompt["system"])]})
    context = prompt.get("context") or []
    if context:
        parts = []
        for item in context:
            score = "" if item.get("score") is None else f" (score {item['score']})"
            source = item.get("source") or "context"
            parts.append({**_text(item.get("text") or ""), "caption": f"{source}{score}"})
        out.append({"role": "context", "parts": parts})
    elif prompt.get("examples"):
        out.append({"role": "examples", "parts": [_text(x) for x in prompt["examples"]]})
    out.append({"role": "user", "parts": [_text(prompt.get("user") or "")]})
    return out


def _text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content, "fold": len(content) > FOLD_CHARS}


def _part(p: dict[str, Any]) -> dict[str, Any]:
    kind = p.get("type")
    if kind == "text":
        return _text(p.get("content") or "")
    if kind == "tool_call":
        arguments = pretty_json(p.get("arguments"))
        return {
            "type": "tool_call",
            "id": p.get("id"),
            "name": p.get("name") or "?",
            "arguments": arguments,
            "fold": len(arguments) > FOLD_CHARS,
        }
    if kind == "tool_call_response":
        response = p.get("response")
        text = response if isinstance(response, str) else json.dumps(response, indent=2)
        return {
            "type": "tool_call_response",
            "id": p.get("id"),
            "is_error": bool(p.get("is_error")),
            "content": pretty_json(text),
            "fold": len(text or "") > FOLD_CHARS,
        }
    if kind == "reasoning":
        return {
            "type": "reasoning",
            "content": p.get("content") or "",
            "redacted": p.get("redacted"),
        }
    if kind in ("blob", "uri"):
        mime = p.get("mime_type") or ""
        return {
            "type": kind,
            "modality": p.get("modality") or _modality(mime),
            "mime_type": p.get("mime_type"),
            #: set by :func:`mark_stored_images` when the bytes are in the ``blobs`` table
            "shown": False,
            "uri": p.get("uri"),
            "sha256": p.get("sha256"),
            "size": p.get("size"),
        }
    return {"type": str(kind or "?"), "content": json.dumps(p)}


#: Image types the call page shows inline (served by ``/-/blobs/SHA256``); others (SVG can
#: hold scripts) are described, never shown.
INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def _modality(mime: str) -> str:
    kind = mime.split("/", 1)[0]
    return kind if kind in ("image", "audio", "video") else "file"


def mark_stored_images(conn: sqlite3.Connection, messages: list[dict[str, Any]]) -> None:
    """Mark the image parts whose bytes the store holds (``shown``): the page shows those
    inline; an image recorded without its bytes (``store_blobs=False``, an import with
    ``--no-blobs``) is described instead of drawn as a broken image."""
    parts = [
        p
        for m in messages
        for p in m["parts"]
        if p["type"] == "blob" and p.get("sha256") and p.get("mime_type") in INLINE_IMAGES
    ]
    if not parts:
        return
    digests = sorted({p["sha256"] for p in parts})
    try:
        rows = conn.execute(
            f"SELECT sha256 FROM blobs WHERE sha256 IN ({','.join('?' * len(digests))})",
            digests,
        ).fetchall()
    except sqlite3.OperationalError:  # no blobs table: nothing was ever stored
        return
    stored = {r[0] for r in rows}
    for p in parts:
        p["shown"] = p["sha256"] in stored


def stored_image(conn: sqlite3.Connection, sha256: str) -> tuple[str, bytes] | None:
    """``(mime type, bytes)`` of a stored image the page may show inline, else ``None``."""
    try:
        row = conn.execute(
            "SELECT mime_type, data FROM blobs WHERE sha256 = ?", (sha256,)
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None or row[0] not in INLINE_IMAGES or row[1] is None:
        return None
    return row[0], bytes(row[1])


def _attempts(events: list[dict[str, Any]]) -> list[Attempt]:
    """Attempts in order, each with its outcome, the retry delay or fallback that followed."""
    by_number: dict[int, Attempt] = {}
    order: list[Attempt] = []
    last: Attempt | None = None
    for e in events:
        kind = e.get("type")
        number = e.get("attempt")
        if kind == "attempt_started":
            a = Attempt(
                number=number or len(order) + 1,
                backend=e.get("backend") or "",
                model=e.get("model") or "",
                params=e.get("params") or {},
                start_ms=e.get("offset_ms") or 0.0,
                seq=e.get("seq"),
            )
            by_number[a.number] = a
            order.append(a)
            last = a
        elif kind in ("attempt_failed", "attempt_succeeded"):
            a = by_number.get(number) or last
            if a is None:
                continue
            a.latency_ms = e.get("latency_ms")
            if a.latency_ms is None and e.get("offset_ms") is not None:
                a.latency_ms = max(0.0, e["offset_ms"] - a.start_ms)
            if kind == "attempt_succeeded":
                a.outcome = "ok"
                a.model = a.model or e.get("model") or ""
            else:
                a.outcome = "error"
                a.error = {
                    "type": e.get("error_type") or "error",
                    "message": e.get("message") or "",
                    "status_code": e.get("status_code"),
                    "code": e.get("error_code"),
                    "provider_type": e.get("provider_error_type"),
                    "request_id": e.get("request_id"),
                    "retryable": e.get("retryable"),
                    "retry_after_s": e.get("retry_after_s"),
                    "partial_text": e.get("partial_text"),
                }
        elif kind == "retry_scheduled":
            a = by_number.get(number) or last
            if a is not None:
                a.retry_delay_s = e.get("delay_s")
        elif kind == "fallback_taken" and last is not None:
            last.fallback_to = e.get("to_backend") or "?"
            last.fallback_reason = e.get("reason") or ""
    return order


def _answer(success: dict[str, Any] | None, row: dict[str, Any] | None) -> dict[str, Any] | None:
    if success is None and row is None:
        return None
    s = success or {}
    text = s.get("text")
    if text is None and row is not None:
        text = row.get("response_text")
    text = text or ""
    parsed = s.get("parsed")
    as_json = pretty_json(text) if text.strip()[:1] in ("{", "[") else None
    return {
        "text": text,
        "fold": len(text) > FOLD_CHARS,
        "json": as_json if as_json != text else None,
        "parsed": None if parsed is None else json.dumps(parsed, indent=2, ensure_ascii=False),
        "tool_calls": [_part({**t, "type": "tool_call"}) for t in s.get("tool_calls") or []],
        "reasoning": [r.get("content") or "(redacted)" for r in s.get("reasoning") or []],
        "refusal": s.get("refusal"),
        "finish_reason": s.get("finish_reason"),
        "stop_details": s.get("stop_details"),
        "input_tokens": s.get("input_tokens", (row or {}).get("input_tokens")),
        "output_tokens": s.get("output_tokens", (row or {}).get("output_tokens")),
        "cached_tokens": s.get("cached_tokens"),
        "cache_write_tokens": s.get("cache_write_tokens"),
        "reasoning_tokens": s.get("reasoning_tokens"),
        "estimated": bool(s.get("tokens_estimated")),
        "cost": s.get("cost", (row or {}).get("cost")),
        "request_id": s.get("request_id"),
        "response_id": s.get("response_id"),
        "response_model": s.get("response_model"),
        "ttft_ms": s.get("ttft_ms"),
        "headers": s.get("headers") or {},
        "seq": s.get("seq"),
    }


def _tags(call: dict[str, Any], prompt: dict[str, Any] | None) -> list[str]:
    seen: dict[str, None] = {}
    for tag in list(call.get("tags") or []) + list((prompt or {}).get("tags") or []):
        seen[str(tag)] = None
    return list(seen)


def replays_of(conn: sqlite3.Connection, call_id: str) -> list[dict[str, Any]]:
    """The replay runs that re-ran this call: run, when, against, verdict, score, new call."""
    rows = conn.execute(
        "SELECT r.replay_id, r.replay_call_id, r.verdict, r.score, r.reason, r.ts, "
        "p.against, p.status FROM replay_results r LEFT JOIN replays p USING (replay_id) "
        "WHERE r.source_call_id = ? ORDER BY r.ts DESC LIMIT 50",
        (call_id,),
    ).fetchall()
    names = ["replay_id", "replay_call_id", "verdict", "score", "reason", "ts", "against", "status"]
    return [dict(zip(names, r, strict=True)) for r in rows]


def _replay_of(conn: sqlite3.Connection, call: dict[str, Any]) -> dict[str, Any] | None:
    """For a call a replay made: the recorded call it re-ran and the verdict."""
    parent = call.get("parent_call_id")
    if not parent:
        return None
    row = conn.execute(
        "SELECT replay_id, verdict, score, reason FROM replay_results "
        "WHERE replay_call_id = ? LIMIT 1",
        (call["call_id"],),
    ).fetchone()
    out: dict[str, Any] = {"parent_call_id": parent}
    if row is not None:
        out.update(zip(["replay_id", "verdict", "score", "reason"], row, strict=True))
    return out

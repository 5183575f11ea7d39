"""What ``show`` prints of a call's request and answer: the conversation, tools, tool calls
and results, refusal, thinking, finish reason, usage, request ids, a broken stream's part.

Works on events as dicts (their JSON payloads), so events written by any schema version
print: a seed-style prompt (no ``messages``) shows its system and user text as before.
Long conversations are folded (the first turns and the last ones; ``--full`` shows all).
"""

from __future__ import annotations

import json
from typing import Any

from .format import fmt_int, one_line, terminal_width, truncate, wrap_block

#: Conversations longer than this are folded without --full: the first and last turns.
FOLD_AFTER = 8
FOLD_HEAD = 2
FOLD_TAIL = 5
#: Lines of one message (or of thinking) shown without --full.
MESSAGE_LINES = 4


def _size(n: Any) -> str:
    return f"{fmt_int(n)} bytes" if isinstance(n, int) else "? bytes"


def part_text(part: dict[str, Any]) -> str:
    """One part of a message in words."""
    kind = part.get("type")
    if kind == "text":
        return part.get("content") or ""
    if kind == "tool_call":
        call_id = f" ({part['id']})" if part.get("id") else ""
        return f"tool call {part.get('name')} {part.get('arguments') or ''}{call_id}".rstrip()
    if kind == "tool_call_response":
        response = part.get("response")
        if not isinstance(response, str):
            response = json.dumps(response, ensure_ascii=False)
        error = " (error)" if part.get("is_error") else ""
        target = f" for {part['id']}" if part.get("id") else ""
        return f"tool result{target}{error}: {response}"
    if kind == "blob":
        sha = (part.get("sha256") or "")[:12]
        mime = part.get("mime_type") or "?"
        kind = part.get("modality") or "image"
        return f"[{kind}: {mime}, {_size(part.get('size'))}, sha256 {sha}…]"
    if kind == "uri":
        return f"[{part.get('modality') or 'image'}: {part.get('uri')}]"
    if kind == "reasoning":
        if part.get("redacted"):
            return "[thinking, redacted]"
        return f"[thinking, {fmt_int(len(part.get('content') or ''))} chars]"
    return f"[{kind}]"


def message_lines(message: dict[str, Any], full: bool) -> list[str]:
    role = message.get("role") or "?"
    if message.get("name"):
        role = f"{role} {message['name']}"
    texts = [part_text(p) for p in message.get("parts") or ()] or [""]
    if message.get("role") == "tool":  # "tool  tool result for ..." says it twice
        texts = [t.removeprefix("tool ") for t in texts]
    body = wrap_block("\n".join(texts), " " * 15, max_lines=None if full else MESSAGE_LINES)
    first = body[0][15:] if body else ""
    return [f"    {role:<10} {first}".rstrip(), *body[1:]]


def conversation_lines(messages: list[dict[str, Any]], full: bool) -> list[str]:
    out = [f"  conversation ({len(messages)} messages):"]
    shown: list[dict[str, Any] | int] = list(messages)
    if not full and len(messages) > FOLD_AFTER:
        hidden = len(messages) - FOLD_HEAD - FOLD_TAIL
        shown = [*messages[:FOLD_HEAD], hidden, *messages[-FOLD_TAIL:]]
    for m in shown:
        if isinstance(m, int):
            out.append(f"    … {m} more messages (--full shows them)")
        else:
            out.extend(message_lines(m, full))
    return out


def tool_names(tools: list[dict[str, Any]]) -> str:
    return ", ".join(str(t.get("name") or "?") for t in tools)


def prompt_lines(prompt: dict[str, Any], full: bool) -> list[str]:
    """The ``prompt`` section: system, tools, options, the conversation (or user), context."""
    out = ["", "prompt"]
    if prompt.get("system"):
        out.append("  system:")
        out.extend(wrap_block(prompt["system"], "    ", max_lines=None if full else 6))
    tools = prompt.get("tools") or []
    if tools:
        out.append(f"  tools:    {tool_names(tools)}")
        if full:
            for t in tools:
                params = json.dumps(t.get("parameters"), ensure_ascii=False, sort_keys=True)
                desc = f": {t['description']}" if t.get("description") else ""
                out.append(f"    - {t.get('name')}{desc} {params}")
    options = prompt.get("options") or {}
    if options:
        shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in options.items())
        out.append(f"  options:  {shown if full else one_line(shown)[:200]}")
    messages = prompt.get("messages") or []
    if messages:
        out.extend(conversation_lines(messages, full))
    else:
        out.append("  user:")
        out.extend(wrap_block(prompt.get("user") or "", "    ", max_lines=None if full else 20))
    context = prompt.get("context") or []
    if context:
        if full:
            out.append(f"  context ({len(context)} items):")
            for item in context:
                score = "" if item.get("score") is None else f" [{item['score']}]"
                out.append(f"    - {item.get('source') or '?'}{score}: {item.get('text')}")
        else:
            sources = ", ".join(str(i.get("source") or "?") for i in context[:6])
            out.append(f"  context:  {len(context)} items ({sources})")
    elif prompt.get("examples"):
        out.append(f"  examples: {len(prompt['examples'])}")
    if prompt.get("tags"):
        out.append(f"  tags:     {', '.join(map(str, prompt['tags']))}")
    if full and prompt.get("metadata"):
        out.append(f"  metadata: {prompt['metadata']}")
    return out


def _thinking_lines(blocks: list[dict[str, Any]], full: bool, indent: str = "  ") -> list[str]:
    out = []
    for block in blocks:
        if block.get("redacted"):
            out.append(f"{indent}thinking (redacted by the provider)")
            continue
        text = block.get("content") or ""
        if full:
            out.append(f"{indent}thinking:")
            out.extend(wrap_block(text, indent + "  "))
        else:
            out.append(f"{indent}thinking ({fmt_int(len(text))} chars; --full shows it)")
    return out


def _tool_call_lines(calls: list[dict[str, Any]], indent: str = "  ") -> list[str]:
    return [f"{indent}{part_text({'type': 'tool_call', **c})}" for c in calls]


def usage_line(e: dict[str, Any]) -> str | None:
    """``1,200 in (1,000 cache read, 100 cache write) / 40 out (12 reasoning)``."""
    if e.get("input_tokens") is None and e.get("output_tokens") is None:
        return None
    cache = [
        f"{fmt_int(e[k])} {label}"
        for k, label in (("cached_tokens", "cache read"), ("cache_write_tokens", "cache write"))
        if e.get(k)
    ]
    text = f"{fmt_int(e.get('input_tokens'))} in"
    if cache:
        text += f" ({', '.join(cache)})"
    text += f" / {fmt_int(e.get('output_tokens'))} out"
    if e.get("reasoning_tokens"):
        text += f" ({fmt_int(e['reasoning_tokens'])} reasoning)"
    if e.get("tokens_estimated"):
        text += " (estimated)"
    return text


def _ids_line(e: dict[str, Any]) -> str | None:
    bits = [
        f"{label} {e[k]}"
        for k, label in (
            ("request_id", "request"),
            ("response_id", "response"),
            ("response_model", "model"),
        )
        if e.get(k)
    ]
    return "   ".join(bits) or None


def answer_lines(text: str | None, success: dict[str, Any] | None, full: bool) -> list[str]:
    """The ``answer`` section: text, tool calls, refusal, thinking, finish, usage, ids."""
    s = success or {}
    calls = s.get("tool_calls") or []
    if text is None and not calls and not s.get("refusal"):
        return []
    out = ["", "answer"]
    out.extend(_thinking_lines(s.get("reasoning") or [], full))
    if text:
        out.extend(wrap_block(text, "  ", max_lines=None if full else 30))
    elif text is not None and not calls and not s.get("refusal"):
        out.append("  (empty)")
    out.extend(_tool_call_lines(calls))
    if s.get("refusal"):
        out.append(f"  refusal: {one_line(s['refusal']) if not full else s['refusal']}")
    if full and s.get("parsed") is not None:
        out.append(f"  parsed: {s['parsed']}")
    details = []
    if s.get("finish_reason"):
        stop = s.get("stop_details")
        extra = f" {json.dumps(stop, ensure_ascii=False)}" if stop else ""
        line = f"  finish    {s['finish_reason']}{extra}"
        details.append(line if full else truncate(line, terminal_width()))
    usage = usage_line(s)
    if usage is not None and (
        s.get("cached_tokens") or s.get("cache_write_tokens") or s.get("reasoning_tokens")
    ):
        details.append(f"  usage     {usage}")
    ids = _ids_line(s)
    if ids:
        details.append(f"  ids       {ids}")
    if details:
        out.append("")
        out.extend(details)
    return out


def error_line(e: dict[str, Any]) -> str | None:
    """A failed attempt's provider details: ``attempt 1  HTTP 429  code ...  request ...``."""
    bits = [f"HTTP {e['status_code']}"] if e.get("status_code") else []
    for key, label in (
        ("error_code", "code"),
        ("provider_error_type", "type"),
        ("request_id", "request"),
    ):
        if e.get(key):
            bits.append(f"{label} {e[key]}")
    if e.get("retry_after_s") is not None:
        bits.append(f"retry after {e['retry_after_s']:g}s")
    if not any(e.get(k) for k in ("error_code", "provider_error_type", "request_id")):
        return None
    return f"  attempt {e.get('attempt')}  {e.get('error_type') or 'error'}  " + "  ".join(bits)


def failure_lines(events: list[dict[str, Any]], full: bool) -> list[str]:
    """What each failed attempt's provider said (code, type, request id), and a broken
    stream's partial answer: text, tool calls and thinking received before it broke."""
    failed = [e for e in events if e.get("type") == "attempt_failed"]
    said = [line for line in map(error_line, failed) if line is not None]
    out: list[str] = ["", "errors", *said] if said else []
    for e in failed:
        partial = e.get("partial_text")
        calls = e.get("partial_tool_calls") or []
        thinking = e.get("partial_reasoning") or []
        if not (partial or calls or thinking):
            continue
        out.extend(["", f"partial answer (attempt {e.get('attempt')}, before it broke off)"])
        out.extend(_thinking_lines(thinking, full))
        if partial:
            out.extend(wrap_block(partial, "  ", max_lines=None if full else 10))
        out.extend(_tool_call_lines(calls))
    return out

"""One line per event, in words: what ``show`` prints as a call's timeline and ``tail`` streams.

Works on the event as a dict (its JSON payload), so events of types this version does not
know still print (by type name) instead of failing.
"""

from __future__ import annotations

from typing import Any

from .format import fmt_ms, one_line


def _backend_model(e: dict[str, Any]) -> str:
    backend = e.get("backend") or ""
    model = e.get("model") or ""
    return f"{backend}/{model}" if backend and model else backend or model or "?"


def _params(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    return " " + " ".join(f"{k}={v}" for k, v in params.items())


def describe(e: dict[str, Any]) -> tuple[str, str]:
    """``(label, detail)`` for one event dict."""
    t = e.get("type", "?")
    if t == "prompt_built":
        n = len(e.get("context") or [])
        origin = e.get("origin") or "?"
        turns = len(e.get("messages") or [])
        tools = len(e.get("tools") or [])
        extra = (f"{turns} messages, " if turns else "") + (f"{tools} tools, " if tools else "")
        return "prompt built", f"{one_line(e.get('user'))} ({extra}{n} context items, {origin})"
    if t == "call_started":
        extra = f"; replay of {e['parent_call_id']}" if e.get("parent_call_id") else ""
        tags = e.get("tags") or []
        tag_text = f"; tags {', '.join(tags)}" if tags else ""
        source = e.get("source")
        src = f"; from {source}" if source and source not in ("application", "replay") else ""
        return "call started", f"client {e.get('client') or '?'}{extra}{tag_text}{src}"
    if t == "route_chosen":
        cands = ", ".join(e.get("candidates") or [])
        return "route chosen", f"{e.get('chosen')} (by {e.get('reason')}; candidates {cands})"
    if t == "attempt_started":
        return (
            f"attempt {e.get('attempt')} started",
            _backend_model(e) + _params(e.get("params")),
        )
    if t == "attempt_failed":
        bits = []
        if e.get("status_code"):
            bits.append(f"HTTP {e['status_code']}")
        if e.get("error_code") or e.get("provider_error_type"):
            bits.append(str(e.get("error_code") or e.get("provider_error_type")))
        bits.append("retryable" if e.get("retryable") else "not retryable")
        if e.get("latency_ms") is not None:
            bits.append(fmt_ms(e["latency_ms"]))
        if e.get("request_id"):
            bits.append(f"request {e['request_id']}")
        return (
            f"attempt {e.get('attempt')} failed",
            f"{e.get('error_type') or 'error'} ({', '.join(bits)}): {one_line(e.get('message'))}",
        )
    if t == "retry_scheduled":
        return (
            "retry scheduled",
            f"after attempt {e.get('attempt')}, wait {e.get('delay_s')}s ({e.get('error_type') or '?'})",
        )
    if t == "fallback_taken":
        reason = f" ({e['reason']})" if e.get("reason") else ""
        return "fallback", f"{e.get('from_backend')} -> {e.get('to_backend')}{reason}"
    if t == "attempt_succeeded":
        tokens = f"{e.get('input_tokens')}/{e.get('output_tokens')} tokens"
        if e.get("tokens_estimated"):
            tokens += " (estimated)"
        lat = f", {fmt_ms(e['latency_ms'])}" if e.get("latency_ms") is not None else ""
        said = one_line(e.get("text"))
        calls = [str(c.get("name")) for c in e.get("tool_calls") or ()]
        if calls:
            said = (said + "; " if said else "") + f"tool calls: {', '.join(calls)}"
        if e.get("refusal"):
            said = (said + "; " if said else "") + f"refused: {one_line(e['refusal'])}"
        finish = f" [{e['finish_reason']}]" if e.get("finish_reason") else ""
        return (
            f"attempt {e.get('attempt')} succeeded",
            f"{_backend_model(e)}, {tokens}{lat}: {said}{finish}",
        )
    if t == "call_finished":
        status = e.get("status")
        lat = f" in {fmt_ms(e['latency_ms'])}" if e.get("latency_ms") is not None else ""
        detail = f"{status} after {e.get('attempts')} attempt(s){lat}"
        if status != "ok" and e.get("error_type"):
            detail += f": {e['error_type']}: {one_line(e.get('error_message'))}"
        elif e.get("backend"):
            detail += f", answered by {_backend_model(e)}"
        return "call finished", detail
    if t == "replay_started":
        return "replay started", f"{e.get('replay_id')} against {e.get('against')}"
    if t == "replay_compared":
        return (
            "replay compared",
            f"{e.get('verdict')} ({e.get('source_call_id')} -> {e.get('replay_call_id')})",
        )
    if t == "replay_finished":
        return "replay finished", f"{e.get('status')} {e.get('counts')}"
    return t, ""


def relative(ms: float) -> str:
    """``+12.3ms`` / ``+1.52s`` from the first event shown."""
    sign = "-" if ms < 0 else "+"
    ms = abs(ms)
    if ms >= 1000:
        return f"{sign}{ms / 1000:.2f}s"
    return f"{sign}{ms:.1f}ms"

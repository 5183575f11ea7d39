"""``llm-events show``: one call's timeline, with the prompt, the answer and, for a call
still running, what is known of the process that made it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .common import db_option, friendly_errors
from .format import (
    echo_json,
    echo_lines,
    fmt_cost,
    fmt_ms,
    fmt_tokens,
    local_time,
    one_line,
    terminal_width,
    truncate,
)
from .listing import open_read
from .options import full_option


@click.command(name="show")
@click.argument("call_id")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the call and its events as JSON.")
@full_option
@friendly_errors
def show_command(db: Path | None, call_id: str, as_json: bool, full: bool) -> None:
    """Show one call's timeline: every event with its time, the prompt and the answer.

    CALL_ID may be any unique prefix of the id (as `llm-events calls` prints it).

    \b
    Examples:
      llm-events show 01a20fb3-3ca4
      llm-events show 01a20fb3-3ca4 --full
    """
    from ..log.queries import call_timeline, get_answer, get_call, resolve_call_id

    conn = open_read(db)
    try:
        full_id = resolve_call_id(conn, call_id)
        call = get_call(conn, full_id) or {"call_id": full_id}
        answer = get_answer(conn, full_id)
        events = call_timeline(conn, full_id)
    finally:
        conn.close()
    if as_json:
        echo_json({"call": call, "answer": answer, "events": events})
        return
    echo_lines(_show_lines(call, answer, events, full))


#: A running call with no event for this long is probably abandoned (its process died).
STALLED_AFTER_S = 600


def _stalled_for(events: list[dict[str, Any]]) -> str | None:
    """How long a running call has been silent, if longer than :data:`STALLED_AFTER_S`."""
    from ..log.events import parse_iso

    last = max((e["ts"] for e in events if e.get("ts")), default=None)
    if last is None:
        return None
    silent = time.time() - parse_iso(last)
    if silent < STALLED_AFTER_S:
        return None
    minutes = int(silent // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def _running_note(started: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    """What is known of a running call's process: in flight, ended, or silent for long."""
    from ..log.processes import ALIVE, ENDED, state

    who = f"process {started.get('pid')} on {started.get('host')}"
    found = state(started.get("host"), started.get("pid"), started.get("process"))
    if found == ENDED:
        return (
            f"{who} has ended: the call was interrupted (the next process that records "
            "into this store closes it as Interrupted; what was sent is in the timeline)"
        )
    stalled = _stalled_for(events)
    if stalled is None:
        return None
    if found == ALIVE:
        return f"no event for {stalled}, and {who} is still running: the request is waiting"
    return (
        f"no event for {stalled}: the process may have died mid-request "
        "(what was sent is in the timeline)"
    )


def _show_lines(
    call: dict[str, Any], answer: dict[str, Any] | None, events: list[dict[str, Any]], full: bool
) -> list[str]:
    from .timeline import describe, relative

    out = [f"call {call['call_id']}"]
    status = call.get("status") or "?"
    counts = (
        f"{call.get('attempts') or 0} attempt(s), {call.get('retries') or 0} retries, "
        f"{call.get('fallbacks') or 0} fallback(s)"
    )
    out.append(f"  status    {status} ({counts})")
    started = next((e for e in events if e.get("type") == "call_started"), {})
    note = _running_note(started, events) if status == "running" else None
    if note is not None:
        out.append(f"  note      {note}")
    if status == "error":
        out.append(f"  error     {call.get('error_type')}: {one_line(call.get('error_message'))}")
    label = {"ok": "answered", "error": "last tried"}.get(status, "asked")
    out.append(f"  {label:<9} {call.get('backend') or '-'} / {call.get('model') or '-'}")
    out.append(f"  client    {call.get('client') or '-'}")
    if started.get("host"):
        out.append(f"  process   {started['host']} pid {started.get('pid')}")
    out.append(
        f"  started   {local_time(call.get('started_at'), millis=True)}   "
        f"latency {fmt_ms(call.get('latency_ms'))}"
    )
    tokens = fmt_tokens(call.get("input_tokens"), call.get("output_tokens"))
    est = " (estimated)" if call.get("tokens_estimated") else ""
    out.append(f"  tokens    {tokens} in/out{est}   cost {fmt_cost(call.get('cost'))}")
    if call.get("route"):
        out.append(f"  route     {call['route']} (by {call.get('route_reason')})")
    if call.get("tags"):
        out.append(f"  tags      {', '.join(map(str, call['tags']))}")
    if call.get("parent_call_id"):
        out.append(f"  replay of {call['parent_call_id']}")

    out.append("")
    out.append("timeline")
    width = terminal_width()
    for e in events:
        label, detail = describe(e)
        offset = relative(e["offset_ms"]) if e.get("offset_ms") is not None else "?"
        line = f"  {offset:>9}  {label:<21} {detail}"
        out.append(line if full else truncate(line, width))

    from .conversation_view import answer_lines, failure_lines, prompt_lines

    prompt = next((e for e in events if e.get("type") == "prompt_built"), None)
    if prompt is not None:
        out.extend(prompt_lines(prompt, full))
    out.extend(failure_lines(events, full))
    success = next((e for e in reversed(events) if e.get("type") == "attempt_succeeded"), None)
    text = (answer or {}).get("response_text") if answer else None
    if text is None and success is not None:
        text = success.get("text")
    out.extend(answer_lines(text, success, full))
    return out

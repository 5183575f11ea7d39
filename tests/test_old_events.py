"""Stores written by event schemas 1 and 2 stay readable: hand-written payloads of those
versions (no conversation, no complete result, no provider error details) go through
``rebuild``, ``calls``, ``show``, ``search`` and a replay as they always did."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

import replay
from llm_events import EventStore
from llm_events.cli import main
from llm_events.log import events as ev
from llm_events.log.store import row_hash

P1, C1 = "01900000-0000-7000-8000-000000000001", "01900000-0000-7000-8000-0000000000c1"
P2, C2 = "01900000-0000-7000-8000-000000000002", "01900000-0000-7000-8000-0000000000c2"


def _e(n: int, type_: str, ts: str, **fields) -> dict:
    return {"type": type_, "id": f"01900000-0000-7000-8000-1000000000{n:02d}", "ts": ts, **fields}


#: Schema 1: call_started names no process; an answered call and a failed one.
V1 = [
    {
        "type": "prompt_built", "id": P1, "ts": "2024-06-01T10:00:00.000000Z", "v": 1,
        "prompt_id": P1, "system": "Be brief.", "user": "What is the refund window?",
        "examples": ["Refunds within 30 days."], "tags": ["faq"], "metadata": {"intent": "faq"},
        "vector_confidence": 0.8, "origin": "context_builder",
        "context": [{"text": "Refunds within 30 days.", "score": 0.8, "source": "kb:1"}],
        "builder": "ContextBuilder", "fingerprint": "0" * 32,
    },
    _e(1, "call_started", "2024-06-01T10:00:00.100000Z", v=1, call_id=C1, prompt_id=P1,
       client="openai:gpt-4o-mini", model="gpt-4o-mini", parent_call_id=None, tags=[], metadata={}),
    _e(2, "attempt_started", "2024-06-01T10:00:00.110000Z", v=1, call_id=C1, attempt=1,
       backend="openai", model="gpt-4o-mini", params={"temperature": 0}),
    _e(3, "attempt_failed", "2024-06-01T10:00:00.300000Z", v=1, call_id=C1, attempt=1,
       backend="openai", error_type="RateLimitError", message="Rate limit reached",
       retryable=True, status_code=429, latency_ms=190.0, partial_text=None),
    _e(4, "retry_scheduled", "2024-06-01T10:00:00.301000Z", v=1, call_id=C1, attempt=1,
       delay_s=1.0, error_type="RateLimitError"),
    _e(5, "attempt_started", "2024-06-01T10:00:01.310000Z", v=1, call_id=C1, attempt=2,
       backend="openai", model="gpt-4o-mini", params={"temperature": 0}),
    _e(6, "attempt_succeeded", "2024-06-01T10:00:01.900000Z", v=1, call_id=C1, attempt=2,
       backend="openai", model="gpt-4o-mini", text="Thirty days.", parsed=None,
       raw={"id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18"}, input_tokens=1000,
       output_tokens=4, cached_tokens=None, reasoning_tokens=None, tokens_estimated=False,
       cost=None, latency_ms=590.0, ttft_ms=None, finish_reason="stop"),
    _e(7, "call_finished", "2024-06-01T10:00:01.901000Z", v=1, call_id=C1, status="ok",
       attempts=2, backend="openai", model="gpt-4o-mini", error_type=None, error_message=None,
       latency_ms=1801.0),
]  # fmt: skip

#: Schema 2: call_started names its process; a call whose only attempt failed.
V2 = [
    {
        "type": "prompt_built", "id": P2, "ts": "2024-07-01T10:00:00.000000Z", "v": 2,
        "prompt_id": P2, "system": "", "user": "Summarise the invoice policy.", "examples": [],
        "tags": [], "metadata": {}, "vector_confidence": None, "origin": "context_builder",
        "context": [], "builder": "ContextBuilder", "fingerprint": "1" * 32,
    },
    _e(8, "call_started", "2024-07-01T10:00:00.100000Z", v=2, call_id=C2, prompt_id=P2,
       client="anthropic:claude-3-5-haiku", model="claude-3-5-haiku", parent_call_id=None,
       tags=[], metadata={}, host="old-host", pid=4242, process="boot/ns/123"),
    _e(9, "attempt_started", "2024-07-01T10:00:00.110000Z", v=2, call_id=C2, attempt=1,
       backend="anthropic", model="claude-3-5-haiku", params={}),
    _e(10, "attempt_failed", "2024-07-01T10:00:00.400000Z", v=2, call_id=C2, attempt=1,
       backend="anthropic", error_type="AuthenticationError", message="invalid x-api-key",
       retryable=False, status_code=401, latency_ms=290.0, partial_text=None),
    _e(11, "call_finished", "2024-07-01T10:00:00.401000Z", v=2, call_id=C2, status="error",
       attempts=1, backend=None, model=None, error_type="AuthenticationError",
       error_message="invalid x-api-key", latency_ms=301.0),
]  # fmt: skip


def write_old_store(path) -> None:
    """A store file holding exactly these payloads, chained as their version wrote them."""
    EventStore(path).close()  # the current layout, no events
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    prev, seq = "", 0
    for body in V1 + V2:
        seq += 1
        payload = json.dumps(body, separators=(",", ":"))
        key = body.get("call_id")
        h = row_hash(prev, seq, body["id"], body["type"], key, body["ts"], payload)
        conn.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?)",
            (seq, body["id"], body["type"], key, body["ts"], payload, prev, h),
        )
        prev = h
    conn.execute("UPDATE _meta SET value = ? WHERE key = 'head'", (f"{seq}:{prev}",))
    conn.execute("COMMIT")
    conn.close()


def cli(path, *args):
    result = CliRunner(env={"COLUMNS": "120"}).invoke(main, [*args, "--db", str(path)])
    assert result.exit_code == 0, result.output
    return result.output


def test_old_payloads_decode_with_the_new_fields_defaulted():
    built = ev.decode(json.dumps(V1[0]))
    assert isinstance(built, ev.PromptBuilt) and built.v == 1
    assert (built.messages, built.tools, built.options) == ([], [], {})
    success = ev.decode(json.dumps(V1[6]))
    assert success.tool_calls == [] and success.refusal is None and success.headers == {}
    failed = ev.decode(json.dumps(V2[3]))
    assert failed.error_code is None and failed.request_id is None
    assert failed.partial_tool_calls == []
    started = ev.decode(json.dumps(V1[1]))
    assert started.source is None and started.host is None


def test_old_stores_rebuild_list_show_search_and_replay(tmp_path):
    db = tmp_path / "old.db"
    write_old_store(db)
    assert "ok" in cli(db, "verify")
    cli(db, "rebuild")
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT call_id, status, attempts, retries, backend, model, input_tokens, "
        "output_tokens, round(cost, 8), error_type FROM calls ORDER BY started_at"
    ).fetchall()
    assert rows == [
        (C1, "ok", 2, 1, "openai", "gpt-4o-mini", 1000, 4, round((1000 * 0.15 + 4 * 0.60) / 1e6, 8), None),
        (C2, "error", 1, 0, "anthropic", "claude-3-5-haiku", None, None, None, "AuthenticationError"),
    ]  # fmt: skip
    assert conn.execute("SELECT text, response_text, tool_calls FROM prompts").fetchall() == [
        ("What is the refund window?", "Thirty days.", None)
    ]
    conn.close()

    shown = cli(db, "show", C1)
    prompt = shown.split("\nprompt\n")[1].split("\n\n")[0]
    assert prompt.splitlines() == [
        "  system:",
        "    Be brief.",
        "  user:",
        "    What is the refund window?",
        "  context:  1 items (kb:1)",
        "  tags:     faq",
    ]
    assert shown.split("\nanswer\n")[1].splitlines() == ["  Thirty days.", "", "  finish    stop"]
    assert "attempt 1 failed      RateLimitError (HTTP 429, retryable, 190ms): Rate limit" in shown
    failed = cli(db, "show", C2)
    assert "process   old-host pid 4242" in failed
    assert "AuthenticationError (HTTP 401, not retryable, 290ms): invalid x-api-key" in failed
    assert C1[:18] in cli(db, "search", "refund")

    store = EventStore(db)
    try:
        # every status: the failed old call too (the default replays answered calls only)
        report = replay.run(store, "echo", compare="exact", select={"status": None})
        assert report.counts == {"same": 0, "changed": 2, "error": 0}
        first, second = sorted(report.results, key=lambda r: r.source_call_id)
        assert first.source_call_id == C1
        assert first.diff == "-Thirty days.\n+What is the refund window?"
        assert second.source_call_id == C2
        assert second.reason == "the recorded call failed; the replay answered"
        assert second.diff == "+ Summarise the invoice policy."
    finally:
        store.close()

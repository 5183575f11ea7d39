"""The anthropic backend against a local server speaking the Messages API."""

from __future__ import annotations

import asyncio
import json

import pytest

from llm_events import client_from_spec, with_retry
from llm_events.backends.errors import (
    BackendTimeout,
    BadRequestError,
    RetryableBackendError,
    ServerError,
    StreamInterrupted,
)

from .backend_helpers import (
    SECRET,
    base_url,
    broken_stream,
    events,
    events_text,
    server_fixtures,
    slow,
    types,
)

PATH = "/v1/messages"

shared_server, server = server_fixtures()


def message(text="Bonjour", **usage):
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 4, **usage},
    }


def sse(*events_):
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events_)


START = {
    "type": "message_start",
    "message": {
        "id": "msg_2",
        "model": "claude-3-5-haiku-20241022",
        "usage": {"input_tokens": 21, "output_tokens": 1, "cache_read_input_tokens": 5},
    },
}


def delta(text):
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }


END = [
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}},
    {"type": "message_stop"},
]


def make(server, **options):
    return client_from_spec(
        "anthropic:claude-3-5-haiku-latest", base_url=base_url(server), api_key=SECRET, **options
    )


def test_request_headers_body_and_events(server, builder, db_path, store):
    server.expect_request(PATH, method="POST").respond_with_json(message(cache_read_input_tokens=3))
    client = make(server, temperature=0.5, stop="END", max_tokens=64)
    prompt = builder.build_prompt("Say hello in French", system="You are terse.")
    result = client.generate(prompt, context_builder=builder)
    assert result.text == "Bonjour"

    request = server.log[0][0]
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in request.headers
    body = json.loads(request.data)
    assert body == {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello in French"}],
        "system": "You are terse.",
        "stop_sequences": ["END"],
        "temperature": 0.5,
    }
    assert events(db_path, "attempt_started")[0]["params"] == {
        "temperature": 0.5,
        "stop": "END",
        "max_tokens": 64,
    }
    ok = events(db_path, "attempt_succeeded")[0]
    assert (ok["input_tokens"], ok["output_tokens"], ok["cached_tokens"]) == (13, 4, 3)
    assert ok["finish_reason"] == "end_turn"
    assert ok["model"] == "claude-3-5-haiku-20241022"
    cost = store.conn().execute("SELECT cost FROM calls").fetchone()[0]
    assert cost == pytest.approx((10 * 0.80 + 3 * 0.08 + 4 * 4.00) / 1_000_000)
    assert SECRET not in events_text(db_path)


def test_defaults_max_tokens_version_and_env(server, builder, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", base_url(server))
    monkeypatch.setenv("ANTHROPIC_VERSION", "2024-01-01")
    server.expect_request(PATH).respond_with_json(message())
    client = client_from_spec("anthropic:claude-sonnet-4-20250514", json=True)
    client.generate(builder.build_prompt("data please"), context_builder=builder)
    request = server.log[0][0]
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["anthropic-version"] == "2024-01-01"
    body = json.loads(request.data)
    assert body["max_tokens"] == 1024
    assert "JSON" in body["system"] and "json" not in body


def test_overloaded_529_is_retried(server, builder, db_path):
    server.expect_ordered_request(PATH).respond_with_json(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        status=529,
    )
    server.expect_ordered_request(PATH).respond_with_json(message("ok"))
    client = make(server)
    result = with_retry(
        lambda: client.generate(builder.build_prompt("hi"), context_builder=builder),
        attempts=2,
        delay=0.01,
        exc=RetryableBackendError,
    )
    assert result.text == "ok"
    failed = events(db_path, "attempt_failed")[0]
    assert failed["error_type"] == "ServerError" and failed["status_code"] == 529
    assert "Overloaded (overloaded_error)" in failed["message"]


def test_400_not_retried(server, builder, db_path):
    server.expect_request(PATH).respond_with_json(
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "max_tokens: too large"},
        },
        status=400,
    )
    with pytest.raises(BadRequestError, match="max_tokens: too large"):
        with_retry(
            lambda: make(server).generate(builder.build_prompt("hi"), context_builder=builder),
            attempts=3,
            delay=0.01,
            exc=RetryableBackendError,
        )
    assert len(server.log) == 1 and "retry_scheduled" not in types(db_path)


def test_read_timeout(server, builder):
    handler = slow(2.0, message())
    server.expect_request(PATH).respond_with_handler(handler)
    with pytest.raises(BackendTimeout):
        make(server, timeout=0.2).generate(builder.build_prompt("hi"), context_builder=builder)
    handler.finish(server)


def test_stream(server, builder, db_path):
    server.expect_request(PATH).respond_with_data(
        sse(START, delta("Bon"), {"type": "ping"}, delta("jour"), *END),
        content_type="text/event-stream",
    )

    async def run():
        client = make(server)
        return [
            p
            async for p in client.async_generate(
                builder.build_prompt("hi"), context_builder=builder
            )
        ]

    assert asyncio.run(run()) == ["Bon", "jour"]
    assert json.loads(server.log[0][0].data)["stream"] is True
    ok = events(db_path, "attempt_succeeded")[0]
    assert ok["text"] == "Bonjour"
    assert (ok["input_tokens"], ok["output_tokens"], ok["cached_tokens"]) == (26, 6, 5)
    assert ok["finish_reason"] == "end_turn" and ok["ttft_ms"] is not None


def test_stream_cut_mid_way(server, builder, db_path):
    server.expect_request(PATH).respond_with_handler(
        broken_stream([sse(START, delta("Bon"), delta("jo"))])
    )
    with pytest.raises(StreamInterrupted):
        asyncio.run(make(server).agenerate(builder.build_prompt("hi"), context_builder=builder))
    failed = events(db_path, "attempt_failed")[0]
    assert failed["partial_text"] == "Bonjo" and failed["retryable"] is True


def test_error_event_mid_stream(server, builder, db_path):
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    server.expect_request(PATH).respond_with_data(
        sse(START, delta("Hal"), error), content_type="text/event-stream"
    )
    with pytest.raises(ServerError, match="Overloaded"):
        asyncio.run(make(server).agenerate(builder.build_prompt("hi"), context_builder=builder))
    failed = events(db_path, "attempt_failed")[0]
    assert failed["partial_text"] == "Hal" and failed["status_code"] == 529

"""The openai backend against a real OpenAI-compatible HTTP server on 127.0.0.1, with faults."""

from __future__ import annotations

import json
import time

import pytest

from llm_events import client_from_settings, client_from_spec, with_retry
from llm_events.backends.errors import (
    BackendConnectionError,
    BackendTimeout,
    BadRequestError,
    InvalidResponseError,
    RateLimitError,
    RetryableBackendError,
    ServerError,
)

from .backend_helpers import (
    SECRET,
    base_url,
    events,
    events_text,
    free_port,
    openai_completion,
    server_fixtures,
    slow,
    types,
)

PATH = "/v1/chat/completions"

shared_server, server = server_fixtures()


def make(server, **options):
    return client_from_spec(
        "openai:gpt-4o-mini", base_url=base_url(server, "/v1"), api_key=SECRET, **options
    )


def test_request_and_recorded_events(server, builder, db_path):
    server.expect_request(PATH, method="POST").respond_with_json(
        openai_completion("Paris.", cached=4, reasoning=1)
    )
    client = make(server, temperature=0.2, max_tokens=50, top_p=0.9, stop=["\n\n"], seed=7)
    prompt = builder.build_prompt("Capital of France?", system="Be brief.")
    result = client.generate(prompt, context_builder=builder)

    assert result.text == "Paris."
    assert (result.input_tokens, result.output_tokens) == (12, 3)
    request, _ = server.log[0]
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    body = json.loads(request.data)
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.2, 50, 0.9)
    assert (body["stop"], body["seed"]) == (["\n\n"], 7)
    assert "stream" not in body

    assert types(db_path) == [
        "call_started",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    started = events(db_path, "attempt_started")[0]
    assert started["backend"] == "openai" and started["model"] == "gpt-4o-mini"
    assert started["params"] == {
        "temperature": 0.2,
        "max_tokens": 50,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "seed": 7,
    }
    ok = events(db_path, "attempt_succeeded")[0]
    assert ok["model"] == "gpt-4o-mini-2024-07-18"  # what the server says answered
    assert (ok["input_tokens"], ok["output_tokens"], ok["cached_tokens"]) == (12, 3, 4)
    assert ok["reasoning_tokens"] == 1 and ok["finish_reason"] == "stop"
    assert ok["tokens_estimated"] is False
    assert SECRET not in events_text(db_path)
    assert "SECRETKEY" not in events_text(db_path)


def test_priced_from_the_table(server, builder, store):
    server.expect_request(PATH).respond_with_json(
        openai_completion(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    )
    result = make(server).generate(builder.build_prompt("hi"), context_builder=builder)
    store.catch_up()
    cost = (
        store.conn()
        .execute("SELECT cost FROM calls WHERE call_id = ?", (result.call_id,))
        .fetchone()[0]
    )
    assert cost == pytest.approx(0.15 + 0.60)


def test_json_mode(server, builder):
    server.expect_request(PATH).respond_with_json(openai_completion('{"a": 1}'))
    result = make(server, json=True).generate(
        builder.build_prompt("give json"), context_builder=builder, parse_fn=json.loads
    )
    assert result.parsed == {"a": 1}
    body = json.loads(server.log[0][0].data)
    assert body["response_format"] == {"type": "json_object"}
    assert "json" not in body


def test_env_settings_and_client_from_settings(server, builder, monkeypatch, db_path):
    monkeypatch.setenv("OPENAI_BASE_URL", base_url(server, "/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("LLM_BACKEND", "openai:gpt-4.1-mini")
    server.expect_request(PATH).respond_with_json(openai_completion("ok"))
    client = client_from_settings()
    assert client.generate(builder.build_prompt("hi"), context_builder=builder).text == "ok"
    request = server.log[0][0]
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert json.loads(request.data)["model"] == "gpt-4.1-mini"
    assert SECRET not in events_text(db_path)
    assert SECRET not in repr(client)


def test_no_key_no_authorization_header(server, builder, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.expect_request(PATH).respond_with_json(openai_completion())
    client = client_from_spec("openai:local-model", base_url=base_url(server, "/v1"))
    client.generate(builder.build_prompt("hi"), context_builder=builder)
    assert "Authorization" not in server.log[0][0].headers


def test_429_with_retry_after_then_success(server, builder, db_path):
    server.expect_ordered_request(PATH).respond_with_json(
        {"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests"}},
        status=429,
        headers={"Retry-After": "1"},
    )
    server.expect_ordered_request(PATH).respond_with_json(openai_completion("finally"))
    client = make(server)
    prompt = builder.build_prompt("hi")
    t0 = time.monotonic()
    result = with_retry(
        lambda: client.generate(prompt, context_builder=builder),
        attempts=3,
        delay=0.01,
        exc=RetryableBackendError,
    )
    assert time.monotonic() - t0 >= 1.0  # the server's Retry-After, not our 0.01 s
    assert result.text == "finally"
    assert types(db_path) == [
        "call_started",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    failed = events(db_path, "attempt_failed")[0]
    assert failed["status_code"] == 429 and failed["retryable"] is True
    assert failed["error_type"] == "RateLimitError"
    assert "Rate limit reached for gpt-4o-mini" in failed["message"]
    assert events(db_path, "retry_scheduled")[0]["delay_s"] == 1.0
    assert len({e["call_id"] for e in events(db_path) if "call_id" in e}) == 1


def test_500_twice_then_success(server, builder, db_path, store):
    for _ in range(2):
        server.expect_ordered_request(PATH).respond_with_json(
            {"error": {"message": "The server had an error", "type": "server_error"}}, status=500
        )
    server.expect_ordered_request(PATH).respond_with_json(openai_completion("third time"))
    client = make(server)
    result = with_retry(
        lambda: client.generate(builder.build_prompt("hi"), context_builder=builder),
        attempts=3,
        delay=0.01,
        exc=RetryableBackendError,
    )
    assert result.text == "third time"
    failed = events(db_path, "attempt_failed")
    assert [f["status_code"] for f in failed] == [500, 500]
    assert all(f["error_type"] == "ServerError" and f["retryable"] for f in failed)
    row = store.conn().execute("SELECT status, attempts, failures, retries FROM calls").fetchone()
    assert row == ("ok", 3, 2, 2)


def test_400_is_not_retried(server, builder, db_path):
    server.expect_request(PATH).respond_with_json(
        {"error": {"message": "Unrecognized request argument: frobnicate", "code": "bad_arg"}},
        status=400,
    )
    client = make(server, frobnicate=1)
    with pytest.raises(BadRequestError) as info:
        with_retry(
            lambda: client.generate(builder.build_prompt("hi"), context_builder=builder),
            attempts=3,
            delay=0.01,
            exc=RetryableBackendError,
        )
    assert info.value.status_code == 400 and info.value.retryable is False
    assert len(server.log) == 1
    assert "retry_scheduled" not in types(db_path)
    failed = events(db_path, "attempt_failed")[0]
    assert failed["retryable"] is False and failed["status_code"] == 400
    assert "Unrecognized request argument: frobnicate (bad_arg)" in failed["message"]
    assert events(db_path, "call_finished")[0]["status"] == "error"


def test_401_keeps_server_message_not_the_key(server, builder, db_path):
    server.expect_request(PATH).respond_with_json(
        {
            "error": {
                "message": f"Incorrect API key provided: {SECRET}",
                "type": "invalid_request_error",
            }
        },
        status=401,
    )
    with pytest.raises(Exception) as info:
        make(server).generate(builder.build_prompt("hi"), context_builder=builder)
    assert type(info.value).__name__ == "AuthenticationError"
    failed = events(db_path, "attempt_failed")[0]
    assert "Incorrect API key provided" in failed["message"]
    assert SECRET not in events_text(db_path)


def test_connection_refused(builder, db_path):
    client = client_from_spec(
        "openai:gpt-4o-mini", base_url=f"http://127.0.0.1:{free_port()}/v1", connect_timeout=1
    )
    with pytest.raises(BackendConnectionError) as info:
        client.generate(builder.build_prompt("hi"), context_builder=builder)
    assert isinstance(info.value, ConnectionError) and info.value.retryable
    failed = events(db_path, "attempt_failed")[0]
    assert failed["error_type"] == "BackendConnectionError"
    assert failed["retryable"] is True and failed["status_code"] is None
    assert "cannot connect to http://127.0.0.1:" in failed["message"]


def test_read_timeout(server, builder, db_path):
    handler = slow(2.0, openai_completion())
    server.expect_request(PATH).respond_with_handler(handler)
    client = make(server, timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(BackendTimeout):
        client.generate(builder.build_prompt("hi"), context_builder=builder)
    assert time.monotonic() - t0 < 0.9
    failed = events(db_path, "attempt_failed")[0]
    assert failed["error_type"] == "BackendTimeout" and failed["retryable"] is True
    assert "read timeout after 0.2s" in failed["message"]
    handler.finish(server)


def test_malformed_json_body(server, builder, db_path):
    server.expect_request(PATH).respond_with_data(
        '{"choices": [', status=200, content_type="application/json"
    )
    with pytest.raises(InvalidResponseError):
        make(server).generate(builder.build_prompt("hi"), context_builder=builder)
    failed = events(db_path, "attempt_failed")[0]
    assert failed["error_type"] == "InvalidResponseError" and failed["retryable"] is False
    assert "not valid JSON" in failed["message"]


def test_missing_choices_is_an_invalid_response(server, builder):
    server.expect_request(PATH).respond_with_json({"object": "chat.completion"})
    with pytest.raises(InvalidResponseError, match=r"no \['choices'\]"):
        make(server).generate(builder.build_prompt("hi"), context_builder=builder)


def test_error_classes_are_retryable_as_documented():
    assert RateLimitError("x", status_code=429).retryable
    assert ServerError("x", status_code=503).retryable
    assert not BadRequestError("x", status_code=404).retryable

"""The ollama backend (/api/chat, NDJSON streams) and a router falling back to it."""

from __future__ import annotations

import asyncio
import json

import pytest

from llm_events import LLMRouter, client_from_settings, client_from_spec
from llm_events.backends.errors import BackendError, InvalidResponseError, StreamInterrupted

from .backend_helpers import (
    SECRET,
    base_url,
    broken_stream,
    events,
    events_text,
    openai_completion,
    server_fixtures,
    types,
)

PATH = "/api/chat"

shared_server, server = server_fixtures()


def reply(text="Hi there", **extra):
    return {
        "model": "llama3.2",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 11,
        "eval_count": 3,
        **extra,
    }


def ndjson(*pieces, done=True):
    lines = [
        json.dumps(
            {"model": "llama3.2", "message": {"role": "assistant", "content": p}, "done": False}
        )
        for p in pieces
    ]
    if done:
        final = reply("")
        lines.append(json.dumps(final))
    return "\n".join(lines) + "\n"


def make(server, **options):
    return client_from_spec("ollama:llama3.2", base_url=base_url(server), **options)


def test_chat_request_and_events(server, builder, db_path, store):
    server.expect_request(PATH, method="POST").respond_with_json(reply())
    client = make(
        server, temperature=0.1, max_tokens=20, seed=3, stop="###", json=True, keep_alive="5m"
    )
    prompt = builder.build_prompt("hello", system="Be kind.")
    assert client.generate(prompt, context_builder=builder).text == "Hi there"
    body = json.loads(server.log[0][0].data)
    assert body == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "hello"},
        ],
        "stream": False,
        "format": "json",
        "keep_alive": "5m",
        "options": {"num_predict": 20, "stop": ["###"], "temperature": 0.1, "seed": 3},
    }
    ok = events(db_path, "attempt_succeeded")[0]
    assert (ok["input_tokens"], ok["output_tokens"], ok["finish_reason"]) == (11, 3, "stop")
    assert ok["backend"] == "ollama" and ok["model"] == "llama3.2"
    assert store.conn().execute("SELECT cost FROM calls").fetchone()[0] == 0.0


def test_context_examples_are_sent_with_the_system_text(server, builder):
    from llm_events import ContextBuilder, KeywordRetriever

    server.expect_request(PATH).respond_with_json(reply())
    rich = ContextBuilder([KeywordRetriever(["Refunds take 5 days."])], system="Support bot.")
    prompt = rich.build_prompt("how long do refunds take")
    make(server).generate(prompt, context_builder=rich)
    system = json.loads(server.log[0][0].data)["messages"][0]["content"]
    assert system == "Support bot.\n\nContext:\nRefunds take 5 days."


def test_ollama_host_env(server, builder, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")
    server.expect_request(PATH).respond_with_json(reply("env"))
    client = client_from_spec("ollama:qwen2")
    assert client.generate(builder.build_prompt("x"), context_builder=builder).text == "env"


def test_model_not_found_404(server, builder, db_path):
    server.expect_request(PATH).respond_with_json({"error": "model 'nope' not found"}, status=404)
    with pytest.raises(BackendError, match="model 'nope' not found") as info:
        make(server).generate(builder.build_prompt("x"), context_builder=builder)
    assert info.value.status_code == 404 and not info.value.retryable


def test_malformed_body(server, builder):
    server.expect_request(PATH).respond_with_data("not json", content_type="application/json")
    with pytest.raises(InvalidResponseError):
        make(server).generate(builder.build_prompt("x"), context_builder=builder)


def test_ndjson_stream(server, builder, db_path):
    server.expect_request(PATH).respond_with_data(
        ndjson("Hel", "lo"), content_type="application/x-ndjson"
    )

    async def run():
        return [
            p
            async for p in make(server).async_generate(
                builder.build_prompt("hi"), context_builder=builder
            )
        ]

    assert asyncio.run(run()) == ["Hel", "lo"]
    assert json.loads(server.log[0][0].data)["stream"] is True
    ok = events(db_path, "attempt_succeeded")[0]
    assert ok["text"] == "Hello" and (ok["input_tokens"], ok["output_tokens"]) == (11, 3)
    assert ok["ttft_ms"] is not None


def test_ndjson_stream_cut(server, builder, db_path):
    server.expect_request(PATH).respond_with_handler(
        broken_stream([ndjson("par", "tial", done=False)], content_type="application/x-ndjson")
    )
    with pytest.raises(StreamInterrupted):
        asyncio.run(make(server).agenerate(builder.build_prompt("hi"), context_builder=builder))
    assert events(db_path, "attempt_failed")[0]["partial_text"] == "partial"


def test_router_openai_503_falls_back_to_ollama(server, builder, db_path, store):
    server.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "Service Unavailable", "type": "server_error"}}, status=503
    )
    server.expect_request(PATH).respond_with_json(reply("from ollama"))
    remote = client_from_spec(
        "openai:gpt-4o-mini", base_url=base_url(server, "/v1"), api_key=SECRET
    )
    local = make(server)
    router = LLMRouter(remote=remote, local=local)
    prompt = builder.build_prompt("important", tags=["high_roi"])
    result = router.generate(prompt, context_builder=builder)
    assert result.text == "from ollama"
    assert types(db_path) == [
        "call_started",
        "route_chosen",
        "attempt_started",
        "attempt_failed",
        "fallback_taken",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    fallback = events(db_path, "fallback_taken")[0]
    assert fallback["from_backend"] == "openai:gpt-4o-mini"
    assert fallback["to_backend"] == "ollama:llama3.2"
    assert events(db_path, "attempt_failed")[0]["status_code"] == 503
    row = store.conn().execute("SELECT status, backend, fallbacks FROM calls").fetchone()
    assert row == ("ok", "ollama", 1)
    assert SECRET not in events_text(db_path)


def test_client_from_settings_router(server, builder, monkeypatch, db_path):
    monkeypatch.setenv("OPENAI_BASE_URL", base_url(server, "/v1"))
    monkeypatch.setenv("OLLAMA_HOST", base_url(server))
    monkeypatch.setenv("LLM_BACKEND", "openai")
    monkeypatch.setenv("LLM_FALLBACK_BACKEND", "ollama")
    server.expect_request("/v1/chat/completions").respond_with_json(openai_completion("remote"))
    router = client_from_settings()
    assert isinstance(router, LLMRouter)
    prompt = builder.build_prompt("x", tags=["high_roi"])
    assert router.generate(prompt, context_builder=builder).text == "remote"

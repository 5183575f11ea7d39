"""The `llm` package as a backend: llm-markov and llm-echo, options mapping, error mapping."""

from __future__ import annotations

import asyncio
import json

import pytest

from llm_events import client_from_spec, with_retry
from llm_events.backends.errors import (
    BackendTimeout,
    RateLimitError,
    RetryableBackendError,
    from_foreign,
    parse_retry_after,
)
from llm_events.backends.llm_package import LLMPackageBackend

from .backend_helpers import events, types


@pytest.fixture(autouse=True)
def llm_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))


def test_markov_generate_is_recorded(builder, db_path):
    client = client_from_spec("llm:markov", max_tokens=5, delay=0)
    assert isinstance(client, LLMPackageBackend)
    assert client.options == {"length": 5, "delay": 0}  # max_tokens -> markov's length
    result = client.generate(
        builder.build_prompt("one two three one four"), context_builder=builder
    )
    assert len(result.text.split()) == 5
    assert types(db_path) == [
        "call_started",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    started = events(db_path, "attempt_started")[0]
    assert (started["backend"], started["model"]) == ("llm", "markov")
    assert started["params"] == {"max_tokens": 5, "delay": 0}
    ok = events(db_path, "attempt_succeeded")[0]
    assert ok["tokens_estimated"] is True  # markov reports no usage
    assert not (db_path.parent / "llm" / "logs.db").exists()  # llm's own log untouched


def test_echo_sends_system_and_context_and_reports_usage(builder, db_path):
    from llm_events import ContextBuilder, KeywordRetriever

    rich = ContextBuilder([KeywordRetriever(["Paris is in France."])], system="Be exact.")
    prompt = rich.build_prompt("where is Paris")
    result = client_from_spec("llm:echo").generate(prompt, context_builder=rich)
    echoed = json.loads(result.text)
    assert echoed["prompt"] == "where is Paris"
    assert echoed["system"] == "Be exact.\n\nContext:\nParis is in France."
    ok = events(db_path, "attempt_succeeded")[0]
    assert ok["tokens_estimated"] is False and ok["input_tokens"] is not None


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_an_llm_model_makes_are_recorded(builder, db_path, stream):
    asked = json.dumps(
        {
            "prompt": "weather?",
            "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        }
    )
    client = client_from_spec("llm:echo")
    prompt = builder.build_prompt(asked)
    if stream:

        async def collect() -> list[str]:
            return [p async for p in client.async_generate(prompt, context_builder=builder)]

        asyncio.run(collect())
    else:
        (call,) = client.generate(prompt, context_builder=builder).tool_calls
        assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"city": "Paris"})
    ok = events(db_path, "attempt_succeeded")[0]
    (recorded,) = ok["tool_calls"]
    assert recorded["name"] == "get_weather" and recorded["id"]  # llm gives each call an id
    assert json.loads(recorded["arguments"]) == {"city": "Paris"}


def test_unknown_model_and_options_are_refused_early():
    with pytest.raises(ValueError, match="unknown llm model 'no-such-model'"):
        client_from_spec("llm:no-such-model")
    with pytest.raises(
        ValueError, match=r"no option for 'temperature' \(its options: delay, length\)"
    ):
        client_from_spec("llm:markov", temperature=0.5)
    with pytest.raises(ValueError, match="invalid options"):
        client_from_spec("llm:markov", length=1)


def test_foreign_sdk_errors_are_classified():
    class FakeSDKError(Exception):
        status_code = 429

        class response:  # noqa: N801  (mimics an SDK error's response)
            headers = {"retry-after": "2"}

    err = from_foreign(FakeSDKError("slow down"), "llm")
    assert isinstance(err, RateLimitError) and err.retry_after == 2.0 and err.retryable
    assert isinstance(from_foreign(TimeoutError("t"), "llm"), BackendTimeout)
    plain = ValueError("x")
    assert from_foreign(plain, "llm") is plain


def test_retry_after_forms():
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert (
        parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0)
        == 10.0
    )
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_sdk_rate_limit_through_llm_is_retried(builder, db_path, monkeypatch):
    """A plugin whose SDK raises a 429 once: retried by with_retry, recorded as one call."""
    client = client_from_spec("llm:echo")
    calls = {"n": 0}
    original = client.llm_model.prompt

    class SDKRateLimit(Exception):
        status_code = 429

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise SDKRateLimit("Too Many Requests")
        return original(*args, **kwargs)

    monkeypatch.setattr(client.llm_model, "prompt", flaky)
    result = with_retry(
        lambda: client.generate(builder.build_prompt("hello"), context_builder=builder),
        attempts=2,
        delay=0.01,
        exc=RetryableBackendError,
    )
    assert json.loads(result.text)["prompt"] == "hello"
    failed = events(db_path, "attempt_failed")[0]
    assert failed["error_type"] == "RateLimitError" and failed["status_code"] == 429
    assert "SDKRateLimit: Too Many Requests" in failed["message"]
    assert "retry_scheduled" in types(db_path)

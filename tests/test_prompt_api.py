"""Prompt, ContextBuilder, with_retry, the backend registry and client_from_settings."""

from __future__ import annotations

import logging
import time

import pytest

import llm_events
from llm_events import (
    ContextBuilder,
    KeywordRetriever,
    LLMClient,
    LLMResult,
    LLMRouter,
    Prompt,
    client_from_settings,
    with_retry,
)
from llm_events.backends import backend, get_backend, register_backend

from .helpers import read_db


def test_prompt_aliases_and_fallbacks():
    p = Prompt(
        text="hi",
        metadata={"vector_confidences": [0.7, 0.1], "tags": ["t"], "origin": "context_builder"},
    )
    assert p.user == "hi" and p.text == "hi" and str(p) == "hi"
    assert p.vector_confidence == 0.7
    assert p.vector_confidences == [0.7, 0.1]
    assert p.tags == ["t"] and p.outcome_tags == ["t"]
    assert p.origin == "context_builder"
    p.text = "changed"
    assert p.user == "changed"
    assert Prompt(user="x", vector_confidences=[0.3]).vector_confidence == 0.3
    assert Prompt(user="x", metadata={"vector_confidence": 0.4}).vector_confidence == 0.4
    assert Prompt(user="x", outcome_tags=["o"]).tags == ["o"]
    assert Prompt(user="x", vector_confidence=0.9).vector_confidences == [0.9]
    assert Prompt(user="x").vector_confidences == []


def test_builder_rejects_empty_query(builder):
    for bad in ("", "   ", None):
        with pytest.raises(ValueError, match="non-empty query"):
            builder.build_prompt(bad)  # type: ignore[arg-type]


def test_builder_retrieves_dedupes_ranks_and_records_context(store):
    docs = KeywordRetriever(
        {
            "a": "refunds are possible within 30 days",
            "b": "invoices are issued monthly",
            "c": "Refunds are possible within 30 days",  # duplicate of a (case)
        }
    )
    more = KeywordRetriever(["annual refunds are pro rata"], name="more")
    builder = ContextBuilder([docs, more], token_budget=200, store=store)
    prompt = builder.build_prompt("are refunds possible", intent="faq", error_log="E1", top_k=5)
    store.flush()
    assert prompt.origin == "context_builder"
    assert prompt.examples[0].lower() == "refunds are possible within 30 days"
    assert len([e for e in prompt.examples if e.lower().startswith("refunds")]) == 1
    scores = prompt.metadata["vector_confidences"]
    assert scores == sorted(scores, reverse=True)
    assert prompt.vector_confidence == pytest.approx(sum(scores) / len(scores))
    assert prompt.metadata["intent"] == "faq" and prompt.metadata["error_log"] == "E1"
    (stored,) = list(store.iter_events(types=["prompt_built"]))
    event = stored.event
    assert event.user == "are refunds possible"
    assert [c.text for c in event.context] == prompt.examples
    assert event.context[0].source in ("a", "c")
    assert event.builder == "ContextBuilder"


def test_builder_packs_within_token_budget(store):
    docs = KeywordRetriever(["alpha " * 400, "alpha beta"])
    prompt = ContextBuilder([docs], token_budget=100, store=store).build_prompt("alpha beta")
    assert prompt.examples == ["alpha beta"]


def test_with_retry_sleeps_1_then_2_and_succeeds(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError("boom")
        return "ok"

    assert with_retry(flaky, attempts=3, delay=1.0) == "ok"
    assert sleeps == [1.0, 2.0]


def test_with_retry_filters_exceptions_and_reraises_last(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)

    def wrong_type():
        raise KeyError("not retried")

    n = {"calls": 0}

    def counted():
        n["calls"] += 1
        raise KeyError("x")

    with pytest.raises(KeyError):
        with_retry(counted, attempts=5, exc=ValueError)
    assert n["calls"] == 1

    errors = iter([ValueError("first"), ValueError("second"), ValueError("last")])

    def always():
        raise next(errors)

    with pytest.raises(ValueError, match="last"):
        with_retry(always, attempts=3, exc=(ValueError, KeyError))


def test_with_retry_jitter_and_logger(monkeypatch, caplog):
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    monkeypatch.setattr("random.uniform", lambda a, b: b)  # maximal jitter
    it = iter([RuntimeError("a"), RuntimeError("b")])

    def f():
        try:
            raise next(it)
        except StopIteration:
            return 1

    log = logging.getLogger("retry-test")
    with caplog.at_level(logging.WARNING, logger="retry-test"):
        assert with_retry(f, attempts=3, delay=1.0, jitter=0.5, logger=log) == 1
    assert sleeps == [1.5, 3.0]
    assert "attempt 1/3 failed" in caplog.text


def test_with_retry_honours_retry_after(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)

    class RateLimited(Exception):
        retry_after = 7

    it = iter([RateLimited()])

    def f():
        try:
            raise next(it)
        except StopIteration:
            return "ok"

    with_retry(f, attempts=2, delay=1.0)
    assert sleeps == [7.0]


def test_registry_lookup_is_case_insensitive_and_rejects_unknown():
    assert get_backend("ECHO") is get_backend("echo")
    with pytest.raises(ValueError, match="unknown LLM backend 'nope'"):
        get_backend("nope")

    @backend("MyBackend")
    class Mine(LLMClient):
        def _generate(self, prompt, *, context_builder):
            return LLMResult(text="mine")

    assert get_backend("mybackend") is Mine
    register_backend("other", "llm_events.backends.echo:EchoBackend")
    assert get_backend("Other").__name__ == "EchoBackend"


def test_client_from_settings_env_and_router(monkeypatch, builder, db_path):
    monkeypatch.setenv("LLM_BACKEND", "echo")
    client = client_from_settings()
    assert client.generate(builder.build_prompt("x"), context_builder=builder).text == "x"

    monkeypatch.setenv(
        "AVAILABLE_LLM_BACKENDS", '{"shouty": "llm_events.backends.echo:EchoBackend"}'
    )
    monkeypatch.setenv("LLM_FALLBACK_BACKEND", "shouty")
    routed = client_from_settings(size_threshold=5)
    assert isinstance(routed, LLMRouter)
    assert routed.size_threshold == 5

    class S:
        preferred_llm_backend = "nonexistent"

    with pytest.raises(ValueError, match="unknown LLM backend"):
        client_from_settings(S())


def test_client_from_spec(builder):
    client = llm_events.client_from_spec("echo:upper")
    assert client.generate(builder.build_prompt("abc"), context_builder=builder).text == "ABC"
    fn_client = llm_events.client_from_spec("tests.helpers:reverse")
    assert fn_client.generate(builder.build_prompt("abc"), context_builder=builder).text == "cba"
    with pytest.raises(ValueError, match="unknown client spec"):
        llm_events.client_from_spec("nosuchbackend")
    with pytest.raises(ValueError, match="cannot import"):
        llm_events.client_from_spec("no_such_module_xyz:thing")


def test_configure_db_is_used(tmp_path, builder):
    target = tmp_path / "configured.db"
    llm_events.configure(db=target)
    llm_events.client_from_spec("echo").generate(builder.build_prompt("x"), context_builder=builder)
    assert read_db(target).execute("SELECT count(*) FROM calls").fetchone() == (1,)


def test_keyword_retriever_ignores_stopwords_and_plurals():
    docs = KeywordRetriever(
        {"billing": "Invoices are issued on the first day.", "refunds": "Refunds within 30 days."}
    )
    (best, *_rest) = docs.retrieve("Can I get a refund on an annual plan?", top_k=2)
    assert best.source == "refunds" and best.score == 0.25  # refund, out of get/refund/annual/plan
    assert docs.retrieve("the and of", top_k=2) == []

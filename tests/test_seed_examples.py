"""The seed document's examples, run with only their import lines changed to llm_events."""

import dataclasses
import json
import sqlite3

import pytest

from llm_events import LLMClient, LLMResult, Prompt, open_store

from .helpers import read_db


def _rows(db, sql, *args):
    return read_db(db).execute(sql, args).fetchall()


def test_basic_usage_echo_client_is_recorded(db_path, capsys):
    # --- the seed's "Basic usage" snippet, imports changed ---
    from llm_events import ContextBuilder, LLMClient, LLMResult, Prompt

    class EchoClient(LLMClient):
        def generate(self, prompt: Prompt, *, context_builder: ContextBuilder) -> LLMResult:
            # ``parsed`` may contain structured data such as a JSON dict.  It is
            # optional and defaults to ``None``.
            return LLMResult(text=prompt.text.upper())

    client = EchoClient()
    builder = ContextBuilder()
    prompt = builder.build_prompt("hello")
    result = client.generate(prompt, context_builder=builder)
    print(result.text)
    # --- end of snippet ---
    assert capsys.readouterr().out == "HELLO\n"
    types = [t for (t,) in _rows(db_path, "SELECT type FROM events ORDER BY seq")]
    assert types == [
        "prompt_built",
        "call_started",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    (row,) = _rows(db_path, "SELECT status, backend, attempts, response_preview FROM calls")
    assert row == ("ok", "EchoClient", 1, "HELLO")
    (logged,) = _rows(db_path, "SELECT prompt, text, response_text, call_id FROM prompts")
    assert logged == ("hello", "hello", "HELLO", result.call_id)  # as the original wrote them


def test_retry_snippet(db_path):
    from llm_events import ContextBuilder, with_retry

    class EchoClient(LLMClient):
        def generate(self, prompt, *, context_builder):
            return LLMResult(text=prompt.text.upper())

    client = EchoClient()
    builder = ContextBuilder()
    # --- the seed's "Retry and backoff" snippet ---
    response = with_retry(
        lambda: client.generate(builder.build_prompt("hi"), context_builder=builder),
        attempts=3,
        delay=1.0,
    )
    # ---
    assert response.text == "HI"
    assert _rows(db_path, "SELECT status, attempts, retries FROM calls") == [("ok", 1, 0)]


def test_prompt_logging_snippet_with_memory_router(db_path):
    # --- the seed's "Prompt logging" snippet, imports changed ---

    from llm_events import ContextBuilder, PromptDB

    class MemoryRouter:
        def __init__(self):
            self.conn = sqlite3.connect(":memory:")

        def get_connection(self, table_name: str, operation: str = "write"):
            return self.conn

    memory_db = PromptDB(model="demo", router=MemoryRouter())
    builder = ContextBuilder()
    prompt = builder.build_prompt("hi")
    memory_db.log(prompt, LLMResult(text="ok", parsed={}))
    # --- end of snippet ---
    (log,) = memory_db.fetch_logs()
    assert log["text"] == "hi"
    assert log["response_text"] == "ok"
    assert log["model"] == "demo"
    assert json.loads(log["response_parsed"]) == {}
    # the whole store lives on the router's connection: events and projections
    types = [t for (t,) in memory_db.conn.execute("SELECT type FROM events ORDER BY seq")]
    assert types[-4:] == ["call_started", "attempt_started", "attempt_succeeded", "call_finished"]
    assert "prompt_built" in types


def test_fallback_routing_snippet(db_path):
    from llm_events import ContextBuilder, LLMRouter

    class Down(LLMClient):
        def _generate(self, prompt, *, context_builder):
            raise ConnectionError("remote is down")

    class Backup(LLMClient):
        def _generate(self, prompt, *, context_builder):
            return LLMResult(text="from backup")

    remote_client, backup_client = Down("big"), Backup("small")
    # --- the seed's "Fallback routing" snippet ---
    router = LLMRouter(remote=remote_client, local=backup_client, size_threshold=500)
    builder = ContextBuilder()
    prompt = builder.build_prompt("data")
    result = router.generate(prompt, context_builder=builder)
    # ---
    assert result.text == "from backup"
    # "data" is small, so the router picks local first: no fallback needed
    assert _rows(db_path, "SELECT route, route_reason, fallbacks, backend FROM calls") == [
        ("local", "size", 0, "Backup")
    ]


def test_prompt_asdict_round_trips_through_json(builder):
    prompt = builder.build_prompt("round trip", tags=["a"], intent="x")
    data = json.loads(json.dumps(dataclasses.asdict(prompt)))
    again = Prompt(**data)
    assert again == prompt
    # the seed's fields, plus the conversation fields llm-events adds (all defaulted)
    assert set(data) == {
        "system",
        "user",
        "examples",
        "vector_confidence",
        "tags",
        "metadata",
        "origin",
        "messages",
        "tools",
        "options",
    }


def test_llmresult_defaults_and_asdict():
    result = LLMResult(text="ok")
    assert dataclasses.asdict(result) == {
        "raw": None,
        "text": "ok",
        "parsed": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "input_tokens": None,
        "output_tokens": None,
        "cost": None,
        "latency_ms": None,
        # what llm-events adds, all defaulted: the seed's fields above keep their defaults
        "tool_calls": [],
        "refusal": None,
        "reasoning": [],
        "finish_reason": None,
        "stop_details": None,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
        "response_id": None,
        "response_model": None,
        "request_id": None,
        "headers": {},
        "logprobs": None,
    }


def test_generate_requires_context_builder(builder):
    class EchoClient(LLMClient):
        def generate(self, prompt, *, context_builder):
            return LLMResult(text=prompt.text)

    with pytest.raises(TypeError):
        EchoClient().generate(builder.build_prompt("x"))  # type: ignore[call-arg]

    class Plain(LLMClient):
        def _generate(self, prompt, *, context_builder):
            return LLMResult(text="x")

    with pytest.raises(TypeError):
        Plain().generate(builder.build_prompt("x"))  # type: ignore[call-arg]


def test_prompts_not_made_by_a_builder_are_refused(db_path, builder):
    class EchoClient(LLMClient):
        def generate(self, prompt, *, context_builder):
            return LLMResult(text=prompt.text)

    with pytest.raises(ValueError, match="build prompts with ContextBuilder.build_prompt"):
        EchoClient().generate(Prompt(user="hand made"), context_builder=builder)
    assert open_store().count() == 0  # refused before anything was written

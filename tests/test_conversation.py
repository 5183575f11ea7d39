"""Conversations on a Prompt: the neutral shape, what prompt_built stores, inline bytes
stored once by digest, and the complete result / provider error recorded."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import sqlite3

import pytest

import llm_events
from llm_events import ContextBuilder, LLMClient, LLMResult, MessageError, Prompt

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PNG_B64 = base64.b64encode(PNG).decode()
PNG_SHA = hashlib.sha256(PNG).hexdigest()

HISTORY = [
    {"role": "developer", "content": "Answer briefly."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture, and the weather there?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        ],
    },
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'},
    {"role": "assistant", "content": "The Eiffel tower; 18 C in Paris."},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
    },
    {"name": "get_forecast", "description": "Forecast", "input_schema": {"type": "object"}},
]


def rows(db, sql, *args):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def payloads(db, type_):
    return [json.loads(p) for (p,) in rows(db, "SELECT payload FROM events WHERE type = ?", type_)]


def test_user_forms_become_the_neutral_shape_and_round_trip():
    p = Prompt(messages=HISTORY + [{"role": "user", "content": "And tomorrow?"}], tools=TOOLS)
    assert p.user == p.text == "And tomorrow?"
    assert [m["role"] for m in p.messages] == [
        "system", "user", "assistant", "tool", "assistant", "user"
    ]  # fmt: skip
    assert p.messages[1]["parts"][1] == {
        "type": "blob",
        "mime_type": "image/png",
        "sha256": PNG_SHA,
        "size": len(PNG),
        "content": PNG_B64,
    }
    assert p.messages[2]["parts"] == [
        {
            "type": "tool_call",
            "id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        }
    ]
    assert p.messages[3]["parts"] == [
        {"type": "tool_call_response", "id": "call_1", "response": '{"temp_c": 18}'}
    ]
    assert p.tools[0] == {
        "name": "get_weather",
        "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "extra": {"strict": True},
    }
    assert p.tools[1]["parameters"] == {"type": "object"}
    again = Prompt(**json.loads(json.dumps(dataclasses.asdict(p))))
    assert again == p


def test_anthropic_blocks_and_the_user_text_appended():
    p = Prompt(
        user="next?",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"q": "x"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "ok"}]},
        ],
    )  # fmt: skip
    parts = [part for m in p.messages for part in m["parts"]]
    assert [x["type"] for x in parts] == [
        "blob", "uri", "reasoning", "reasoning", "tool_call", "tool_call_response", "text"
    ]  # fmt: skip
    assert parts[1] == {"type": "uri", "uri": "https://example.com/a.png"}
    assert parts[2] == {"type": "reasoning", "content": "hmm", "signature": "sig"}
    assert parts[3] == {"type": "reasoning", "redacted": True, "data": "opaque"}
    assert parts[4]["arguments"] == '{"q": "x"}'
    assert p.messages[-1] == {"role": "user", "parts": [{"type": "text", "content": "next?"}]}


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"content": "hi"}], r"messages\[0\] has no role"),
        ([{"role": "wizard", "content": "hi"}], r"messages\[0\] has role 'wizard'"),
        ([{"role": "user", "content": [{"type": "video_game"}]}], r"messages\[0\] \(user\) part 0 has type 'video_game'"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "text", "text": 3}]}], r"messages\[1\] \(user\) part 0: a text part"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}], r"messages\[0\] \(user\) part 0: the data: URL's base64"),
        ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}], r"tool_calls\[0\]: a tool call needs a function name"),
        ([{"role": "user", "content": "x", "colour": "red"}], r"messages\[0\] \(user\) has unknown keys colour"),
        ("hello", "messages must be a list"),
    ],
)  # fmt: skip
def test_bad_messages_are_refused_naming_the_message(messages, error):
    with pytest.raises(MessageError, match=error):
        Prompt(user="q", messages=messages)


def test_bad_tools_are_refused():
    with pytest.raises(MessageError, match=r"tools\[1\] has no name"):
        Prompt(user="q", tools=[{"name": "a"}, {"description": "nameless"}])


def test_seed_prompt_is_unchanged():
    p = Prompt(user="hi")
    assert p.messages == [] and p.tools == [] and p.options == {}
    assert dataclasses.asdict(p)["messages"] == []


class ToolCaller(LLMClient):
    """Answers every prompt with a tool call and the rest of a complete result."""

    def _generate(self, prompt, *, context_builder):
        return LLMResult(
            text="",
            input_tokens=1200,
            output_tokens=40,
            tool_calls=[
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_forecast", "arguments": '{"city": "Paris", "day": "tomorrow"}'},
                }
            ],
            refusal=None,
            reasoning=[{"content": "The user wants the forecast.", "signature": "c2ln"}],
            finish_reason="tool_calls",
            stop_details={"stop_sequence": None},
            cache_read_tokens=1000,
            cache_write_tokens=100,
            reasoning_tokens=12,
            response_id="chatcmpl-123",
            response_model="gpt-4o-2024-08-06",
            request_id="req_abc",
            headers={"x-request-id": "req_abc", "x-ratelimit-remaining-requests": "99"},
            logprobs={"content": [{"logprob": -0.01, "bytes": [104]}]},
        )  # fmt: skip


def test_a_conversation_is_recorded_with_its_image_stored_once(db_path):
    builder = ContextBuilder()
    client = ToolCaller()
    for _ in range(2):  # the same image in two requests: its bytes are stored once
        prompt = builder.build_prompt(
            "And tomorrow?", history=HISTORY, tools=TOOLS, options={"tool_choice": "auto"}
        )
        result = client.generate(prompt, context_builder=builder)
    llm_events.flush()
    built = payloads(db_path, "prompt_built")
    assert len(built) == 2
    event = built[-1]
    assert event["v"] == 3
    assert event["user"] == "And tomorrow?"
    assert [m["role"] for m in event["messages"]] == [
        "system", "user", "assistant", "tool", "assistant", "user"
    ]  # fmt: skip
    assert event["messages"][1]["parts"][1] == {
        "type": "blob", "mime_type": "image/png", "sha256": PNG_SHA, "size": len(PNG)
    }  # fmt: skip
    assert [t["name"] for t in event["tools"]] == ["get_weather", "get_forecast"]
    assert event["options"] == {"tool_choice": "auto"}
    # the bytes are in no event, and in the blobs table once
    all_payloads = "".join(p for (p,) in rows(db_path, "SELECT payload FROM events"))
    assert PNG_B64[:40] not in all_payloads
    assert rows(db_path, "SELECT sha256, mime_type, size, data FROM blobs") == [
        (PNG_SHA, "image/png", len(PNG), PNG)
    ]
    (started,) = [e for e in payloads(db_path, "call_started") if e["call_id"] == result.call_id]
    assert started["source"] == "application"
    success = [e for e in payloads(db_path, "attempt_succeeded") if e["call_id"] == result.call_id]
    s = success[0]
    assert s["tool_calls"] == [
        {"type": "tool_call", "id": "call_2", "name": "get_forecast", "arguments": '{"city": "Paris", "day": "tomorrow"}'}
    ]  # fmt: skip
    assert s["reasoning"] == [
        {"type": "reasoning", "content": "The user wants the forecast.", "signature": "c2ln"}
    ]
    assert (s["finish_reason"], s["stop_details"]) == ("tool_calls", {"stop_sequence": None})
    assert (s["cached_tokens"], s["cache_write_tokens"], s["reasoning_tokens"]) == (1000, 100, 12)
    assert (s["response_id"], s["response_model"], s["request_id"]) == (
        "chatcmpl-123",
        "gpt-4o-2024-08-06",
        "req_abc",
    )
    assert s["headers"] == {"x-request-id": "req_abc", "x-ratelimit-remaining-requests": "99"}
    assert s["logprobs"] == {"content": [{"logprob": -0.01, "bytes": [104]}]}


def test_store_blobs_false_keeps_the_digest_only(db_path):
    llm_events.configure(store_blobs=False)
    builder = ContextBuilder()
    prompt = builder.build_prompt("And tomorrow?", history=HISTORY)
    ToolCaller().generate(prompt, context_builder=builder)
    llm_events.flush()
    (event,) = payloads(db_path, "prompt_built")
    assert event["messages"][1]["parts"][1]["sha256"] == PNG_SHA
    assert rows(db_path, "SELECT count(*) FROM blobs") == [(0,)]
    assert PNG_B64[:40] not in "".join(p for (p,) in rows(db_path, "SELECT payload FROM events"))


def test_a_prompt_made_by_hand_with_an_image_is_recorded_by_generate(db_path):
    prompt = Prompt(messages=HISTORY[:2], origin="context_builder")
    ToolCaller().generate(prompt, context_builder=None)
    (event,) = payloads(db_path, "prompt_built")
    assert event["builder"] == "generate"
    assert event["messages"][1]["parts"][1]["sha256"] == PNG_SHA
    assert rows(db_path, "SELECT count(*) FROM blobs") == [(1,)]


class ProviderFailure(Exception):
    """What a backend raises: the provider's error details as attributes."""

    status_code = 429
    retryable = True
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"
    request_id = "req_429"
    headers = {"retry-after": "2", "x-ratelimit-remaining-requests": "0"}
    retry_after = 2.0
    partial_text = "It will be sun"
    partial_tool_calls = [{"id": "call_9", "name": "get_forecast", "arguments": '{"city": "Pa'}]
    partial_reasoning = [{"content": "thinking so far"}]


class Failing(LLMClient):
    def _generate(self, prompt, *, context_builder):
        raise ProviderFailure("Rate limit reached for requests")


def test_provider_error_details_are_recorded(db_path):
    builder = ContextBuilder()
    with pytest.raises(ProviderFailure):
        Failing().generate(builder.build_prompt("q"), context_builder=builder)
    (failed,) = payloads(db_path, "attempt_failed")
    assert failed["status_code"] == 429 and failed["retryable"] is True
    assert (failed["error_code"], failed["provider_error_type"]) == (
        "rate_limit_exceeded",
        "rate_limit_error",
    )
    assert failed["request_id"] == "req_429"
    assert failed["headers"] == {"retry-after": "2", "x-ratelimit-remaining-requests": "0"}
    assert failed["retry_after_s"] == 2.0
    assert failed["partial_text"] == "It will be sun"
    assert failed["partial_tool_calls"] == [
        {"type": "tool_call", "id": "call_9", "name": "get_forecast", "arguments": '{"city": "Pa'}
    ]
    assert failed["partial_reasoning"] == [{"type": "reasoning", "content": "thinking so far"}]


def test_secrets_in_messages_are_redacted(db_path):
    builder = ContextBuilder()
    key = "sk-proj-" + "A1b2C3d4" * 4
    prompt = builder.build_prompt(
        "q", history=[{"role": "user", "content": f"my key is {key}"}], options={"api_key": key}
    )
    ToolCaller().generate(prompt, context_builder=builder)
    (event,) = payloads(db_path, "prompt_built")
    assert key not in json.dumps(event)
    assert event["messages"][0]["parts"][0]["content"] == "my key is sk-[REDACTED]"


def test_a_caching_mark_written_the_anthropic_way_is_kept_on_the_part(db_path):
    prompt = Prompt(
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "A long manual",
                        "cache_control": {"type": "ephemeral"},
                    },
                    {"type": "text", "text": "What does it say?"},
                ],
            }
        ],
        origin="context_builder",
    )
    assert prompt.messages[0]["parts"] == [
        {"type": "text", "content": "A long manual", "extra": {"cache_control": {"type": "ephemeral"}}},
        {"type": "text", "content": "What does it say?"},
    ]  # fmt: skip
    ToolCaller().generate(prompt, context_builder=None)
    (event,) = payloads(db_path, "prompt_built")
    assert event["messages"][0]["parts"][0]["extra"] == {"cache_control": {"type": "ephemeral"}}

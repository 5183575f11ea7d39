"""A whole conversation through every backend, against a real HTTP server on 127.0.0.1.

A prompt with earlier turns (an assistant tool call, its tool result), an inline image, an
image by URL (not for Ollama, which takes inline images only), tool definitions and
provider options: what each server received, and every ``LLMResult`` field of a tool-call
answer, streamed and not.  Also: broken streams keep their tool-call fragments and
reasoning on the exception; error bodies give code, type and request id.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import pytest

from llm_events import Prompt, client_from_spec
from llm_events.backends.errors import (
    AuthenticationError,
    RateLimitError,
    ServerError,
    StreamInterrupted,
)

from .backend_helpers import SECRET, base_url, broken_stream, server_fixtures

shared_server, server = server_fixtures()

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))
PNG_B64 = base64.b64encode(PNG).decode()
PHOTO_URL = "https://example.com/photo.jpg"
QUESTION = "Weather where this was taken?"
ARGS = '{"city": "Paris"}'

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def conversation(*, url_image: bool = True) -> list[dict]:
    images = [
        {
            "type": "blob",
            "modality": "image",
            "mime_type": "image/png",
            "sha256": hashlib.sha256(PNG).hexdigest(),
            "size": len(PNG),
            "content": PNG_B64,
        }
    ]
    if url_image:
        images.append({"type": "uri", "modality": "image", "uri": PHOTO_URL})
    return [
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}, *images]},
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me check."},
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": ARGS},
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "22C, sunny"}],
        },
        {"role": "user", "parts": [{"type": "text", "content": "And tomorrow?"}]},
    ]


def prompt(options: dict | None = None, *, url_image: bool = True) -> Prompt:
    return Prompt(
        system="Be brief.",
        user="And tomorrow?",
        messages=conversation(url_image=url_image),
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather",
                "parameters": WEATHER_SCHEMA,
            }
        ],
        options=options or {},
        origin="context_builder",
    )


# --- what each server received -------------------------------------------------------------

OPENAI_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            {"type": "image_url", "image_url": {"url": PHOTO_URL}},
        ],
    },
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ARGS},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "22C, sunny"},
    {"role": "user", "content": "And tomorrow?"},
]
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_SCHEMA},
    }
]
ANTHROPIC_MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": QUESTION},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
            },
            {"type": "image", "source": {"type": "url", "url": PHOTO_URL}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "22C, sunny"},
            {"type": "text", "text": "And tomorrow?"},
        ],
    },
]
OLLAMA_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": QUESTION, "images": [PNG_B64]},
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ],
    },
    {"role": "tool", "content": "22C, sunny", "tool_name": "get_weather", "tool_call_id": "call_1"},
    {"role": "user", "content": "And tomorrow?"},
]


def sse(*events, named: bool = False) -> bytes:
    out = []
    for e in events:
        if isinstance(e, str):
            out.append(f"data: {e}\n\n")
        elif named:
            out.append(f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n")
        else:
            out.append(f"data: {json.dumps(e, ensure_ascii=False)}\n\n")
    return "".join(out).encode()


def openai_chunk(delta=None, finish=None, **extra):
    body = {
        "id": "chatcmpl-T",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini-2024-07-18",
    }
    body["choices"] = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    )
    return {**body, **extra}


OPENAI_USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 20,
    "prompt_tokens_details": {"cached_tokens": 64},
    "completion_tokens_details": {"reasoning_tokens": 5},
}
OPENAI_ANSWER = {
    "id": "chatcmpl-T",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking \u2028tomorrow.",
                "tool_calls": [
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"city": "Paris", "day": 1}',
                        },
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": OPENAI_USAGE,
}
OPENAI_STREAM_EVENTS = [
    openai_chunk({"role": "assistant", "content": "Checking \u2028"}),
    openai_chunk({"content": "tomorrow."}),
    openai_chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ris", "day": 1}'}}]}),
    openai_chunk({}, "tool_calls"),
    openai_chunk(None, usage=OPENAI_USAGE),
    "[DONE]",
]

ANTHROPIC_ANSWER = {
    "id": "msg_T",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-haiku-20241022",
    "content": [
        {"type": "thinking", "thinking": "Tomorrow means day 1.", "signature": "sig=="},
        {"type": "text", "text": "Checking \u2028tomorrow."},
        {
            "type": "tool_use",
            "id": "call_2",
            "name": "get_weather",
            "input": {"city": "Paris", "day": 1},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 56,
        "cache_read_input_tokens": 64,
        "cache_creation_input_tokens": 0,
        "output_tokens": 20,
    },
}
ANTHROPIC_STREAM_EVENTS = [
    {
        "type": "message_start",
        "message": {
            **ANTHROPIC_ANSWER,
            "content": [],
            "stop_reason": None,
            "usage": {**ANTHROPIC_ANSWER["usage"], "output_tokens": 1},
        },
    },
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": ""},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "Tomorrow means day 1."},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "sig=="},
    },
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": "Checking \u2028"},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": "tomorrow."},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": 'ris", "day": 1}'},
    },
    {"type": "content_block_stop", "index": 2},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 20},
    },
    {"type": "message_stop"},
]

OLLAMA_DONE = {
    "model": "llama3.2",
    "created_at": "2026-01-01T00:00:00Z",
    "message": {"role": "assistant", "content": ""},
    "done": True,
    "done_reason": "stop",
    "total_duration": 5000,
    "prompt_eval_count": 120,
    "eval_count": 20,
}
OLLAMA_ANSWER = {
    **OLLAMA_DONE,
    "message": {
        "role": "assistant",
        "content": "Checking \u2028tomorrow.",
        "thinking": "Tomorrow means day 1.",
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris", "day": 1}}}
        ],
    },
}
OLLAMA_STREAM_LINES = [
    {
        "model": "llama3.2",
        "message": {"role": "assistant", "content": "", "thinking": "Tomorrow means day 1."},
        "done": False,
    },
    {
        "model": "llama3.2",
        "message": {"role": "assistant", "content": "Checking \u2028"},
        "done": False,
    },
    {"model": "llama3.2", "message": {"role": "assistant", "content": "tomorrow."}, "done": False},
    {
        "model": "llama3.2",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": OLLAMA_ANSWER["message"]["tool_calls"],
        },
        "done": False,
    },
    OLLAMA_DONE,
]


def ndjson(lines) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


CASES = {
    "openai": dict(
        spec="openai:gpt-4o-mini",
        path="/v1/chat/completions",
        prefix="/v1",
        options={"tool_choice": "auto"},
        body=lambda stream: {
            "model": "gpt-4o-mini",
            "messages": OPENAI_MESSAGES,
            "tools": OPENAI_TOOLS,
            "tool_choice": "auto",
            **({"stream": True, "stream_options": {"include_usage": True}} if stream else {}),
        },
        answer=OPENAI_ANSWER,
        stream=sse(*OPENAI_STREAM_EVENTS),
        content_type="text/event-stream",
        headers={"x-request-id": "req_T", "x-ratelimit-remaining-tokens": "999"},
        expect=dict(
            response_id="chatcmpl-T",
            response_model="gpt-4o-mini-2024-07-18",
            finish_reason="tool_calls",
            reasoning=[],
            tokens=(120, 20, 64, None, 5),
        ),
    ),
    "vllm": dict(
        spec="vllm:Qwen/Qwen3-8B",
        path="/v1/chat/completions",
        prefix="/v1",
        options={"tool_choice": "auto"},
        body=lambda stream: {
            "model": "Qwen/Qwen3-8B",
            "messages": OPENAI_MESSAGES,
            "tools": OPENAI_TOOLS,
            "tool_choice": "auto",
            **({"stream": True, "stream_options": {"include_usage": True}} if stream else {}),
        },
        answer=OPENAI_ANSWER,
        stream=sse(*OPENAI_STREAM_EVENTS),
        content_type="text/event-stream",
        headers={"x-request-id": "req_T"},
        expect=dict(
            response_id="chatcmpl-T",
            response_model="gpt-4o-mini-2024-07-18",
            finish_reason="tool_calls",
            reasoning=[],
            tokens=(120, 20, 64, None, 5),
        ),
    ),
    "anthropic": dict(
        spec="anthropic:claude-3-5-haiku-latest",
        path="/v1/messages",
        prefix="",
        options={"tool_choice": {"type": "auto"}},
        body=lambda stream: {
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 1024,
            "system": "Be brief.",
            "messages": ANTHROPIC_MESSAGES,
            "tools": [
                {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}
            ],
            "tool_choice": {"type": "auto"},
            **({"stream": True} if stream else {}),
        },
        answer=ANTHROPIC_ANSWER,
        stream=sse(*ANTHROPIC_STREAM_EVENTS, named=True),
        content_type="text/event-stream",
        headers={"request-id": "req_T", "anthropic-ratelimit-tokens-remaining": "999"},
        expect=dict(
            response_id="msg_T",
            response_model="claude-3-5-haiku-20241022",
            finish_reason="tool_use",
            reasoning=[
                {"type": "reasoning", "content": "Tomorrow means day 1.", "signature": "sig=="}
            ],
            tokens=(120, 20, 64, 0, None),
        ),
    ),
    "ollama": dict(
        spec="ollama:llama3.2",
        path="/api/chat",
        prefix="",
        options={"keep_alive": "5m"},
        url_image=False,
        body=lambda stream: {
            "model": "llama3.2",
            "messages": OLLAMA_MESSAGES,
            "tools": OPENAI_TOOLS,
            "stream": stream,
            "keep_alive": "5m",
        },
        answer=OLLAMA_ANSWER,
        stream=ndjson(OLLAMA_STREAM_LINES),
        content_type="application/x-ndjson",
        headers={},
        expect=dict(
            response_id=None,
            response_model="llama3.2",
            finish_reason="stop",
            reasoning=[{"type": "reasoning", "content": "Tomorrow means day 1."}],
            tokens=(120, 20, None, None, None),
        ),
    ),
}


def name_of(case) -> str:
    return case["spec"].partition(":")[0]


def make(server, case):
    return client_from_spec(case["spec"], base_url=base_url(server, case["prefix"]), api_key=SECRET)


def check_result(result, case, *, streamed: bool):
    expect = case["expect"]
    assert result.text == "Checking \u2028tomorrow."
    [call] = result.tool_calls
    assert (call.get("id"), call["name"]) == (
        None if case["spec"].startswith("ollama") else "call_2",
        "get_weather",
    )
    assert json.loads(call["arguments"]) == {"city": "Paris", "day": 1}
    # the JSON text as sent: OpenAI's string, Anthropic's streamed fragments (objects
    # otherwise: Anthropic's non-streamed input and Ollama's arguments, sent compact)
    if case["spec"].startswith(("openai", "vllm")) or (streamed and name_of(case) == "anthropic"):
        assert call["arguments"] == '{"city": "Paris", "day": 1}'  # exactly as sent
    assert result.refusal is None
    assert result.reasoning == expect["reasoning"]
    assert result.finish_reason == expect["finish_reason"]
    assert (result.response_id, result.response_model) == (
        expect["response_id"],
        expect["response_model"],
    )
    assert (
        result.input_tokens,
        result.output_tokens,
        result.cache_read_tokens,
        result.cache_write_tokens,
        result.reasoning_tokens,
    ) == expect["tokens"]
    request_id = case["headers"].get("x-request-id") or case["headers"].get("request-id")
    assert result.request_id == request_id
    assert result.headers == case["headers"]


@pytest.mark.parametrize("name", list(CASES))
def test_conversation_sent_whole_and_answer_read_whole(server, name):
    case = CASES[name]
    server.expect_request(case["path"], method="POST").respond_with_json(
        case["answer"], headers=case["headers"]
    )
    client = make(server, case)
    result = client.generate(
        prompt(case["options"], url_image=case.get("url_image", True)), context_builder=None
    )
    assert json.loads(server.log[0][0].data) == case["body"](False)
    check_result(result, case, streamed=False)
    assert result.raw == case["answer"]


@pytest.mark.parametrize("name", list(CASES))
def test_conversation_streamed(server, name):
    case = CASES[name]
    server.expect_request(case["path"], method="POST").respond_with_data(
        case["stream"], content_type=case["content_type"], headers=case["headers"]
    )
    client = make(server, case)
    p = prompt(case["options"], url_image=case.get("url_image", True))
    result = asyncio.run(client.agenerate(p, context_builder=None))
    assert json.loads(server.log[0][0].data) == case["body"](True)
    check_result(result, case, streamed=True)
    assert result.raw["streamed"] is True


def cut_in_tool_call(data: bytes) -> bytes:
    return data[: data.index(b"ris") + 1]


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_broken_stream_keeps_tool_call_fragments_and_reasoning(server, name):
    case = CASES[name]
    server.expect_request(case["path"]).respond_with_handler(
        broken_stream([cut_in_tool_call(case["stream"]).decode()], case["content_type"])
    )
    client = make(server, case)
    with pytest.raises(StreamInterrupted) as info:
        asyncio.run(client.agenerate(prompt(case["options"]), context_builder=None))
    err = info.value
    assert err.partial_text == "Checking \u2028tomorrow."
    assert err.partial_tool_calls == [
        {"type": "tool_call", "id": "call_2", "name": "get_weather", "arguments": '{"city": "Pa'}
    ]
    assert err.partial_reasoning == case["expect"]["reasoning"]
    assert err.partial.finish_reason is None


def test_stream_ending_without_its_end_keeps_everything(server):
    case = CASES["ollama"]
    server.expect_request(case["path"]).respond_with_data(
        ndjson(OLLAMA_STREAM_LINES[:-1]), content_type=case["content_type"]
    )
    with pytest.raises(StreamInterrupted, match="no done: true") as info:
        asyncio.run(make(server, case).agenerate(prompt(url_image=False), context_builder=None))
    assert info.value.partial_tool_calls[0]["name"] == "get_weather"
    assert info.value.partial_reasoning == [
        {"type": "reasoning", "content": "Tomorrow means day 1."}
    ]


def test_ollama_refuses_an_image_by_url(server):
    with pytest.raises(ValueError, match="inline images only"):
        make(server, CASES["ollama"]).generate(prompt(), context_builder=None)
    assert server.log == []


ERRORS = [
    (
        "openai",
        401,
        {
            "error": {
                "message": "Incorrect API key provided: sk-test-...7890.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
        {"x-request-id": "req_E1"},
        AuthenticationError,
        ("invalid_api_key", "invalid_request_error", "req_E1", None),
    ),
    (
        "openai",
        429,
        {
            "error": {
                "message": "Rate limit reached",
                "type": "tokens",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        {"x-request-id": "req_E2", "retry-after-ms": "20", "x-ratelimit-remaining-tokens": "0"},
        RateLimitError,
        ("rate_limit_exceeded", "tokens", "req_E2", 0.02),
    ),
    (
        "anthropic",
        529,
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_E3",
        },
        {},
        ServerError,
        (None, "overloaded_error", "req_E3", None),
    ),
]


@pytest.mark.parametrize(("name", "status", "body", "headers", "cls", "expected"), ERRORS)
def test_error_answers_carry_the_providers_details(
    server, name, status, body, headers, cls, expected
):
    case = CASES[name]
    server.expect_request(case["path"]).respond_with_json(body, status=status, headers=headers)
    with pytest.raises(cls) as info:
        make(server, case).generate(prompt(), context_builder=None)
    err = info.value
    assert (err.error_code, err.provider_error_type, err.request_id, err.retry_after) == expected
    assert err.status_code == status
    assert err.headers == headers
    assert err.provider_error.message == body["error"]["message"]


def test_error_event_inside_an_anthropic_stream(server):
    case = CASES["anthropic"]
    events = [
        *ANTHROPIC_STREAM_EVENTS[:7],
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    ]
    server.expect_request(case["path"]).respond_with_data(
        sse(*events, named=True), content_type="text/event-stream", headers={"request-id": "req_S"}
    )
    with pytest.raises(ServerError, match="stream error: Overloaded") as info:
        asyncio.run(make(server, case).agenerate(prompt(), context_builder=None))
    err = info.value
    assert (err.status_code, err.provider_error_type, err.request_id) == (
        529,
        "overloaded_error",
        "req_S",
    )
    assert err.partial_text == "Checking \u2028"
    assert err.partial_reasoning == case["expect"]["reasoning"]


def test_a_seed_prompt_renders_as_before(server, builder):
    server.expect_request("/v1/chat/completions").respond_with_json(OPENAI_ANSWER)
    client = make(server, CASES["openai"])
    client.generate(builder.build_prompt("Hi", system="S"), context_builder=builder)
    assert json.loads(server.log[0][0].data)["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Hi"},
    ]


def test_what_the_backends_fill_is_recorded(server, db_path):
    """The recorder's side of the contract: the complete result, the provider's error
    details and a broken stream's tool-call fragments reach the events."""
    from .backend_helpers import events, events_text

    case = CASES["anthropic"]
    server.expect_ordered_request(case["path"]).respond_with_json(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        status=529,
        headers={"request-id": "req_F", "retry-after": "0"},
    )
    server.expect_ordered_request(case["path"]).respond_with_json(
        case["answer"], headers=case["headers"]
    )
    client = make(server, case)
    with pytest.raises(ServerError):
        client.generate(prompt(case["options"]), context_builder=None)
    client.generate(prompt(case["options"]), context_builder=None)
    failed = events(db_path, "attempt_failed")[0]
    assert (failed["provider_error_type"], failed["request_id"], failed["status_code"]) == (
        "overloaded_error",
        "req_F",
        529,
    )
    ok = events(db_path, "attempt_succeeded")[0]
    assert [c["name"] for c in ok["tool_calls"]] == ["get_weather"]
    assert ok["request_id"] == "req_T" and ok["finish_reason"] == "tool_use"
    assert ok["reasoning"][0]["signature"] == "sig=="
    assert SECRET not in events_text(db_path)

    server.clear()
    server.expect_request(case["path"]).respond_with_handler(
        broken_stream([cut_in_tool_call(case["stream"]).decode()], case["content_type"])
    )
    with pytest.raises(StreamInterrupted):
        asyncio.run(client.agenerate(prompt(case["options"]), context_builder=None))
    broken = events(db_path, "attempt_failed")[-1]
    assert broken["partial_text"] == "Checking \u2028tomorrow."
    assert broken["partial_tool_calls"][0]["arguments"] == '{"city": "Pa'
    assert broken["partial_reasoning"][0]["content"] == "Tomorrow means day 1."

"""The Chat Completions adapter: request bodies both ways, answers, streams and errors.

Bodies follow the API reference's examples (platform.openai.com/docs/api-reference/chat) and
openai-python's types; a stream is also read by the real openai SDK from a 127.0.0.1 server,
and its assembled message must equal ours.
"""

from __future__ import annotations

import base64
import hashlib
import json

import msgspec
import openai
import pytest

from llm_events.log.conversation import (
    BlobPart,
    ChatRequest,
    Message,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
    UriPart,
    Usage,
)
from llm_events.providers import adapter_for_path, get_adapter, kept_headers

from .backend_helpers import serve

chat = get_adapter("openai_chat")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PNG_B64 = base64.b64encode(PNG).decode()
PNG_SHA = hashlib.sha256(PNG).hexdigest()

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}

WIRE = {
    "model": "gpt-4o",
    "messages": [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where this photo was taken?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/a.jpg", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "22C, sunny"},
    ],
    "tools": [WEATHER],
    "tool_choice": "auto",
    "temperature": 0.2,
    "response_format": {"type": "json_object"},
    "stream": True,
}

NEUTRAL_MESSAGES = [
    Message(role="system", parts=[TextPart(content="Be brief.")]),
    Message(
        role="user",
        parts=[
            TextPart(content="Weather where this photo was taken?"),
            UriPart(uri="https://example.com/a.jpg", detail="low"),
            BlobPart(modality="image", mime_type="image/png", sha256=PNG_SHA, size=len(PNG)),
        ],
    ),
    Message(
        role="assistant",
        parts=[ToolCallPart(id="call_abc", name="get_weather", arguments='{"city": "Paris"}')],
    ),
    Message(role="tool", parts=[ToolCallResponsePart(id="call_abc", response="22C, sunny")]),
]


def test_parse_request_gives_the_neutral_conversation_and_the_inline_bytes():
    req, blobs = chat.parse_request(json.dumps(WIRE).encode())
    assert req.model == "gpt-4o" and req.stream is True
    assert req.messages == NEUTRAL_MESSAGES
    assert req.tools == [
        ToolDefinition(
            name="get_weather",
            description="Weather in a city",
            parameters=WEATHER["function"]["parameters"],
            extra={"strict": True},
        )
    ]
    assert req.params == {
        "tool_choice": "auto",
        "temperature": 0.2,
        "response_format": {"type": "json_object"},
    }
    assert blobs == {PNG_SHA: PNG}
    # the neutral JSON never holds the bytes
    assert PNG_B64 not in msgspec.json.encode(req).decode()


def test_build_request_sends_the_whole_conversation():
    req, blobs = chat.parse_request(WIRE)
    body = chat.build_request(req, blobs)
    expected = json.loads(json.dumps(WIRE))
    expected["messages"][0]["role"] = "system"  # developer is a system turn
    assert body == expected


def test_build_request_takes_inline_bytes_from_the_part_itself():
    part = BlobPart(mime_type="image/png", sha256=PNG_SHA, size=len(PNG), content=PNG_B64)
    req = ChatRequest(model="m", messages=[Message(role="user", parts=[part])])
    body = chat.build_request(req)
    assert body["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}
    ]
    with pytest.raises(ValueError, match="not available"):
        chat.build_request(
            ChatRequest(messages=[Message(role="user", parts=[BlobPart(sha256="ab" * 32)])])
        )


def test_a_seed_prompt_is_plain_strings():
    req = ChatRequest(
        model="m",
        messages=[
            Message(role="system", parts=[TextPart(content="S")]),
            Message(role="user", parts=[TextPart(content="U")]),
        ],
    )
    assert chat.build_request(req) == {
        "model": "m",
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
    }


def test_anthropic_style_tool_results_in_a_user_turn_become_tool_messages():
    req = ChatRequest(
        messages=[
            Message(
                role="user",
                parts=[
                    ToolCallResponsePart(id="t1", response={"temp": 22}),
                    TextPart(content="and tomorrow?"),
                ],
            )
        ]
    )
    assert chat.build_request(req)["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": '{"temp": 22}'},
        {"role": "user", "content": "and tomorrow?"},
    ]


COMPLETION = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "logprobs": {
                "content": [
                    {"token": "Hello", "logprob": -0.31, "bytes": [72, 101], "top_logprobs": []}
                ],
                "refusal": None,
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 10, "audio_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}

HEADERS = {
    "Content-Type": "application/json",
    "x-request-id": "req_123",
    "openai-processing-ms": "321",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-tokens": "6ms",
    "Set-Cookie": "__cf_bm=secret",
    "openai-organization": "org-xyz",
    "authorization": "Bearer sk-leak",
}


def test_kept_headers_are_ids_and_limits_only():
    assert kept_headers(HEADERS) == {
        "x-request-id": "req_123",
        "openai-processing-ms": "321",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-tokens": "6ms",
    }


def test_parse_response_keeps_every_field():
    got = chat.parse_response(json.dumps(COMPLETION).encode(), HEADERS)
    assert got.text == ""
    assert got.tool_calls == [
        ToolCallPart(
            id="call_DdmO9pD3xa9XTPNJ32zg2hcA", name="get_weather", arguments='{"city":"Paris"}'
        )
    ]
    assert got.refusal is None and got.reasoning == []
    assert got.finish_reason == "tool_calls" and got.stop_details is None
    assert got.usage == Usage(
        input_tokens=1117, output_tokens=46, cache_read_tokens=1024, reasoning_tokens=10
    )
    assert (got.response_id, got.response_model) == (COMPLETION["id"], "gpt-4o-2024-08-06")
    assert got.request_id == "req_123"
    assert got.headers == kept_headers(HEADERS)
    assert got.logprobs == COMPLETION["choices"][0]["logprobs"]
    assert got.raw == COMPLETION


def test_parse_response_refusal_and_vllm_reasoning_and_stop_reason():
    body = {
        "id": "x",
        "model": "Qwen/Qwen3-8B",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "42", "reasoning_content": "think"},
                "finish_reason": "stop",
                "stop_reason": "</answer>",
            }
        ],
    }
    got = chat.parse_response(body, {})
    assert (got.text, got.reasoning) == ("42", [ReasoningPart(content="think")])
    assert got.stop_details == {"stop_reason": "</answer>"}
    refused = chat.parse_response(
        {"choices": [{"message": {"content": None, "refusal": "I can't help with that."}}]}, {}
    )
    assert refused.refusal == "I can't help with that." and refused.text == ""
    with pytest.raises(ValueError, match="choices"):
        chat.parse_response({"object": "chat.completion"}, {})


def chunk(delta=None, finish=None, **extra):
    body = {
        "id": "chatcmpl-S1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    body.update(extra)
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


TOOL_STREAM = "".join(
    [
        chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ],
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Par\u2028is"}'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        chunk(
            None,
            usage={
                "prompt_tokens": 80,
                "completion_tokens": 30,
                "total_tokens": 110,
                "prompt_tokens_details": {"cached_tokens": 64},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        ),
        "data: [DONE]\n\n",
    ]
).encode()


def feed_bytewise(parser, data: bytes) -> list[str]:
    out = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    return out + parser.close()


def test_stream_assembles_tool_calls_exactly_from_their_deltas():
    parser = chat.stream_parser({"x-request-id": "req_s"})
    assert feed_bytewise(parser, TOOL_STREAM) == []
    assert parser.done
    got = parser.response()
    assert got.tool_calls == [
        ToolCallPart(id="call_1", name="get_weather", arguments='{"city": "Par\u2028is"}'),
        ToolCallPart(id="call_2", name="get_time", arguments="{}"),
    ]
    assert got.finish_reason == "tool_calls"
    assert got.usage == Usage(
        input_tokens=80, output_tokens=30, cache_read_tokens=64, reasoning_tokens=0
    )
    assert (got.response_id, got.response_model, got.request_id) == (
        "chatcmpl-S1",
        "gpt-4o-mini-2024-07-18",
        "req_s",
    )


def test_stream_cut_mid_tool_call_keeps_the_fragments():
    parser = chat.stream_parser({})
    cut = TOOL_STREAM.index(b"Par") + 2
    parser.feed(TOOL_STREAM[:cut])
    assert not parser.done
    got = parser.response()
    assert got.tool_calls == [ToolCallPart(id="call_1", name="get_weather", arguments='{"ci')]
    assert got.finish_reason is None


def test_stream_text_refusal_reasoning_and_logprobs():
    data = "".join(
        [
            chunk({"role": "assistant", "reasoning_content": "hm"}),
            chunk({"content": "Caf\u00e9 "}, logprobs=None),
            chunk({"content": "\U0001f600"}),
            chunk({"refusal": "No"}),
            chunk({"refusal": "pe."}, "stop"),
            "data: [DONE]\n\n",
        ]
    ).encode()
    parser = chat.stream_parser({})
    assert feed_bytewise(parser, data) == ["Caf\u00e9 ", "\U0001f600"]
    got = parser.response()
    assert (got.text, got.refusal) == ("Caf\u00e9 \U0001f600", "Nope.")
    assert got.reasoning == [ReasoningPart(content="hm")]
    lp = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]}
    parser = chat.stream_parser({})
    body = {
        "id": "c",
        "choices": [
            {"index": 0, "delta": {"content": "Hi"}, "logprobs": lp, "finish_reason": None}
        ],
    }
    parser.feed(f"data: {json.dumps(body)}\n\n".encode() * 2)
    assert parser.response().logprobs == {"content": lp["content"] * 2}


def test_stream_error_event_is_a_provider_error():
    parser = chat.stream_parser({"x-request-id": "req_e"})
    parser.feed(
        b'data: {"error": {"message": "overloaded", "type": "server_error", "code": "overloaded"}}\n\n'
    )
    assert parser.error is not None
    assert (parser.error.code, parser.error.error_type, parser.error.request_id) == (
        "overloaded",
        "server_error",
        "req_e",
    )


def test_the_real_sdk_assembles_the_same_stream():
    with serve() as server:
        server.expect_request("/v1/chat/completions").respond_with_data(
            TOOL_STREAM, content_type="text/event-stream"
        )
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{server.port}/v1", api_key="sk-x", max_retries=0
        )
        with client.chat.completions.stream(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        ) as s:
            final = s.get_final_completion()
        client.close()
    parser = chat.stream_parser({})
    parser.feed(TOOL_STREAM)
    ours = parser.response()
    theirs = final.choices[0].message.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in theirs] == [
        (c.id, c.name, c.arguments) for c in ours.tool_calls
    ]
    assert final.usage.prompt_tokens == ours.usage.input_tokens


ERRORS = [
    (
        401,
        {
            "error": {
                "message": "Incorrect API key provided: sk-abc...wxyz.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
        {"x-request-id": "req_401"},
        ("invalid_request_error", "invalid_api_key", "req_401", False, None),
    ),
    (
        429,
        {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        {"x-request-id": "req_429", "retry-after-ms": "1500", "x-ratelimit-remaining-tokens": "0"},
        ("requests", "rate_limit_exceeded", "req_429", True, 1.5),
    ),
    (
        400,
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
        {},
        ("invalid_request_error", "context_length_exceeded", None, False, None),
    ),
    (
        503,
        {
            "object": "error",
            "message": "The model is loading",
            "type": "ServiceUnavailable",
            "param": None,
            "code": 503,
        },
        {"retry-after": "3"},
        ("ServiceUnavailable", "503", None, True, 3.0),
    ),
]


@pytest.mark.parametrize(("status", "body", "headers", "expected"), ERRORS)
def test_parse_error(status, body, headers, expected):
    err = chat.parse_error(status, json.dumps(body).encode(), headers)
    assert (err.error_type, err.code, err.request_id, err.retryable, err.retry_after_s) == expected
    assert err.status_code == status and err.message
    assert err.headers == kept_headers(headers)


def test_parse_error_of_a_body_that_is_not_json():
    err = chat.parse_error(502, b"<html>Bad Gateway</html>", {})
    assert (err.message, err.retryable, err.code) == ("<html>Bad Gateway</html>", True, None)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/chat/completions", "openai_chat"),
        ("/vllm/v1/chat/completions?x=1", "openai_chat"),
        ("/v1/responses", "openai_responses"),
        ("/v1/messages", "anthropic"),
        ("/api/chat", "ollama"),
        ("/v1/messages/count_tokens", None),
        ("/v1/embeddings", None),
    ],
)
def test_adapter_for_path(path, name):
    adapter = adapter_for_path(path)
    assert (adapter.name if adapter else None) == name

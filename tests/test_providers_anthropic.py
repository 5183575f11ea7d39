"""The Anthropic Messages adapter: requests both ways, answers, SSE streams and errors.

Bodies follow Anthropic's API reference (docs.anthropic.com/en/api/messages, streaming and
errors pages) and anthropic-sdk-python's types; a stream is also read by the real anthropic
SDK from a 127.0.0.1 server, and its final message must match ours.
"""

from __future__ import annotations

import base64
import hashlib
import json

import anthropic
import msgspec
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
from llm_events.providers import get_adapter, kept_headers

from .backend_helpers import serve

messages = get_adapter("anthropic")
JPEG = b"\xff\xd8\xff\xe0" + "caf\u00e9".encode() * 10
JPEG_B64 = base64.b64encode(JPEG).decode()
JPEG_SHA = hashlib.sha256(JPEG).hexdigest()

WIRE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": "You are terse.",
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG_B64},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/b.png"}},
                {"type": "text", "text": "Weather there?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Need the tool.", "signature": "EqQBCgIYAhIM"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "22C"}],
        },
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 2000},
    "stream": True,
}


def test_parse_request():
    req, blobs = messages.parse_request(json.dumps(WIRE))
    assert req.model == "claude-sonnet-4-5" and req.stream
    assert req.messages == [
        Message(role="system", parts=[TextPart(content="You are terse.")]),
        Message(
            role="user",
            parts=[
                BlobPart(mime_type="image/jpeg", sha256=JPEG_SHA, size=len(JPEG)),
                UriPart(uri="https://example.com/b.png"),
                TextPart(content="Weather there?"),
            ],
        ),
        Message(
            role="assistant",
            parts=[
                ReasoningPart(content="Need the tool.", signature="EqQBCgIYAhIM"),
                TextPart(content="Let me check."),
                ToolCallPart(id="toolu_01A", name="get_weather", arguments='{"city":"Paris"}'),
            ],
        ),
        Message(role="tool", parts=[ToolCallResponsePart(id="toolu_01A", response="22C")]),
    ]
    assert req.tools == [
        ToolDefinition(
            name="get_weather",
            description="Weather in a city",
            parameters=WIRE["tools"][0]["input_schema"],
            extra={"cache_control": {"type": "ephemeral"}},
        )
    ]
    assert req.params == {
        "max_tokens": 1024,
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    }
    assert blobs == {JPEG_SHA: JPEG}


def test_build_request_round_trips_the_wire_body():
    req, blobs = messages.parse_request(WIRE)
    assert messages.build_request(req, blobs) == WIRE


def test_caching_marks_and_citations_are_kept_and_sent_again():
    """Prompt caching (``cache_control``) and a document's citations, title and context are
    part of what was sent: kept on the part as ``extra``, written back as they came."""
    from tests.corpus import case

    real = case("anthropic/usage_cache_read").request  # a real request, cached system
    req, blobs = messages.parse_request(real)
    (system,) = [m for m in req.messages if m.role == "system"]
    assert system.parts[0].extra == {"cache_control": {"type": "ephemeral"}}
    assert messages.build_request(req, blobs)["system"] == real["system"]
    wire = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": base64.b64encode(b"%PDF-1.4 grass is green").decode(),
                        },
                        "title": "Lawn care",
                        "context": "From the manual",
                        "citations": {"enabled": True},
                        "cache_control": {"type": "ephemeral"},
                    },
                    {
                        "type": "text",
                        "text": "Colour of grass?",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            }
        ],
    }
    req, blobs = messages.parse_request(wire)
    document, question = req.messages[0].parts
    assert document.extra == {
        "cache_control": {"type": "ephemeral"},
        "citations": {"enabled": True},
        "title": "Lawn care",
        "context": "From the manual",
    }
    assert question.extra == {"cache_control": {"type": "ephemeral"}}
    assert messages.build_request(req, blobs) == wire


def test_a_plain_text_document_is_sent_back_as_that_document_with_its_citations():
    """Anthropic's citations example: a document given as plain text, with a title and
    citations on.  It is stored as a text part (an audit reads its text; other providers
    get it as text) and sent to Anthropic again as the same document, not a text block
    (a text block with a ``title`` is refused)."""
    wire = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {
                            "type": "text",
                            "media_type": "text/plain",
                            "data": "The grass is green. The sky is blue.",
                        },
                        "title": "My Document",
                        "context": "This is a trustworthy document.",
                        "citations": {"enabled": True},
                    },
                    {"type": "text", "text": "What color is the grass and sky?"},
                ],
            }
        ],
    }
    req, blobs = messages.parse_request(wire)
    document, question = req.messages[0].parts
    assert isinstance(document, TextPart)
    assert document.content == "The grass is green. The sky is blue."
    assert document.extra == {
        "title": "My Document",
        "context": "This is a trustworthy document.",
        "citations": {"enabled": True},
        "text_document": {"media_type": "text/plain"},
    }
    assert messages.build_request(req, blobs) == wire
    # stored and read back (an event's JSON), then sent again: the same body
    stored = msgspec.json.decode(msgspec.json.encode(req.messages), type=list[Message])
    again = msgspec.structs.replace(req, messages=stored)
    assert messages.build_request(again, blobs) == wire


def test_an_openai_style_conversation_becomes_a_valid_messages_body():
    """Tool turns (one per result) merge into one user turn; system goes top level."""
    req = ChatRequest(
        model="claude",
        messages=[
            Message(role="system", parts=[TextPart(content="S")]),
            Message(role="user", parts=[TextPart(content="Q")]),
            Message(
                role="assistant",
                parts=[
                    ToolCallPart(id="a", name="f", arguments='{"x": 1}'),
                    ToolCallPart(id="b", name="g", arguments=""),
                ],
            ),
            Message(role="tool", parts=[ToolCallResponsePart(id="a", response="1")]),
            Message(
                role="tool",
                parts=[ToolCallResponsePart(id="b", response={"ok": True}, is_error=True)],
            ),
            Message(role="user", parts=[TextPart(content="Thanks")]),
        ],
        tools=[ToolDefinition(name="f", parameters={"type": "object"}), ToolDefinition(name="g")],
        params={"max_tokens": 10},
    )
    assert messages.build_request(req) == {
        "model": "claude",
        "system": "S",
        "messages": [
            {"role": "user", "content": "Q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}},
                    {"type": "tool_use", "id": "b", "name": "g", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "a", "content": "1"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "b",
                        "content": '{"ok":true}',
                        "is_error": True,
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "tools": [
            {"name": "f", "input_schema": {"type": "object"}},
            {"name": "g", "input_schema": {"type": "object"}},
        ],
        "max_tokens": 10,
    }


MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "Let me think.", "signature": "WaUjzkypQ2mUEVM36O2Txu"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
        {"type": "text", "text": "I'll check the weather."},
        {
            "type": "tool_use",
            "id": "toolu_01T1x",
            "name": "get_weather",
            "input": {"city": "San Francisco, CA"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 472,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "output_tokens": 91,
        "service_tier": "standard",
    },
}

HEADERS = {
    "request-id": "req_018EeWyXxfu5pfWkrYcMdjWG",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-tokens-reset": "2025-01-01T00:00:00Z",
    "x-api-key": "sk-ant-leak",
    "content-type": "application/json",
}


def test_parse_response_keeps_every_field():
    got = messages.parse_response(json.dumps(MESSAGE).encode(), HEADERS)
    assert got.text == "I'll check the weather."
    assert got.tool_calls == [
        ToolCallPart(id="toolu_01T1x", name="get_weather", arguments='{"city":"San Francisco, CA"}')
    ]
    assert got.reasoning == [
        ReasoningPart(content="Let me think.", signature="WaUjzkypQ2mUEVM36O2Txu"),
        ReasoningPart(redacted=True, data="EmwKAhgBEgy3va3pzix"),
    ]
    assert got.finish_reason == "tool_use" and got.stop_details is None
    assert got.usage == Usage(
        input_tokens=2572, output_tokens=91, cache_read_tokens=2000, cache_write_tokens=100
    )
    assert (got.response_id, got.response_model) == (MESSAGE["id"], MESSAGE["model"])
    assert got.request_id == "req_018EeWyXxfu5pfWkrYcMdjWG"
    assert got.headers == {
        "request-id": "req_018EeWyXxfu5pfWkrYcMdjWG",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-tokens-reset": "2025-01-01T00:00:00Z",
    }
    assert kept_headers(HEADERS) == got.headers
    stopped = messages.parse_response(
        {**MESSAGE, "stop_reason": "stop_sequence", "stop_sequence": "\n\nHuman:"}, {}
    )
    assert stopped.stop_details == {"stop_sequence": "\n\nHuman:"}


def sse(*events):
    return "".join(
        f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events
    ).encode()


STREAM = sse(
    {
        "type": "message_start",
        "message": {
            "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 472, "cache_read_input_tokens": 28, "output_tokens": 2},
        },
    },
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "Paris is "},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "in France."},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbc"},
    },
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": "Okay\u2028"},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": " caf\u00e9"},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {
            "type": "tool_use",
            "id": "toolu_01T1x",
            "name": "get_weather",
            "input": {},
        },
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": ""},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": 'ncisco, CA", "unit": "c"}'},
    },
    {"type": "content_block_stop", "index": 2},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 89},
    },
    {"type": "message_stop"},
)


def test_stream_assembles_everything_from_a_bytewise_feed():
    parser = messages.stream_parser(
        {"request-id": "req_s", "anthropic-ratelimit-tokens-remaining": "9"}
    )
    deltas = []
    for i in range(len(STREAM)):
        deltas += parser.feed(STREAM[i : i + 1])
    deltas += parser.close()
    assert deltas == ["Okay\u2028", " caf\u00e9"]
    assert parser.done and parser.error is None
    got = parser.response()
    assert got.text == "Okay\u2028 caf\u00e9"
    assert got.reasoning == [
        ReasoningPart(content="Paris is in France.", signature="EqQBCgIYAhIM1gbc")
    ]
    assert got.tool_calls == [
        ToolCallPart(
            id="toolu_01T1x",
            name="get_weather",
            arguments='{"location": "San Francisco, CA", "unit": "c"}',
        )
    ]
    assert got.finish_reason == "tool_use"
    assert got.usage == Usage(input_tokens=500, output_tokens=89, cache_read_tokens=28)
    assert (got.response_id, got.response_model, got.request_id) == (
        "msg_014p7gG3wDgGV9EUtLvnow3U",
        "claude-sonnet-4-5-20250929",
        "req_s",
    )
    assert got.headers == {"request-id": "req_s", "anthropic-ratelimit-tokens-remaining": "9"}


def test_broken_stream_keeps_thinking_text_and_tool_fragments():
    cut = STREAM.index(b"ncisco")
    parser = messages.stream_parser({})
    parser.feed(STREAM[:cut])
    assert not parser.done
    got = parser.response()
    assert got.text == "Okay\u2028 caf\u00e9"
    assert got.reasoning[0].content == "Paris is in France."
    assert got.tool_calls == [
        ToolCallPart(id="toolu_01T1x", name="get_weather", arguments='{"location": "San Fra')
    ]
    assert got.finish_reason is None and got.usage.output_tokens == 2


def test_stream_error_event():
    parser = messages.stream_parser({"request-id": "req_x"})
    parser.feed(
        sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    err = parser.error
    assert (err.status_code, err.error_type, err.message, err.retryable, err.request_id) == (
        529,
        "overloaded_error",
        "Overloaded",
        True,
        "req_x",
    )


def test_the_real_sdk_reads_the_same_stream():
    with serve() as server:
        server.expect_request("/v1/messages").respond_with_data(
            STREAM, content_type="text/event-stream"
        )
        client = anthropic.Anthropic(
            base_url=f"http://127.0.0.1:{server.port}", api_key="k", max_retries=0
        )
        with client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as s:
            final = s.get_final_message()
        client.close()
    parser = messages.stream_parser({})
    parser.feed(STREAM)
    ours = parser.response()
    tool = [b for b in final.content if b.type == "tool_use"][0]
    assert json.loads(ours.tool_calls[0].arguments) == tool.input
    assert ours.text == "".join(b.text for b in final.content if b.type == "text")
    thinking = [b for b in final.content if b.type == "thinking"][0]
    assert (ours.reasoning[0].content, ours.reasoning[0].signature) == (
        thinking.thinking,
        thinking.signature,
    )
    assert ours.usage.output_tokens == final.usage.output_tokens


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (
            529,
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
                "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
            },
            {},
            ("overloaded_error", None, "req_011CSHoEeqs5C35K2UUqR7Fy", True, None),
        ),
        (
            429,
            {
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "message": "Number of request tokens has exceeded your per-minute rate limit",
                },
            },
            {
                "request-id": "req_h",
                "retry-after": "20",
                "anthropic-ratelimit-input-tokens-remaining": "0",
            },
            ("rate_limit_error", None, "req_h", True, 20.0),
        ),
        (
            401,
            {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                "request_id": "req_b",
            },
            {"request-id": "req_h"},
            ("authentication_error", None, "req_h", False, None),
        ),
    ],
)
def test_parse_error(status, body, headers, expected):
    err = messages.parse_error(status, json.dumps(body).encode(), headers)
    assert (err.error_type, err.code, err.request_id, err.retryable, err.retry_after_s) == expected
    assert err.message == body["error"]["message"] and err.headers == kept_headers(headers)


def test_a_conversation_with_server_tool_blocks_goes_back_as_it_came():
    """A web search turn sent back (as the docs say to continue a conversation): the real
    recorded answer (corpus anthropic/stream_web_search) read by the anthropic SDK, its
    content passed back as the assistant turn; the SDK's request body parses and builds
    back with its server_tool_use and web_search_tool_result blocks as they were (they
    came back as a client tool_use with no result: a conversation the API refuses)."""
    from tests import corpus

    case = corpus.case("anthropic/stream_web_search")
    request = {k: v for k, v in case.request.items() if k not in ("stream", "temperature")}
    with corpus.serve(case, chunk_size=4096) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
        with client.messages.stream(**request) as stream:
            final = stream.get_final_message()
        turns = [
            *request["messages"],
            {"role": "assistant", "content": final.content},
            {"role": "user", "content": "And tomorrow?"},
        ]
        with client.messages.stream(**{**request, "messages": turns}) as stream:
            stream.get_final_message()
        client.close()
        sent = json.loads(server.requests[-1]["body"])
    req, blobs = messages.parse_request(sent)
    assistant = req.messages[1]
    search = [p for p in assistant.parts if isinstance(p, ToolCallResponsePart)]
    assert [p.extra["type"] for p in search] == ["web_search_tool_result"]
    assert search[0].response == sent["messages"][1]["content"][1]["content"]  # the results
    (call,) = [p for p in assistant.parts if isinstance(p, ToolCallPart)]
    assert (call.name, json.loads(call.arguments)) == ("web_search", final.content[0].input)
    assert messages.build_request(req, blobs)["messages"][1:] == sent["messages"][1:]

"""The Ollama adapter (/api/chat, and /api/generate answers): bodies after Ollama's API docs
(github.com/ollama/ollama/blob/main/docs/api.md), NDJSON streams, errors."""

from __future__ import annotations

import base64
import hashlib
import json

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
from llm_events.providers import get_adapter

ollama = get_adapter("ollama")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)
PNG_B64 = base64.b64encode(PNG).decode()

WIRE = {
    "model": "llama3.2",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is in this picture?", "images": [PNG_B64]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "Call the tool.",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}],
        },
        {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "stream": False,
    "think": True,
    "keep_alive": "5m",
    "options": {"temperature": 0, "num_predict": 20},
}


def test_parse_request_and_build_it_back():
    req, blobs = ollama.parse_request(json.dumps(WIRE))
    sha = hashlib.sha256(PNG).hexdigest()
    assert req.messages == [
        Message(role="system", parts=[TextPart(content="Be brief.")]),
        Message(
            role="user",
            parts=[
                TextPart(content="What is in this picture?"),
                BlobPart(mime_type="image/png", sha256=sha, size=len(PNG)),
            ],
        ),
        Message(
            role="assistant",
            parts=[
                ReasoningPart(content="Call the tool."),
                ToolCallPart(name="get_weather", arguments='{"city":"Toronto"}'),
            ],
        ),
        Message(
            role="tool",
            name="get_weather",
            parts=[ToolCallResponsePart(response="11 degrees celsius")],
        ),
    ]
    assert req.tools == [
        ToolDefinition(
            name="get_weather",
            description="Get the weather",
            parameters=WIRE["tools"][0]["function"]["parameters"],
        )
    ]
    assert req.stream is False
    assert req.params == {
        "think": True,
        "keep_alive": "5m",
        "options": {"temperature": 0, "num_predict": 20},
    }
    assert blobs == {sha: PNG}
    assert ollama.build_request(req, blobs) == WIRE


def test_stream_defaults_to_true_as_ollama_does():
    req, _ = ollama.parse_request({"model": "m", "messages": []})
    assert req.stream is True


def test_tool_results_get_the_name_of_the_call_they_answer():
    req = ChatRequest(
        messages=[
            Message(
                role="assistant", parts=[ToolCallPart(id="c1", name="add", arguments='{"a": 1}')]
            ),
            Message(role="tool", parts=[ToolCallResponsePart(id="c1", response={"sum": 1})]),
        ]
    )
    assert ollama.build_request(req)["messages"] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "function": {"name": "add", "arguments": {"a": 1}}}],
        },
        {"role": "tool", "content": '{"sum": 1}', "tool_name": "add", "tool_call_id": "c1"},
    ]


def test_images_by_url_are_refused():
    req = ChatRequest(messages=[Message(role="user", parts=[UriPart(uri="https://x/y.png")])])
    with pytest.raises(ValueError, match="inline images only"):
        ollama.build_request(req)


def test_generate_request_and_answer():
    req, _ = ollama.parse_request(
        {"model": "m", "prompt": "Why is the sky blue?", "system": "S", "stream": False}
    )
    assert req.messages == [
        Message(role="system", parts=[TextPart(content="S")]),
        Message(role="user", parts=[TextPart(content="Why is the sky blue?")]),
    ]
    got = ollama.parse_response(
        {
            "model": "m",
            "response": "Rayleigh.",
            "thinking": "hm",
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 5,
            "eval_count": 2,
        },
        {},
    )
    assert (got.text, got.reasoning, got.finish_reason) == (
        "Rayleigh.",
        [ReasoningPart(content="hm")],
        "stop",
    )
    assert got.usage == Usage(input_tokens=5, output_tokens=2)


ANSWER = {
    "model": "llama3.2",
    "created_at": "2023-12-12T14:13:43.416799Z",
    "message": {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}],
    },
    "done": True,
    "done_reason": "stop",
    "total_duration": 5191566416,
    "load_duration": 2154458,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 383809000,
    "eval_count": 298,
    "eval_duration": 4799921000,
}


def test_parse_response():
    got = ollama.parse_response(json.dumps(ANSWER).encode(), {})
    assert got.tool_calls == [ToolCallPart(name="get_weather", arguments='{"city":"Toronto"}')]
    assert got.finish_reason == "stop" and got.response_model == "llama3.2"
    assert got.usage == Usage(input_tokens=26, output_tokens=298)
    assert got.stop_details == {
        "total_duration": 5191566416,
        "load_duration": 2154458,
        "prompt_eval_duration": 383809000,
        "eval_duration": 4799921000,
    }
    with pytest.raises(ValueError, match="model 'x' not found"):
        ollama.parse_response({"error": "model 'x' not found"}, {})


def test_ndjson_stream_with_line_separators_inside_strings():
    lines = [
        {
            "model": "llama3.2",
            "message": {"role": "assistant", "content": "a\u2028b"},
            "done": False,
        },
        {
            "model": "llama3.2",
            "message": {"role": "assistant", "content": "\u0085c\u2029"},
            "done": False,
        },
        {**ANSWER, "message": {"role": "assistant", "content": ""}},
    ]
    data = "\r\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    parser = ollama.stream_parser({})
    texts = []
    for i in range(len(data)):
        texts += parser.feed(data[i : i + 1])
    texts += parser.close()
    assert texts == ["a\u2028b", "\u0085c\u2029"]
    assert parser.done
    got = parser.response()
    assert got.text == "a\u2028b\u0085c\u2029" and got.usage.output_tokens == 298


def test_stream_error_line_and_broken_stream():
    parser = ollama.stream_parser({})
    parser.feed(b'{"model":"m","message":{"role":"assistant","content":"par"},"done":false}\n')
    assert not parser.done and parser.response().text == "par"
    assert parser.response().finish_reason is None
    parser.feed(b'{"error":"an error was encountered while running the model"}\n')
    assert parser.error.message == "an error was encountered while running the model"


def test_error_body():
    err = ollama.parse_error(404, b'{"error":"model \'nope\' not found, try pulling it first"}', {})
    assert (err.status_code, err.message, err.retryable) == (
        404,
        "model 'nope' not found, try pulling it first",
        False,
    )

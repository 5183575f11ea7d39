"""The Responses API adapter beyond the recorded corpus: building input items from a
neutral conversation, and the stream events the corpus has no recording of (reasoning
summaries, refusals, incomplete and failed responses, error events).  Shapes after the API
reference (platform.openai.com/docs/api-reference/responses-streaming) and openai-python's
``types/responses``."""

from __future__ import annotations

import base64
import hashlib
import json

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
)
from llm_events.providers import get_adapter

responses = get_adapter("openai_responses")
PNG = b"\x89PNG" + bytes(8)
B64 = base64.b64encode(PNG).decode()
SHA = hashlib.sha256(PNG).hexdigest()


def test_build_request_from_a_neutral_conversation():
    req = ChatRequest(
        model="gpt-4.1",
        messages=[
            Message(role="system", parts=[TextPart(content="Be brief.")]),
            Message(
                role="user",
                parts=[
                    TextPart(content="Where?"),
                    UriPart(uri="https://x/a.jpg", detail="high"),
                    BlobPart(mime_type="image/png", sha256=SHA, size=len(PNG)),
                ],
            ),
            Message(
                role="assistant",
                parts=[
                    ReasoningPart(content="think"),
                    TextPart(content="Checking."),
                    ToolCallPart(id="call_1", name="locate", arguments="{}"),
                ],
            ),
            Message(
                role="tool", parts=[ToolCallResponsePart(id="call_1", response={"city": "Oslo"})]
            ),
        ],
        tools=[
            ToolDefinition(name="locate", parameters={"type": "object"}, extra={"strict": True})
        ],
        params={"max_output_tokens": 50, "store": False},
        stream=True,
    )
    body = responses.build_request(req, {SHA: PNG})
    assert body == {
        "model": "gpt-4.1",
        "instructions": "Be brief.",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Where?"},
                    {"type": "input_image", "image_url": "https://x/a.jpg", "detail": "high"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{B64}"},
                ],
            },
            {"role": "assistant", "content": "Checking."},
            {"type": "function_call", "call_id": "call_1", "name": "locate", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": '{"city": "Oslo"}'},
        ],
        "tools": [
            {"type": "function", "name": "locate", "parameters": {"type": "object"}, "strict": True}
        ],
        "max_output_tokens": 50,
        "store": False,
        "stream": True,
    }
    parsed, blobs = responses.parse_request(body)
    assert blobs == {SHA: PNG}
    assert parsed.messages[0] == req.messages[0] and parsed.messages[1] == req.messages[1]
    assert parsed.messages[2].parts == [
        TextPart(content="Checking."),
        ToolCallPart(id="call_1", name="locate", arguments="{}"),
    ]


def sse(*events) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


CREATED = {
    "type": "response.created",
    "response": {
        "id": "resp_1",
        "model": "o4-mini-2025-04-16",
        "status": "in_progress",
        "output": [],
    },
}


def test_stream_reasoning_summary_refusal_and_incomplete():
    data = sse(
        CREATED,
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"type": "reasoning", "id": "rs_1", "summary": []},
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "output_index": 0,
            "summary_index": 0,
            "delta": "Weighing ",
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "output_index": 0,
            "summary_index": 0,
            "delta": "it.",
        },
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "Weighing it."}],
                "encrypted_content": "gAAA",
            },
        },
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []},
        },
        {
            "type": "response.refusal.delta",
            "output_index": 1,
            "content_index": 0,
            "delta": "I can't",
        },
        {
            "type": "response.refusal.delta",
            "output_index": 1,
            "content_index": 0,
            "delta": " help.",
        },
        {
            "type": "response.incomplete",
            "response": {
                "id": "resp_1",
                "model": "o4-mini-2025-04-16",
                "status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"},
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 50,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 40},
                },
            },
        },
    )
    parser = responses.stream_parser({"x-request-id": "req_r"})
    for i in range(0, len(data), 5):
        assert parser.feed(data[i : i + 5]) == []
    assert parser.done and parser.error is None
    got = parser.response()
    assert got.reasoning == [ReasoningPart(content="Weighing it.", signature="gAAA")]
    assert got.refusal == "I can't help."
    assert got.finish_reason == "max_output_tokens"
    assert got.stop_details == {"reason": "max_output_tokens"}
    assert (got.usage.output_tokens, got.usage.reasoning_tokens) == (50, 40)
    assert (got.response_id, got.request_id) == ("resp_1", "req_r")


def test_broken_stream_keeps_function_call_fragments():
    data = sse(
        CREATED,
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_9",
                "name": "f",
                "arguments": "",
            },
        },
        {
            "type": "response.function_call_arguments.delta",
            "output_index": 0,
            "item_id": "fc_1",
            "delta": '{"q": "caf',
        },
    )
    parser = responses.stream_parser({})
    parser.feed(data)
    assert not parser.done
    assert parser.response().tool_calls == [
        ToolCallPart(id="call_9", name="f", arguments='{"q": "caf')
    ]


def test_failed_response_and_error_event():
    parser = responses.stream_parser({"x-request-id": "req_f"})
    parser.feed(
        sse(
            CREATED,
            {
                "type": "response.failed",
                "response": {
                    "id": "resp_1",
                    "status": "failed",
                    "error": {"code": "server_error", "message": "Something went wrong"},
                },
            },
        )
    )
    assert parser.done
    assert (
        parser.error.code,
        parser.error.message,
        parser.error.request_id,
        parser.error.retryable,
    ) == (
        "server_error",
        "Something went wrong",
        "req_f",
        True,
    )
    parser = responses.stream_parser({})
    parser.feed(
        sse({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": None})
    )
    assert (parser.error.status_code, parser.error.code, parser.error.retryable) == (
        429,
        "rate_limit_exceeded",
        True,
    )


def _two_summary_parts() -> tuple[list[bytes], list[str]]:
    """SYNTHETIC, derived from the real corpus stream openai_responses/stream_reasoning_summary:
    its one reasoning summary part followed by a second one (summary_index 1, two deltas),
    the second also in the item's and the response's ``summary`` (o-series models often
    write several parts).  The events, each as SSE bytes."""
    from tests import corpus

    body = corpus.case("openai_responses/stream_reasoning_summary").body.decode()
    events = [json.loads(e.split("data: ", 1)[1]) for e in body.split("\n\n") if "data: " in e]
    second = ["**Checking**", "\n\nx = 9 indeed."]
    out: list[dict] = []
    first = ""
    for event in events:
        for item in [event.get("item"), *(event.get("response") or {}).get("output", [])]:
            if isinstance(item, dict) and item.get("type") == "reasoning":
                item["summary"].append({"type": "summary_text", "text": "".join(second)})
        out.append(event)
        if event["type"] == "response.reasoning_summary_part.done":
            first = event["part"]["text"]
            at = {k: event[k] for k in ("item_id", "output_index")}
            kind = "response.reasoning_summary_text.delta"
            out += [{"type": kind, **at, "summary_index": 1, "delta": d} for d in second]
            done = {"type": "summary_text", "text": "".join(second)}
            out.append({**event, "summary_index": 1, "part": done})
    frames = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in out]
    return frames, [first, "".join(second)]


def test_a_streamed_summary_of_several_parts_reads_as_the_whole_answer():
    frames, summaries = _two_summary_parts()
    parser = responses.stream_parser({})
    for frame in frames:
        parser.feed(frame)
    parser.close()
    completed = json.loads(frames[-1].split(b"data: ", 1)[1])
    assert completed["type"] == "response.completed"
    whole = responses.parse_response(completed["response"])
    assert (
        [r.content for r in parser.response().reasoning]
        == [r.content for r in whole.reasoning]
        == ["\n\n".join(summaries)]
    )
    # cut before the item is done: the parts received, a blank line between them
    parser = responses.stream_parser({})
    for frame in frames:
        if b'"summary_index": 1, "part"' in frame:
            break
        parser.feed(frame)
    assert parser.response().reasoning[0].content == "\n\n".join(summaries)

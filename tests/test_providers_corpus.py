"""Every recorded case of the corpus (tests/data/providers) through its adapter.

The oracle is the real SDK: each case is served byte for byte from 127.0.0.1 (streams in
chunks that split multi-byte characters) to the official ``openai`` or ``anthropic`` client,
and what the SDK makes of it (the final message it assembles, or the error it raises) must
agree with what our adapter makes of the same bytes, fed the same chunks.  Request bodies:
parsed to the neutral shape, built back, parsed again: the same conversation.
"""

from __future__ import annotations

import json

import anthropic
import msgspec
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from llm_events.log.conversation import BlobPart, ReasoningPart, ToolCallPart, ToolCallResponsePart
from llm_events.providers import adapter_for_path, kept_headers

from . import corpus

CASES = corpus.cases()
OK = [c for c in CASES if c.status < 400]
ERRORS = [c for c in CASES if c.status >= 400]
WITH_REQUEST = [c for c in CASES if isinstance(c.request, dict)]


def ids(cases):
    return [c.id for c in cases]


def adapter(case):
    return adapter_for_path(case.path)


def ours(case):
    a = adapter(case)
    if not case.stream:
        return a.parse_response(case.body, case.headers())
    parser = a.stream_parser(case.headers())
    texts = []
    for piece in corpus.chunks(case.body):
        texts += parser.feed(piece)
    texts += parser.close()
    assert parser.done and parser.error is None
    got = parser.response()
    assert "".join(texts) == got.text  # the deltas handed out add up to the text
    return got


def header_request_id(case):
    headers = {k.lower(): v for k, v in case.headers().items()}
    return headers.get("x-request-id") or headers.get("request-id")


# --- answers -------------------------------------------------------------------------------


def openai_client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)


def sdk_chat(case):
    with corpus.serve(case) as server, openai_client(server) as client:
        request = dict(model="m", messages=[{"role": "user", "content": "x"}])
        if not case.stream:
            return client.chat.completions.create(**request)
        state = ChatCompletionStreamState()
        for chunk in client.chat.completions.create(**request, stream=True):
            state.handle_chunk(chunk)
        return state.current_completion_snapshot


def check_chat(case, got, sdk):
    choice = sdk.choices[0]
    message = choice.message
    assert got.text == (message.content or "")
    assert got.refusal == message.refusal
    assert [(c.id, c.name, c.arguments) for c in got.tool_calls] == [
        (c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []
    ]
    assert got.finish_reason == choice.finish_reason
    assert (got.response_id, got.response_model) == (sdk.id, sdk.model)
    usage = sdk.usage
    if usage is None:
        assert got.usage.input_tokens is None
    else:
        assert (got.usage.input_tokens, got.usage.output_tokens) == (
            usage.prompt_tokens,
            usage.completion_tokens,
        )
        details = usage.prompt_tokens_details
        assert got.usage.cache_read_tokens == (details.cached_tokens if details else None)
        done = usage.completion_tokens_details
        assert got.usage.reasoning_tokens == (done.reasoning_tokens if done else None)
    if choice.logprobs is not None:
        expected = choice.logprobs.model_dump(exclude_unset=True)
        theirs = {k: v for k, v in expected.items() if v}
        mine = {k: v for k, v in (got.logprobs or {}).items() if v}
        assert json.loads(json.dumps(mine)) == theirs
        # every token kept as the server sent it (never redacted)
        assert all("token" in t for part in mine.values() for t in part)


def sdk_anthropic(case):
    with corpus.serve(case) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
        request = dict(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        try:
            if not case.stream:
                return client.messages.create(**request)
            with client.messages.stream(**request) as stream:
                return stream.get_final_message()
        finally:
            client.close()


def check_anthropic(case, got, sdk):
    blocks = sdk.content
    assert got.text == "".join(b.text for b in blocks if b.type == "text")
    calls = [b for b in blocks if b.type == "tool_use"]
    assert [(c.id, c.name) for c in got.tool_calls] == [(b.id, b.name) for b in calls]
    assert [json.loads(c.arguments) for c in got.tool_calls] == [b.input for b in calls]
    thinking = [b for b in blocks if b.type in ("thinking", "redacted_thinking")]
    assert [(r.content, r.signature, r.redacted, r.data) for r in got.reasoning] == [
        (b.thinking, b.signature, False, None) if b.type == "thinking" else ("", None, True, b.data)
        for b in thinking
    ]
    assert got.finish_reason == sdk.stop_reason
    assert got.stop_details == ({"stop_sequence": sdk.stop_sequence} if sdk.stop_sequence else None)
    assert (got.response_id, got.response_model) == (sdk.id, sdk.model)
    u = sdk.usage
    read, written = u.cache_read_input_tokens, u.cache_creation_input_tokens
    assert got.usage.input_tokens == u.input_tokens + (read or 0) + (written or 0)
    assert (got.usage.output_tokens, got.usage.cache_read_tokens, got.usage.cache_write_tokens) == (
        u.output_tokens,
        read,
        written,
    )


def sdk_responses(case):
    with corpus.serve(case) as server, openai_client(server) as client:
        if not case.stream:
            return client.responses.create(model="m", input="x")
        final = None
        for event in client.responses.create(model="m", input="x", stream=True):
            if event.type in ("response.completed", "response.incomplete"):
                final = event.response
        return final


def check_responses(case, got, sdk):
    assert got.text == sdk.output_text
    calls = [i for i in sdk.output if i.type == "function_call"]
    assert [(c.id, c.name, c.arguments) for c in got.tool_calls] == [
        (i.call_id, i.name, i.arguments) for i in calls
    ]
    reasoning = [i for i in sdk.output if i.type == "reasoning"]
    assert [r.signature for r in got.reasoning] == [i.encrypted_content for i in reasoning]
    assert [r.content for r in got.reasoning] == [
        "\n\n".join(s.text for s in i.summary) for i in reasoning
    ]
    assert got.finish_reason == sdk.status
    assert (got.response_id, got.response_model) == (sdk.id, sdk.model)
    u = sdk.usage
    assert (
        got.usage.input_tokens,
        got.usage.output_tokens,
        got.usage.cache_read_tokens,
        got.usage.reasoning_tokens,
    ) == (
        u.input_tokens,
        u.output_tokens,
        u.input_tokens_details.cached_tokens,
        u.output_tokens_details.reasoning_tokens,
    )


ORACLES = {
    "openai_chat": (sdk_chat, check_chat),
    "vllm": (sdk_chat, check_chat),
    "anthropic": (sdk_anthropic, check_anthropic),
    "openai_responses": (sdk_responses, check_responses),
}


@pytest.mark.parametrize("case", OK, ids=ids(OK))
def test_answer_agrees_with_the_sdk(case):
    if case.provider not in ORACLES:
        pytest.skip(f"no official SDK reads {case.provider} answers")
    got = ours(case)
    fetch, check = ORACLES[case.provider]
    check(case, got, fetch(case))
    assert got.request_id == header_request_id(case)
    assert got.headers == kept_headers(case.headers())


@pytest.mark.parametrize("case", [c for c in OK if c.stream], ids=ids([c for c in OK if c.stream]))
def test_a_stream_cut_anywhere_keeps_a_prefix_of_everything(case):
    """Cut mid-way, the partial answer's text and each tool call's arguments are
    prefixes of the whole ones, and nothing claims the stream ended."""
    whole = ours(case)
    parser = adapter(case).stream_parser(case.headers())
    parser.feed(case.body[: len(case.body) * 2 // 3])
    partial = parser.response()
    assert not parser.done
    assert whole.text.startswith(partial.text)
    for mine, full in zip(partial.tool_calls, whole.tool_calls, strict=False):
        assert (mine.id, mine.name) == (full.id, full.name)
        assert full.arguments.startswith(mine.arguments)


# --- errors --------------------------------------------------------------------------------


def sdk_error(case):
    with corpus.serve(case) as server:
        if case.provider == "anthropic":
            client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
            call = lambda: client.messages.create(  # noqa: E731
                model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]
            )
            error_cls = anthropic.APIStatusError
        else:
            client = openai_client(server)
            call = lambda: client.chat.completions.create(  # noqa: E731
                model="m", messages=[{"role": "user", "content": "x"}]
            )
            error_cls = openai.APIStatusError
        with pytest.raises(error_cls) as info:
            call()
        client.close()
        return info.value


@pytest.mark.parametrize("case", ERRORS, ids=ids(ERRORS))
def test_error_agrees_with_the_sdk(case):
    got = adapter(case).parse_error(case.status, case.body, case.headers())
    sdk = sdk_error(case)
    body = json.loads(case.body)
    error = body["error"]
    assert got.status_code == case.status == sdk.status_code
    assert got.message == error["message"]
    assert got.error_type == error.get("type")
    if case.provider == "anthropic":
        assert got.code is None
        # header request-id first, else the body's request_id
        assert got.request_id == (sdk.request_id or body.get("request_id"))
    else:
        assert (got.code, got.error_type) == (sdk.code, sdk.type)
        assert got.request_id == sdk.request_id
    assert got.retryable == (case.status in (408, 409, 429) or case.status >= 500)
    headers = {k.lower(): v for k, v in case.headers().items()}
    expected_wait = headers.get("retry-after")
    assert got.retry_after_s == (float(expected_wait) if expected_wait else None)
    assert got.headers == kept_headers(case.headers())
    assert "set-cookie" not in got.headers and "authorization" not in got.headers


def test_the_error_codes_the_issue_names():
    codes = {
        c.name: adapter(c).parse_error(c.status, c.body, c.headers()).code
        for c in corpus.cases("openai_chat")
        if c.status >= 400
    }
    assert codes == {
        "error_400_context_length": "context_length_exceeded",
        "error_401_invalid_api_key": "invalid_api_key",
        "error_401_invalid_api_key_sk_proj": "invalid_api_key",
        "error_429_rate_limit": "rate_limit_exceeded",
    }


# --- requests ------------------------------------------------------------------------------


def without_reasoning(req):
    messages = [
        msgspec.structs.replace(m, parts=[p for p in m.parts if not isinstance(p, ReasoningPart)])
        for m in req.messages
    ]
    return msgspec.structs.replace(req, messages=[m for m in messages if m.parts])


@pytest.mark.parametrize("case", WITH_REQUEST, ids=ids(WITH_REQUEST))
def test_request_parses_and_builds_back_to_the_same_conversation(case):
    a = adapter(case)
    req, blobs = a.parse_request(json.dumps(case.request).encode())
    body = a.build_request(req, blobs)
    again, blobs_again = a.parse_request(body)
    if a.name in ("openai_chat", "openai_responses"):
        # reasoning is read from these formats, never sent back (the Responses API wants
        # the reasoning item's id, which the neutral shape does not keep)
        req = without_reasoning(req)
    assert again == req and blobs_again == blobs
    assert req.model == case.request.get("model")
    assert req.stream == bool(case.request.get("stream"))
    for key, value in case.request.items():  # everything else travels as params, untouched
        if key not in ("model", "messages", "system", "tools", "stream", "input", "instructions"):
            assert req.params[key] == value
    wire_tools = case.request.get("tools")
    if isinstance(wire_tools, list):
        assert len(req.tools) == len(wire_tools)


def test_multi_turn_tool_result_request():
    case = corpus.case("openai_chat/multi_turn_tool_result")
    req, _ = adapter(case).parse_request(case.request)
    roles = [m.role for m in req.messages]
    wire = case.request["messages"]
    assert roles == [("system" if m["role"] == "developer" else m["role"]) for m in wire]
    call_ids = [p.id for m in req.messages for p in m.parts if isinstance(p, ToolCallPart)]
    result_ids = [
        p.id for m in req.messages for p in m.parts if isinstance(p, ToolCallResponsePart)
    ]
    assert call_ids and call_ids == result_ids


def test_anthropic_image_request_keeps_the_bytes_apart():
    case = corpus.case("anthropic/image_base64_request")
    req, blobs = adapter(case).parse_request(case.request)
    [blob] = [p for m in req.messages for p in m.parts if isinstance(p, BlobPart)]
    assert blob.sha256 in blobs and blob.size == len(blobs[blob.sha256])
    assert blob.mime_type and blob.content is None
    assert blob.sha256 not in json.dumps(case.request)  # the neutral part names it by digest
    assert adapter(case).build_request(req, blobs)["messages"] == case.request["messages"]

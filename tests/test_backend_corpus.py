"""Every recorded case of the corpus through the backend that speaks its format.

Served byte for byte from 127.0.0.1 (streams in chunks that split UTF-8 characters), each
answer must come back as an ``LLMResult`` holding everything the adapter read from the same
bytes (itself checked against the official SDKs in test_providers_corpus.py), streamed or
not; each error must raise our error class carrying the provider's details.  Requests that
the corpus recorded are replayed as Prompts: the server receives that conversation.
"""

from __future__ import annotations

import asyncio
import base64
import json

import msgspec
import pytest

from llm_events import Prompt, client_from_spec
from llm_events.backends.errors import APIStatusError
from llm_events.providers import adapter_for_path, kept_headers

from . import corpus

SPECS = {
    "openai_chat": ("openai:gpt-4o-mini", "/v1"),
    "vllm": ("vllm:served-model", "/v1"),
    "anthropic": ("anthropic:claude-3-5-haiku-latest", ""),
    "ollama": ("ollama:llama3.2", ""),
}
BACKEND_PATHS = ("/chat/completions", "/v1/messages", "/api/chat")
CASES = [c for c in corpus.cases() if c.provider in SPECS and c.path.endswith(BACKEND_PATHS)]
ERRORS = [c for c in CASES if c.status >= 400]


def stream_error(case) -> str | None:
    """The error message a stream reports inside itself, if it does."""
    if not case.stream:
        return None
    for line in case.body.decode().splitlines():
        payload = line[5:] if line.startswith("data:") else line
        try:
            event = json.loads(payload)
        except ValueError:
            continue
        if isinstance(event, dict) and (event.get("type") == "error" or "error" in event):
            error = event.get("error", event)
            return error if isinstance(error, str) else error.get("message")
    return None


OK = [c for c in CASES if c.status < 400 and not stream_error(c)]
BROKEN = [c for c in corpus.cases() if c.provider in SPECS and c.status < 400 and stream_error(c)]


def ids(cases):
    return [c.id for c in cases]


def client(case, server):
    spec, prefix = SPECS[case.provider]
    # not recorded: these tests read the LLMResult (recording is tested elsewhere)
    return client_from_spec(
        spec, base_url=server.url + prefix, api_key="sk-test-key", log_prompts=False
    )


def prompt(messages=None, tools=None) -> Prompt:
    return Prompt(
        user="Hello",
        messages=messages or [],
        tools=tools or [],
        origin="context_builder",
    )


def expected(case):
    a = (
        adapter_for_path(case.path)
        if case.provider != "vllm"
        else adapter_for_path("/v1/chat/completions")
    )
    if not case.stream:
        return a.parse_response(case.body, case.headers())
    parser = a.stream_parser(case.headers())
    parser.feed(case.body)
    parser.close()
    return parser.response()


def run(case, p):
    with corpus.serve(case) as server:
        c = client(case, server)
        if case.stream:
            result = asyncio.run(c.agenerate(p, context_builder=None))
        else:
            result = c.generate(p, context_builder=None)
        return result, server.requests


@pytest.mark.parametrize("case", OK, ids=ids(OK))
def test_answer_becomes_a_complete_llm_result(case):
    result, requests = run(case, prompt())
    want = expected(case)
    assert result.text == want.text
    assert result.tool_calls == msgspec.to_builtins(want.tool_calls)
    assert result.refusal == want.refusal
    assert result.reasoning == msgspec.to_builtins(want.reasoning)
    assert result.finish_reason == want.finish_reason
    assert result.stop_details == want.stop_details
    u = want.usage
    if u.input_tokens is not None:  # else estimated by the client (tokens_estimated)
        assert (result.input_tokens, result.output_tokens) == (u.input_tokens, u.output_tokens)
    assert (result.cache_read_tokens, result.cache_write_tokens, result.reasoning_tokens) == (
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
    )
    assert (result.response_id, result.response_model, result.request_id) == (
        want.response_id,
        want.response_model,
        want.request_id,
    )
    assert result.headers == kept_headers(case.headers())
    assert json.loads(json.dumps(result.logprobs)) == json.loads(json.dumps(want.logprobs))
    sent = json.loads(requests[0]["body"])
    assert bool(sent.get("stream")) is case.stream


@pytest.mark.parametrize("case", ERRORS, ids=ids(ERRORS))
def test_error_raises_with_the_providers_details(case):
    with pytest.raises(APIStatusError) as info:
        run(case, prompt())
    err = info.value
    body = json.loads(case.body)
    detail = body.get("error", body)  # vLLM's error fields are at the top level
    detail = detail if isinstance(detail, dict) else {"message": detail}  # Ollama: a string
    if detail.get("code") is not None:
        detail["code"] = str(detail["code"])
    assert err.status_code == case.status
    assert err.error_code == detail.get("code")
    assert err.provider_error_type == detail.get("type")
    headers = {k.lower(): v for k, v in case.headers().items()}
    assert err.request_id == (
        headers.get("x-request-id") or headers.get("request-id") or body.get("request_id")
    )
    assert err.headers == kept_headers(case.headers())
    assert err.retryable == (case.status in (408, 409, 429) or case.status >= 500)
    assert detail.get("message", "")[:40] in str(err)


@pytest.mark.parametrize("case", BROKEN, ids=ids(BROKEN))
def test_an_error_inside_a_stream_raises_with_the_partial_answer(case):
    with pytest.raises(APIStatusError) as info:
        run(case, prompt())
    err = info.value
    assert stream_error(case) in str(err) and "stream error" in str(err)
    want = expected(case)  # what came before the error: text, or only reasoning (Groq's)
    assert getattr(err, "partial_text", None) == (want.text or None)
    assert err.partial_reasoning == msgspec.to_builtins(want.reasoning)
    assert want.text or want.reasoning
    # retryable as the status the error names (Groq's tool_use_failed says 400), else 500
    assert err.retryable == (err.status_code in (408, 409, 429) or err.status_code >= 500)
    if case.id == "openai_chat/stream_error_groq_tool_use_failed":
        assert (err.status_code, err.retryable, err.error_code) == (400, False, "tool_use_failed")


REQUESTS = [
    c
    for c in OK
    if isinstance(c.request, dict)
    and c.provider in ("openai_chat", "anthropic")
    and isinstance(c.request.get("tools", []), list)
]


@pytest.mark.parametrize("case", REQUESTS, ids=ids(REQUESTS))
def test_a_recorded_conversation_is_sent_as_recorded(case):
    """The recorded request as a Prompt (messages, tools): the backend sends that
    conversation (compared in neutral form: the wire spelling may differ, not the content)."""
    a = adapter_for_path(case.path)
    req, blobs = a.parse_request(case.request)
    messages = msgspec.to_builtins(req.messages)
    for m in messages:
        for part in m["parts"]:
            if part["type"] == "blob":
                part["content"] = base64.b64encode(blobs[part["sha256"]]).decode()
    p = Prompt(
        user=next(
            (
                x["content"]
                for m in reversed(messages)
                if m["role"] == "user"
                for x in m["parts"]
                if x["type"] == "text"
            ),
            "",
        ),
        messages=messages,  # the system turns too: their caching marks are sent again
        tools=msgspec.to_builtins(req.tools),
        origin="context_builder",
    )
    _, requests = run(case, p)
    sent, sent_blobs = a.parse_request(requests[0]["body"])
    assert sent_blobs == blobs
    assert [m.role for m in sent.messages] == [m.role for m in req.messages]
    assert sent.messages == req.messages
    assert sent.tools == req.tools


def test_an_sdk_error_through_the_llm_package_keeps_the_details():
    """``llm`` plugins raise the SDK's own errors; from_foreign reads their response."""
    import openai

    from llm_events.backends.errors import AuthenticationError, from_foreign

    case = corpus.case("openai_chat/error_401_invalid_api_key")
    with corpus.serve(case) as server:
        sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        sdk.close()
    err = from_foreign(info.value, "llm")
    assert isinstance(err, AuthenticationError)
    assert (err.status_code, err.error_code, err.provider_error_type) == (
        401,
        "invalid_api_key",
        "invalid_request_error",
    )
    assert err.request_id == info.value.request_id

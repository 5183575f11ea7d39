"""Every recorded exchange of the corpus through the real SDKs, by the proxy and the transport.

What an outside check does: the official ``openai`` / ``anthropic`` client, pointed at the
recording proxy (or given ``llm_events.httpx_client()``), talks to a server on 127.0.0.1 that
replays the recorded bytes (streams in pieces that split UTF-8 characters and SSE lines).
The SDK must get exactly what a direct call gets (the same objects, the same streamed
events, the same error), and the store must hold what the provider said, as the provider
adapter reads the same bytes: text, tool calls, refusal, reasoning, usage, ids, error codes.

One proxy, one replay server and one store serve the whole module (each test tags its call);
the replay server is told which case to serve and whether to gzip it.
"""

from __future__ import annotations

import inspect
import time

import anthropic
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

import llm_events
from llm_events.capture.server import ProxySettings, ProxyThread, build_app
from llm_events.providers import adapter_for_path

from . import corpus
from .proxy_support import ANTHROPIC_KEY, OPENAI_KEY, call_events, store_bytes

CASES = [
    c
    for p in ("openai_chat", "openai_responses", "anthropic")
    for c in corpus.cases(p)
    if c.path in ("/v1/chat/completions", "/v1/responses", "/v1/messages")
]
#: a few shapes served gzip-compressed too, as the providers answer SDKs (Accept-Encoding gzip)
GZIPPED = [
    "openai_chat/tool_calls",
    "openai_chat/stream_parallel_tool_calls",
    "openai_chat/error_429_rate_limit",
    "openai_responses/stream_reasoning_summary",
    "anthropic/stream_thinking_tool_use",
    "anthropic/usage_cache_read",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(replay server, proxy, store) shared by the module's tests."""
    db = tmp_path_factory.mktemp("capture") / "events.db"
    store = llm_events.EventStore(db)
    with corpus.serve(CASES[0]) as server:
        s = ProxySettings(upstreams={"openai": server.url + "/v1", "anthropic": server.url})
        with ProxyThread(build_app(s, store)) as proxy:
            yield server, proxy, store
    store.close()


def request_body(case: corpus.Case) -> dict:
    """The case's request as an SDK call's keyword arguments (the SDK sets ``stream``)."""
    body = corpus.request_body(case)
    body.pop("stream", None)
    return body


def sdk_call(case: corpus.Case, base: str, tag: str, http_client=None):
    """What the SDK hands its caller: the answer, the streamed events, or the error raised
    (status, body, request id), as plain data."""
    body = request_body(case)
    headers = {"X-LLM-Events-Tags": tag}
    if case.provider == "anthropic":
        client = anthropic.Anthropic(
            base_url=base, api_key=ANTHROPIC_KEY, max_retries=0, http_client=http_client
        )
        create = client.messages.create
    else:
        client = openai.OpenAI(
            base_url=base + "/v1", api_key=OPENAI_KEY, max_retries=0, http_client=http_client
        )
        responses = case.provider == "openai_responses"
        create = client.responses.create if responses else client.chat.completions.create
    known = inspect.signature(create).parameters  # what this SDK's version names
    extra = {k: body.pop(k) for k in list(body) if k not in known}
    try:
        answer = create(
            **body, stream=case.stream, timeout=60, extra_headers=headers, extra_body=extra
        )
        if case.stream:
            return ("stream", [e.model_dump() for e in answer])
        return ("answer", answer.model_dump())
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        return ("error", e.status_code, e.body, e.request_id)
    finally:
        client.close()


def parsed(case: corpus.Case):
    """What the provider adapter (checked against the SDKs elsewhere) reads in the case:
    (the answer, the error inside a stream or the error answer)."""
    adapter = adapter_for_path(case.path)
    if case.status >= 400:
        return None, adapter.parse_error(case.status, case.body, case.headers())
    if not case.stream:
        return adapter.parse_response(case.body, case.headers()), None
    parser = adapter.stream_parser(case.headers())
    parser.feed(case.body)
    parser.close()
    return parser.response(), parser.error


def recorded(store, tag: str, timeout: float = 30.0) -> dict:
    """The events of the call tagged ``tag``, once it has finished (or failed in a way the
    SDK could retry: the call then waits for a retry that these SDKs, told not to, never
    send)."""
    deadline = time.monotonic() + timeout
    while True:
        calls = [
            s.event.call_id
            for s in store.iter_events(types=["call_started"])
            if tag in (s.event.tags or [])
        ]
        if calls:
            events = call_events(store, calls[0])
            if "call_finished" in events or any(
                e.retryable for e in events.get("attempt_failed", [])
            ):
                return events
        if time.monotonic() > deadline:
            raise AssertionError(f"no finished call tagged {tag}")
        time.sleep(0.02)


def through(served, case, via, encoding=None):
    server, proxy, store = served
    server.replays, server.encoding = (case,), encoding
    tag = f"{case.id}-{via}-{encoding or 'plain'}"
    direct = sdk_call(case, server.url, tag + "-direct")
    if via == "proxy":
        got = sdk_call(case, proxy.url, tag)
    else:
        http = llm_events.httpx_client(store=store)
        got = sdk_call(case, server.url, tag, http_client=http)
        http.close()
    return direct, got, recorded(store, tag)


def check_events(case, events) -> None:
    answer, error = parsed(case)
    if error is None:
        assert events["call_finished"][0].status == "ok"
        ok = events["attempt_succeeded"][0]
        assert ok.text == answer.text
        assert [(t.id, t.name, t.arguments) for t in ok.tool_calls] == [
            (t.id, t.name, t.arguments) for t in answer.tool_calls
        ]
        assert [(r.content, r.signature, r.redacted, r.data) for r in ok.reasoning] == [
            (r.content, r.signature, r.redacted, r.data) for r in answer.reasoning
        ]
        u = answer.usage
        assert (ok.finish_reason, ok.refusal, ok.stop_details) == (
            answer.finish_reason,
            answer.refusal,
            answer.stop_details,
        )
        assert (
            ok.input_tokens,
            ok.output_tokens,
            ok.cached_tokens,
            ok.cache_write_tokens,
            ok.reasoning_tokens,
        ) == (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
        )
        assert (ok.response_id, ok.response_model, ok.request_id) == (
            answer.response_id,
            answer.response_model,
            answer.request_id,
        )
        assert events["prompt_built"][0].messages
    else:
        failed = events["attempt_failed"][-1]
        if not failed.retryable:
            assert events["call_finished"][0].status == "error"
        assert (failed.error_code, failed.provider_error_type, failed.request_id) == (
            error.code,
            error.error_type,
            error.request_id,
        )
        assert failed.status_code == (case.status if case.status >= 400 else error.status_code)
        if answer is not None:  # a stream broken by an error event: what came before it
            assert failed.partial_text == answer.text


@pytest.mark.parametrize("via", ["proxy", "transport"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_sdk_gets_the_direct_answer_and_the_store_what_the_provider_said(served, case, via):
    direct, got, events = through(served, case, via)
    assert got == direct
    if case.status >= 400 or not case.stream:
        assert got[0] == ("error" if case.status >= 400 else "answer")
    check_events(case, events)


@pytest.mark.parametrize("via", ["proxy", "transport"])
@pytest.mark.parametrize("case_id", GZIPPED)
def test_gzipped_answers_are_recorded_decoded(served, case_id, via):
    case = corpus.case(case_id)
    direct, got, events = through(served, case, via, encoding="gzip")
    assert got == direct
    check_events(case, events)


@pytest.mark.parametrize("via", ["proxy", "transport"])
def test_every_choice_of_a_stream_of_several_is_kept(served, via):
    """``n=3`` streamed: the answer is choice 0's, and ``raw["choices"]`` holds all three as
    the SDK assembles them."""
    case = corpus.case("openai_chat/stream_n_choices")
    direct, got, events = through(served, case, via)
    assert got == direct
    state = ChatCompletionStreamState()
    for dumped in got[1]:
        state.handle_chunk(ChatCompletionChunk.model_validate(dumped))
    sdk = state.current_completion_snapshot
    ok = events["attempt_succeeded"][0]
    assert ok.text == sdk.choices[0].message.content
    assert [
        (c["index"], c["message"]["content"], c["finish_reason"]) for c in ok.raw["choices"]
    ] == [(c.index, c.message.content, c.finish_reason) for c in sdk.choices]
    assert len(ok.raw["choices"]) == 3 and ok.output_tokens == sdk.usage.completion_tokens


def test_no_key_is_in_the_store(served):
    """Whatever ran before in this module (or this test alone): the SDKs' keys went
    upstream and are in no byte of the store."""
    server, proxy, store = served
    case = corpus.case("anthropic/plain")
    through(served, case, "proxy")
    through(served, corpus.case("openai_chat/plain"), "transport")
    store.flush()
    data = store_bytes(store.path)
    assert OPENAI_KEY.encode() not in data and ANTHROPIC_KEY.encode() not in data

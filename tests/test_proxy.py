"""The recording proxy with the real openai and anthropic SDKs, in this process.

The proxy (uvicorn on a thread) points at a fake upstream on 127.0.0.1; each SDK answer is
compared with a direct call to that upstream, and the store is read back.
"""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx
import openai
import pytest

from llm_events.log.events import CallStarted

from .fake_upstream import ANTHROPIC_TEXT, OPENAI_TEXT, FakeUpstream, Scripted, openai_body
from .proxy_support import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    call_events,
    finished_calls,
    proxy_to,
    store_bytes,
)

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello"},
]


@pytest.fixture
def up():
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def proxy(up, store):
    with proxy_to(up, store) as p:
        yield p


def oai(base: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key=OPENAI_KEY, **kw)


def test_openai_sync_answer_is_the_direct_answer_and_recorded(up, proxy, store, db_path):
    direct = oai(up.url + "/v1").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    via = oai(proxy.url + "/v1").chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        temperature=0.2,
        extra_headers={
            "X-LLM-Events-Tags": "checkout, beta",
            "X-LLM-Events-Session": "sess-1",
            "X-LLM-Events-User": "alice",
            "X-LLM-Events-Metadata": '{"ticket": 42}',
        },
    )
    assert via.model_dump() == direct.model_dump()
    assert via.choices[0].message.content == OPENAI_TEXT
    sent = up.seen[-1]
    assert sent["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert not [h for h in sent["headers"] if h.startswith("x-llm-events")]
    assert json.loads(sent["body"])["temperature"] == 0.2

    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    assert list(events) == [
        "prompt_built",
        "call_started",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    built = events["prompt_built"][0]
    assert [m.role for m in built.messages] == ["system", "user"]
    assert built.system == "Be brief." and built.user == "Say hello"
    assert built.options["temperature"] == 0.2
    started: CallStarted = events["call_started"][0]
    assert started.source == "proxy" and started.model == "gpt-4o-mini"
    assert started.tags == ["checkout", "beta"]
    assert started.metadata == {"ticket": 42, "session": "sess-1", "user": "alice"}
    attempt = events["attempt_started"][0]
    assert attempt.backend == "openai"
    assert attempt.params["http"]["path"] == "/v1/chat/completions"
    assert attempt.params["body"]["messages"] == MESSAGES
    ok = events["attempt_succeeded"][0]
    assert ok.text == OPENAI_TEXT
    assert (ok.input_tokens, ok.output_tokens) == (19, 10)
    assert ok.response_id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert ok.request_id == "req_fake_1"
    assert ok.finish_reason == "stop" and ok.ttft_ms is not None
    done = events["call_finished"][0]
    assert (done.status, done.attempts) == ("ok", 1)
    store.flush()
    assert OPENAI_KEY.encode() not in store_bytes(db_path)


def test_openai_stream_chunks_are_the_direct_chunks(up, proxy, store):
    def chunks(base: str) -> list[dict]:
        stream = oai(base).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        return [c.model_dump() for c in stream]

    direct, via = chunks(up.url + "/v1"), chunks(proxy.url + "/v1")
    assert via == direct and len(via) == 7
    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    ok = events["attempt_succeeded"][0]
    assert ok.text == OPENAI_TEXT
    assert (ok.input_tokens, ok.output_tokens) == (19, 10)
    assert ok.request_id == "req_fake_stream"
    assert events["prompt_built"][0].options.get("stream") is True


def test_anthropic_sync_and_stream(up, proxy, store, db_path):
    def client(base: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=base, api_key=ANTHROPIC_KEY)

    kwargs = {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be brief."}
    msgs = [{"role": "user", "content": "Hello"}]
    direct = client(up.url).messages.create(messages=msgs, **kwargs)
    via = client(proxy.url).messages.create(messages=msgs, **kwargs)
    assert via.model_dump() == direct.model_dump()

    def streamed(base: str) -> list[dict]:
        with client(base).messages.stream(messages=msgs, **kwargs) as s:
            return [e.model_dump() for e in s]

    assert streamed(proxy.url) == streamed(up.url)
    first, second = finished_calls(store, 2)
    for call_id in (first, second):
        events = call_events(store, call_id)
        ok = events["attempt_succeeded"][0]
        assert ok.text == ANTHROPIC_TEXT
        assert events["attempt_started"][0].backend == "anthropic"
        built = events["prompt_built"][0]
        assert built.system == "Be brief." and built.user == "Hello"
    sent = up.seen[-1]["headers"]
    assert ANTHROPIC_KEY in (sent.get("x-api-key"), sent.get("authorization", "")[7:])
    store.flush()
    assert ANTHROPIC_KEY.encode() not in store_bytes(db_path)


def test_async_clients_stream_through_the_proxy(up, proxy, store):
    async def main() -> tuple[str, str]:
        o = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY)
        a = anthropic.AsyncAnthropic(base_url=proxy.url, api_key=ANTHROPIC_KEY)
        stream = await o.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        async with a.messages.stream(
            model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        ) as s:
            atext = await s.get_final_text()
        return text, atext

    assert asyncio.run(main()) == (OPENAI_TEXT, ANTHROPIC_TEXT)
    assert len(finished_calls(store, 2)) == 2


def test_sdk_retries_on_429_and_529_are_attempts_of_one_call(up, proxy, store):
    up.script(
        Scripted(
            status=429,
            headers={"retry-after-ms": "5", "x-request-id": "req_429"},
            body=b'{"error": {"message": "Rate limit reached", "type": "requests",'
            b' "param": null, "code": "rate_limit_exceeded"}}',
        )
    )
    answer = oai(proxy.url + "/v1", max_retries=2).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert answer.choices[0].message.content == OPENAI_TEXT
    up.script(
        Scripted(
            status=529,
            headers={"retry-after-ms": "5"},
            body=b'{"type": "error", "error": {"type": "overloaded_error",'
            b' "message": "Overloaded"}}',
        ),
        Scripted(status=529, headers={"retry-after-ms": "5"}, body=b'{"type": "error"}'),
    )
    a = anthropic.Anthropic(base_url=proxy.url, api_key=ANTHROPIC_KEY, max_retries=3)
    m = a.messages.create(
        model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert m.content[0].text == ANTHROPIC_TEXT
    first, second = finished_calls(store, 2)
    e1 = call_events(store, first)
    assert [e.attempt for e in e1["attempt_started"]] == [1, 2]
    failed = e1["attempt_failed"][0]
    assert (failed.status_code, failed.retryable) == (429, True)
    assert failed.error_type == "RateLimitError"
    assert e1["call_finished"][0].status == "ok" and e1["call_finished"][0].attempts == 2
    assert len(e1["call_started"]) == 1
    e2 = call_events(store, second)
    assert [e.attempt for e in e2["attempt_started"]] == [1, 2, 3]
    assert [e.status_code for e in e2["attempt_failed"]] == [529, 529]
    assert e2["call_finished"][0].attempts == 3


def test_a_new_request_with_the_same_body_is_a_new_call(proxy, store):
    client = oai(proxy.url + "/v1")
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    a, b = finished_calls(store, 2)
    assert a != b


def test_key_echoed_in_an_error_body_is_not_stored(up, proxy, store, db_path):
    echo = f"Incorrect API key provided: {OPENAI_KEY[:8]}{'*' * 20}{OPENAI_KEY[-4:]}."
    up.script(
        Scripted(
            status=401,
            body=json.dumps(
                {
                    "error": {
                        "message": echo + f" (you sent {OPENAI_KEY})",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                }
            ).encode(),
        )
    )
    with pytest.raises(openai.AuthenticationError):
        oai(proxy.url + "/v1").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (call_id,) = finished_calls(store, 1)
    failed = call_events(store, call_id)["attempt_failed"][0]
    assert failed.status_code == 401 and not failed.retryable
    assert OPENAI_KEY[-4:] not in failed.message
    store.flush()
    data = store_bytes(db_path)
    assert OPENAI_KEY.encode() not in data
    assert (OPENAI_KEY[:8] + "*" * 20).encode() not in data


def test_64_concurrent_streaming_clients(proxy, store):
    async def one(client: openai.AsyncOpenAI, i: int) -> str:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"question {i}"}],
            stream=True,
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY)
        return await asyncio.gather(*(one(client, i) for i in range(64)))

    assert asyncio.run(main()) == [OPENAI_TEXT] * 64
    ids = finished_calls(store, 64)
    assert len(set(ids)) == 64
    users = {call_events(store, c)["prompt_built"][0].user for c in ids}
    assert users == {f"question {i}" for i in range(64)}
    statuses = {call_events(store, c)["call_finished"][0].status for c in ids}
    assert statuses == {"ok"}


def test_client_disconnecting_mid_stream_is_recorded_as_cancelled(up, proxy, store):
    up.script(Scripted(delay_s=0.1))
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client() as client,
        client.stream("POST", proxy.url + "/v1/chat/completions", json=body) as response,
    ):
        first = next(response.iter_raw())
        assert first.startswith(b"data: ")
    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    failed = events["attempt_failed"][0]
    assert failed.error_type == "Cancelled"
    assert events["call_finished"][0].error_type == "Cancelled"
    assert OPENAI_TEXT.startswith(failed.partial_text or "")


def test_upstream_dying_mid_stream(up, proxy, store):
    def broken(base: str) -> tuple[type[BaseException], str]:
        up.script(Scripted(cut_after=3))
        text = ""
        with pytest.raises(Exception) as info:
            stream = oai(base, max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            for c in stream:
                text += (c.choices[0].delta.content or "") if c.choices else ""
        return info.type, text

    direct = broken(up.url + "/v1")
    assert broken(proxy.url + "/v1") == direct
    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    failed = events["attempt_failed"][0]
    assert failed.partial_text == direct[1] == "Hello! How can I assist"
    assert events["call_finished"][0].status == "error"


def test_upstream_refused_gives_a_502_in_the_providers_format(store):
    from llm_events.capture.server import ProxySettings, ProxyThread, build_app

    from .cli_support import free_port
    from .fake_upstream import FakeUpstream as _  # noqa: F401

    dead = f"http://127.0.0.1:{free_port()}"
    s = ProxySettings(upstreams={"openai": dead + "/v1", "anthropic": dead})
    with ProxyThread(build_app(s, store)) as proxy:
        with pytest.raises(openai.InternalServerError) as info:
            oai(proxy.url + "/v1", max_retries=1).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
        assert info.value.status_code == 502
        assert info.value.body["code"] == "upstream_unreachable"
        with pytest.raises(anthropic.InternalServerError) as ainfo:
            anthropic.Anthropic(
                base_url=proxy.url, api_key=ANTHROPIC_KEY, max_retries=0
            ).messages.create(model="c", max_tokens=1, messages=[{"role": "user", "content": "x"}])
        assert ainfo.value.body["error"]["type"] == "api_error"
    # the shutdown finished the calls still waiting for a retry
    first, second = finished_calls(store, 2)
    e1 = call_events(store, first)
    assert [f.error_type for f in e1["attempt_failed"]] == ["ConnectError", "ConnectError"]
    assert e1["call_finished"][0].status == "error"


def test_body_that_is_not_json_and_an_unknown_path(up, proxy, store):
    r = httpx.post(proxy.url + "/v1/chat/completions", content=b"not json {")
    assert r.status_code == 200 and up.seen[-1]["body"] == b"not json {"
    r2 = httpx.get(proxy.url + "/v1/models?limit=2")
    assert r2.json()["data"][0]["id"] == "gpt-4o-mini"
    assert up.seen[-1]["path"] == "/v1/models" and up.seen[-1]["query"] == "limit=2"
    r3 = httpx.get(proxy.url + "/nowhere/at/all")
    assert r3.status_code == 404 and r3.json()["error"]["code"] == "unknown_path"
    ids = finished_calls(store, 3)
    plain = call_events(store, ids[0])
    assert "prompt_built" not in plain
    raw = plain["attempt_succeeded"][0].raw
    assert raw["status"] == 200 and raw["request_bytes"] == 10 and raw["response_bytes"] > 0
    unknown = call_events(store, ids[2])
    assert unknown["attempt_failed"][0].status_code == 404
    assert unknown["call_started"][0].source == "proxy"


def test_named_upstream_by_path(up, store):
    with proxy_to(up, store, upstreams_extra=None) if False else _named(up, store) as proxy:
        r = oai(proxy.url + "/vllm/v1").chat.completions.create(model="m", messages=MESSAGES)
    assert r.choices[0].message.content == OPENAI_TEXT
    assert up.seen[-1]["path"] == "/v1/chat/completions"
    (call_id,) = finished_calls(store, 1)
    assert call_events(store, call_id)["attempt_started"][0].backend == "vllm"


def _named(up, store):
    from llm_events.capture.server import ProxySettings, ProxyThread, build_app

    s = ProxySettings(upstreams={"vllm": up.url + "/v1"})
    return ProxyThread(build_app(s, store))


def test_token_required_when_set_and_keys_injected(up, store, db_path):
    injected = "sk-proj-injectedkey9876543210zyx"
    with proxy_to(up, store, token="s3cret-token", inject={"openai": injected}) as proxy:
        r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []})
        assert r.status_code == 401
        ok = oai(proxy.url + "/v1", default_headers={"X-LLM-Events-Token": "s3cret-token"})
        ok.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert up.seen[-1]["headers"]["authorization"] == f"Bearer {injected}"
    assert "x-llm-events-token" not in up.seen[-1]["headers"]
    store.flush()
    data = store_bytes(db_path)
    assert injected.encode() not in data and b"s3cret-token" not in data


def test_large_body_is_forwarded_whole_and_recorded_truncated(up, store):
    big = "x" * 5000
    with proxy_to(up, store, max_body_bytes=2048) as proxy:
        oai(proxy.url + "/v1").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": big}]
        )
    assert big in up.seen[-1]["body"].decode()
    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    body = events["attempt_started"][0].params["body"]
    assert body["truncated"] is True and body["size"] > 5000 and len(body["text"]) == 2048
    assert events["prompt_built"][0].user == big


def test_an_answer_over_the_limit_is_read_whole_and_recorded_truncated(up, store):
    with proxy_to(up, store, max_body_bytes=256) as proxy:
        answer = oai(proxy.url + "/v1").chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    assert answer.choices[0].message.content == OPENAI_TEXT
    (call_id,) = finished_calls(store, 1)
    ok = call_events(store, call_id)["attempt_succeeded"][0]
    assert (ok.text, ok.input_tokens, ok.finish_reason) == (OPENAI_TEXT, 19, "stop")
    assert ok.response_id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert ok.raw["truncated"] is True and ok.raw["size"] == len(
        json.dumps(openai_body("gpt-4o-mini"))
    )
    assert len(ok.raw["text"]) == 256 and ok.raw["text"].startswith('{"id": "chatcmpl-')


def test_plain_client_retry_and_idempotency_key_are_attempts_of_one_call(up, proxy, store):
    busy = Scripted(status=503, body=b'{"error": {"message": "busy", "type": "server_error"}}')
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    url = proxy.url + "/v1/chat/completions"
    up.script(busy)
    assert httpx.post(url, json=body).status_code == 503
    assert httpx.post(url, json=body).status_code == 200  # curl-style: same body, soon after
    up.script(busy)
    key = {"Idempotency-Key": "k-123"}
    assert httpx.post(url, json=body, headers=key).status_code == 503
    assert httpx.post(url, json={**body, "n": 1}, headers=key).status_code == 200
    first, second = finished_calls(store, 2)
    for call_id in (first, second):
        events = call_events(store, call_id)
        assert [e.attempt for e in events["attempt_started"]] == [1, 2]
        assert events["attempt_failed"][0].status_code == 503
        assert events["call_finished"][0].status == "ok"

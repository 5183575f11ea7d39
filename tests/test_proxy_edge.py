"""The proxy attacked at the network edge: upstreams that answer with something that is not
an answer, clients that go away, upstreams too slow to wait for.

Upstreams are raw sockets on 127.0.0.1 (:mod:`.raw_upstream`); clients are the real SDKs or
httpx.  Each test checks what a user would notice: the status and bytes the client got, and
the call the store holds (its outcome honest, the store verified).
"""

from __future__ import annotations

import gzip
import json
import time

import anthropic
import httpx
import openai
import pytest

from llm_events.capture.server import ProxySettings, ProxyThread, build_app

from .proxy_support import OPENAI_KEY, call_events, finished_calls
from .raw_upstream import RawUpstream, chunk, chunked_head, http_response

MESSAGES = [{"role": "user", "content": "Say hello"}]
REQUEST = {"model": "gpt-4o-mini", "messages": MESSAGES}


def proxy_for(up: RawUpstream, store, **settings) -> ProxyThread:
    s = ProxySettings(upstreams={"openai": up.url + "/v1", "anthropic": up.url}, **settings)
    return ProxyThread(build_app(s, store))


def outcome(store, call_id: str):
    events = call_events(store, call_id)
    return events, events["call_finished"][0]


ANSWER = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hey"},
                "finish_reason": "stop",
            }
        ],
    }
).encode()


@pytest.mark.parametrize(
    ("body", "headers", "why"),
    [
        (b"<html><body>Service Unavailable</body></html>", [("content-type", "text/html")], "JSON"),
        (b'{"id": "x", "choices": "\xff\xfe\xfa"}', [("content-type", "application/json")], "JSON"),
        (ANSWER, [("content-type", "application/json"), ("content-encoding", "gzip")], "gzip"),
        (b"", [("content-type", "application/json")], "empty"),
    ],
    ids=["html", "not-utf8", "bad-gzip", "empty"],
)
def test_a_200_that_is_not_an_answer_passes_unchanged_and_is_recorded_as_failed(
    store, body, headers, why
):
    with (
        RawUpstream(lambda c, h, b: c.sendall(http_response(200, body, headers))) as up,
        proxy_for(up, store) as proxy,
    ):
        with (
            httpx.Client() as client,
            client.stream("POST", proxy.url + "/v1/chat/completions", json=REQUEST) as r,
        ):
            assert r.status_code == 200
            raw = b"".join(r.iter_raw())
        assert raw == body  # the upstream's bytes, unchanged
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    failed = events["attempt_failed"][0]
    assert (failed.error_type, failed.status_code, failed.retryable) == (
        "InvalidResponse",
        200,
        False,
    )
    assert why in failed.message
    assert "attempt_succeeded" not in events
    assert (done.status, done.error_type) == ("error", "InvalidResponse")
    assert store.verify().ok


def _stream_chunk(content: str) -> bytes:
    delta = {"role": "assistant", "content": content}
    body = {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def test_a_stream_that_ends_before_its_last_event_is_recorded_as_incomplete(store):
    """The upstream ends the stream cleanly but without a finish_reason or [DONE]: the SDK
    shows what came, and the call says the answer is incomplete (not ok)."""

    def handler(conn, head, body):
        conn.sendall(chunked_head())
        for piece in ("Hel", "lo, wor"):
            conn.sendall(chunk(_stream_chunk(piece)))
        conn.sendall(b"0\r\n\r\n")

    with RawUpstream(handler) as up, proxy_for(up, store) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == "Hello, wor"
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    failed = events["attempt_failed"][0]
    assert failed.error_type == "IncompleteStream" and failed.partial_text == "Hello, wor"
    assert "attempt_succeeded" not in events
    assert (done.status, done.error_type) == ("error", "IncompleteStream")
    assert store.verify().ok


def test_a_client_that_leaves_before_the_answer_closes_the_upstream_request(store):
    """The SDK times out while the upstream is still thinking: the proxy closes its
    upstream connection (as the SDK's direct one would be) and keeps serving; the SDK's
    retry is the call's second attempt, the first one cancelled."""
    answered = []

    def handler(conn, head, body):
        if b"slow" in body and b"x-stainless-retry-count: 0" in head.lower():
            if up.wait_closed(conn, timeout=10):
                return
            answered.append(True)
        conn.sendall(http_response(200, ANSWER, [("content-type", "application/json")]))

    with RawUpstream(handler) as up, proxy_for(up, store) as proxy:
        client = openai.OpenAI(
            base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=1, timeout=0.5
        )
        slow = [{"role": "user", "content": "slow"}]
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=slow)
        assert answer.choices[0].message.content == "hey"
        assert up.closed.wait(5), "the upstream request was left running"
        with pytest.raises(openai.APITimeoutError):
            client.with_options(max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=slow
            )
    # the shutdown finished the call still waiting for a retry
    first, second = finished_calls(store, 2)
    events, done = outcome(store, first)
    assert events["prompt_built"][0].user == "slow"
    assert [a.attempt for a in events["attempt_started"]] == [1, 2]
    failed = events["attempt_failed"][0]
    assert (failed.error_type, failed.status_code, failed.retryable) == ("Cancelled", None, True)
    assert (done.status, done.attempts) == ("ok", 2)
    events, done = outcome(store, second)
    assert (done.status, done.error_type) == ("error", "Cancelled")
    assert not answered
    assert store.verify().ok


def test_an_upstream_slower_than_the_timeout_is_a_504_in_the_providers_format(store):
    """No byte of the answer within ``timeout_s``: the SDK gets a 504 it reads as its
    provider's error, the upstream request is closed, the attempt records the timeout."""

    def handler(conn, head, body):
        up.wait_closed(conn, timeout=10)

    with RawUpstream(handler) as up, proxy_for(up, store, timeout_s=0.5) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert info.value.status_code == 504
        assert info.value.body["code"] == "upstream_timeout"
        assert "0.5 s" in info.value.body["message"]
        assert up.closed.wait(5)
        claude = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-x", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as ainfo:
            claude.messages.create(
                model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert ainfo.value.status_code == 504
        assert ainfo.value.body["error"]["type"] == "timeout_error"  # Anthropic's, for a 504
    # the shutdown finished the calls still waiting for a retry
    first, second = finished_calls(store, 2)
    for call_id in (first, second):
        events, done = outcome(store, call_id)
        failed = events["attempt_failed"][0]
        assert (failed.error_type, failed.retryable) == ("ReadTimeout", True)
        assert (done.status, done.error_type) == ("error", "ReadTimeout")
    assert store.verify().ok


def test_an_answer_in_a_coding_nobody_knows_is_recorded_as_the_sdk_read_it(store):
    """``Content-Encoding: snappy`` on a plain JSON body: httpx (so the SDK) reads the
    bytes as they are, and so does the recorder."""
    headers = [("content-type", "application/json"), ("content-encoding", "snappy")]
    with (
        RawUpstream(lambda c, h, b: c.sendall(http_response(200, ANSWER, headers))) as up,
        proxy_for(up, store) as proxy,
    ):
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert answer.choices[0].message.content == "hey"
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    assert events["attempt_succeeded"][0].text == "hey"
    assert done.status == "ok"


def test_a_gzipped_request_goes_upstream_as_sent_and_its_conversation_is_recorded(store):
    from .fake_upstream import OPENAI_TEXT, FakeUpstream
    from .proxy_support import proxy_to

    sent = gzip.compress(json.dumps(REQUEST).encode())
    with FakeUpstream() as up, proxy_to(up, store) as proxy:
        r = httpx.post(
            proxy.url + "/v1/chat/completions",
            content=sent,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == OPENAI_TEXT
        assert up.seen[-1]["body"] == sent
        assert up.seen[-1]["headers"]["content-encoding"] == "gzip"
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    assert events["prompt_built"][0].user == "Say hello"
    started = events["attempt_started"][0]
    assert started.params["body"] == REQUEST
    assert started.params["http"]["content_encoding"] == "gzip"
    assert events["attempt_succeeded"][0].text == OPENAI_TEXT and done.status == "ok"


def test_a_5xx_html_page_reaches_the_sdk_whole_and_is_recorded_clipped(store):
    page = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 200_000
    page += b"</body></html>"
    headers = [("content-type", "text/html")]
    with (
        RawUpstream(lambda c, h, b: c.sendall(http_response(502, page, headers))) as up,
        proxy_for(up, store) as proxy,
    ):
        claude = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-x", max_retries=0)
        with pytest.raises(anthropic.InternalServerError) as info:
            claude.messages.create(
                model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.status_code == 502
        assert info.value.response.content == page
        # the proxy still serves
        r = httpx.post(proxy.url + "/v1/messages", content=b"{}")
        assert r.status_code == 502 and r.content == page
    first, second = finished_calls(store, 2)
    events, done = outcome(store, first)
    failed = events["attempt_failed"][0]
    assert (failed.error_type, failed.status_code) == ("ServerError", 502)
    assert failed.message.startswith("<html><head><title>502 Bad Gateway")
    assert len(failed.message) <= 2000 and len(done.error_message) <= 2000  # clipped
    assert store.verify().ok


@pytest.mark.parametrize(
    ("model", "recorded", "answered"),
    [
        ('"gpt\\ud800"', "gpt\\ud800", "gpt\\ud800"),
        ("5", None, "5"),  # the adapter reads no model from a number; the answer echoes it
        ('{"a": 1}', None, '{"a": 1}'),
    ],
    ids=["lone-surrogate", "number", "object"],
)
def test_a_model_name_that_is_not_a_string_of_text_is_forwarded_and_recorded(
    store, model, recorded, answered
):
    """``"model": "gpt\\ud800"`` (valid JSON, not storable text) was refused with a 503
    and left no call; an answer echoing ``"model": 5`` crashed the recorder after the client
    had its answer, leaving the call running for ever."""
    from .fake_upstream import OPENAI_TEXT, FakeUpstream
    from .proxy_support import proxy_to

    body = '{"model": ' + model + ', "messages": [{"role": "user", "content": "Say hello"}]}'
    with FakeUpstream() as up, proxy_to(up, store) as proxy:
        r = httpx.post(proxy.url + "/v1/chat/completions", content=body.encode())
        assert r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"] == OPENAI_TEXT
        assert up.seen[-1]["body"] == body.encode()
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    assert events["call_started"][0].model == recorded
    assert events["prompt_built"][0].user == "Say hello"
    ok = events["attempt_succeeded"][0]
    assert (ok.text, ok.response_model) == (OPENAI_TEXT, answered)
    assert done.status == "ok"
    assert store.verify().ok


def test_an_anthropic_stream_that_ends_before_message_stop_is_recorded_as_incomplete(store):
    from .fake_upstream import anthropic_chunks

    frames = anthropic_chunks("claude-sonnet-4-5")[:4]  # up to the first text delta

    def handler(conn, head, body):
        conn.sendall(chunked_head())
        for frame in frames:
            conn.sendall(chunk(frame))
        conn.sendall(b"0\r\n\r\n")

    with RawUpstream(handler) as up, proxy_for(up, store) as proxy:
        claude = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-x", max_retries=0)
        with claude.messages.stream(
            model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        ) as s:
            text = "".join(s.text_stream)
    assert text == "Hi! My name"
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    failed = events["attempt_failed"][0]
    assert (failed.error_type, failed.partial_text) == ("IncompleteStream", "Hi! My name")
    assert (done.status, done.error_type) == ("error", "IncompleteStream")
    assert store.verify().ok


def test_a_fault_of_the_recorder_never_reaches_the_client_nor_leaves_a_call_running(
    store, monkeypatch
):
    """A recorder that fails on an answer (here: pricing raising, as it did on a numeric
    model) still gives the client its answer unchanged and closes the call as
    RecorderError; the proxy keeps serving."""
    from llm_events.capture import exchange as exchange_module

    from .fake_upstream import OPENAI_TEXT, FakeUpstream
    from .proxy_support import proxy_to

    def broken(*args, **kwargs):
        raise TypeError("a bug in the recorder")

    monkeypatch.setattr(exchange_module, "price_call", broken)
    with FakeUpstream() as up, proxy_to(up, store) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert answer.choices[0].message.content == OPENAI_TEXT
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == OPENAI_TEXT
    first, second = finished_calls(store, 2)
    for call_id in (first, second):
        events, done = outcome(store, call_id)
        failed = events["attempt_failed"][0]
        assert failed.error_type == "RecorderError" and "a bug in the recorder" in failed.message
        assert failed.status_code == 200
        assert (done.status, done.error_type) == ("error", "RecorderError")
    assert store.verify().ok


def test_a_redirect_to_another_host_is_passed_on_and_recorded_as_such(store):
    """An --upstream URL that redirects to another host (a moved service): the SDK follows
    the Location itself, past the proxy, so the call the store holds says where it went."""

    def moved(conn, head, body):
        conn.sendall(http_response(200, ANSWER, [("content-type", "application/json")]))

    def handler(conn, head, body):
        location = f"{elsewhere.url}/v1/moved/chat/completions"
        page = b"<html><body>Moved</body></html>"
        conn.sendall(
            http_response(307, page, [("location", location), ("content-type", "text/html")])
        )

    with RawUpstream(moved) as elsewhere, RawUpstream(handler) as up, proxy_for(up, store) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert answer.choices[0].message.content == "hey"  # from the other host, directly
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    failed = events["attempt_failed"][0]
    assert (failed.error_type, failed.status_code) == ("Redirected", 307)
    assert f"{elsewhere.url}/v1/moved/chat/completions: a client that follows" in failed.message
    assert done.error_type == "Redirected"
    assert store.verify().ok


def test_a_redirect_within_the_upstream_brings_the_client_back_through_the_proxy(store):
    """A Location under the upstream's own base URL is rewritten to the same place under
    the proxy (as reverse proxies rewrite redirects), so the SDK that follows it is
    recorded again instead of talking to the provider past the proxy; the store keeps the
    upstream's own Location."""

    def handler(conn, head, body):
        if head.startswith(b"POST /v1/chat/completions2 "):
            conn.sendall(http_response(200, ANSWER, [("content-type", "application/json")]))
            return
        location = f"{up.url}/v1/chat/completions2"
        conn.sendall(http_response(308, b"", [("location", location)]))

    with RawUpstream(handler) as up, proxy_for(up, store) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert answer.choices[0].message.content == "hey"
        seen = [h.split(b"\r\n", 1)[0] for h in up.requests]
        assert seen == [
            b"POST /v1/chat/completions HTTP/1.1",
            b"POST /v1/chat/completions2 HTTP/1.1",
        ]
    first, second = finished_calls(store, 2)
    assert outcome(store, second)[1].status == "ok"  # the followed request, recorded too
    events, done = outcome(store, first)
    failed = events["attempt_failed"][0]
    assert (failed.error_type, failed.status_code) == ("Redirected", 308)
    assert failed.message == (
        f"the upstream answered 308, redirecting to {up.url}/v1/chat/completions2; passed on "
        f"as {proxy.url}/v1/chat/completions2, so a client that follows it comes back through "
        "the proxy and is recorded as another call"
    )
    assert store.verify().ok


@pytest.mark.parametrize(
    ("location", "upstream_url", "client_path", "expected"),
    [
        # built-in openai upstream whose base ends in /v1 (the client's /v1 absorbed)
        ("https://api.example/v1/chat/x", "https://api.example/v1/chat/completions",
         "/v1/chat/completions", "http://127.0.0.1:8787/v1/chat/x"),
        # a named upstream: its /NAME prefix kept
        ("http://gpu:8000/v1/models/", "http://gpu:8000/v1/models", "/vllm/v1/models",
         "http://127.0.0.1:8787/vllm/v1/models/"),
        ("https://other.example/v1/chat/x", "https://api.example/v1/chat/completions",
         "/v1/chat/completions", None),  # another host: unchanged
        ("https://api.example/v10/x", "https://api.example/v1/chat/completions",
         "/v1/chat/completions", None),  # not under the base path
        ("/v1/chat/x", "https://api.example/v1/chat/completions", "/v1/chat/completions", None),
    ],
)  # fmt: skip
def test_which_locations_are_pointed_back_at_the_proxy(
    location, upstream_url, client_path, expected
):
    from llm_events.capture.proxy import proxied_location

    base = upstream_url.rsplit("/v1", 1)[0] + "/v1"
    got = proxied_location(location, base, upstream_url, client_path, "http://127.0.0.1:8787")
    assert got == expected


def test_a_stream_that_turns_unreadable_keeps_what_had_come(store):
    def handler(conn, head, body):
        conn.sendall(chunked_head())
        for piece in ("Hel", "lo"):
            conn.sendall(chunk(_stream_chunk(piece)))
        conn.sendall(chunk(b"data: <html>502 Bad Gateway</html>\n\n"))
        conn.sendall(b"0\r\n\r\n")

    with RawUpstream(handler) as up, proxy_for(up, store) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        text = ""
        with pytest.raises(ValueError):  # the SDK cannot read the event either
            for c in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ):
                text += c.choices[0].delta.content or ""
    assert text == "Hello"
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    failed = events["attempt_failed"][0]
    assert failed.error_type == "InvalidResponse" and "not valid JSON" in failed.message
    assert failed.partial_text == "Hello"
    assert store.verify().ok


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (
            b'{"error": {"message": "The model `gpt-x` does not exist",'
            b' "type": "invalid_request_error", "code": "model_not_found"}}',
            "The model `gpt-x` does not exist",
            "model_not_found",
        ),
        (
            b'{"object": "error", "message": "maximum context length is 4096 tokens",'
            b' "type": "BadRequestError", "param": null, "code": 400}',
            "maximum context length is 4096 tokens",
            "400",
        ),
    ],
    ids=["openai-shape", "vllm-shape"],
)
def test_an_error_sent_with_status_200_is_recorded_with_the_providers_message(
    store, body, message, code
):
    headers = [("content-type", "application/json")]
    with (
        RawUpstream(lambda c, h, b: c.sendall(http_response(200, body, headers))) as up,
        proxy_for(up, store) as proxy,
    ):
        r = httpx.post(proxy.url + "/v1/chat/completions", json=REQUEST)
        assert (r.status_code, r.content) == (200, body)
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    failed = events["attempt_failed"][0]
    assert (failed.error_type, failed.status_code) == ("InvalidResponse", 200)
    assert message in failed.message and failed.error_code == code
    assert message in done.error_message
    assert store.verify().ok


def test_a_client_that_leaves_mid_stream_closes_the_upstream_stream(store):
    sent = []

    def handler(conn, head, body):
        if not json.loads(body).get("stream"):
            conn.sendall(http_response(200, ANSWER, [("content-type", "application/json")]))
            return
        conn.sendall(chunked_head())
        for i in range(100):
            try:
                conn.sendall(chunk(_stream_chunk(f"p{i} ")))
            except OSError:
                up.closed.set()
                return
            sent.append(i)
            time.sleep(0.05)

    with RawUpstream(handler) as up, proxy_for(up, store) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        got = [next(stream).choices[0].delta.content for _ in range(2)]
        stream.close()
        assert up.closed.wait(5), "the upstream stream was left running"
        assert len(sent) < 100
        again = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert got == ["p0 ", "p1 "]
    first, second = finished_calls(store, 2)
    assert outcome(store, second)[1].status == "ok"  # the followed request, recorded too
    events, done = outcome(store, first)
    failed = events["attempt_failed"][0]
    assert failed.error_type == "Cancelled" and failed.partial_text.startswith("p0 p1 ")
    assert done.error_type == "Cancelled"
    assert again.choices[0].message.content == "hey"  # the proxy still serves
    assert store.verify().ok


def test_the_access_log_says_what_the_store_says(store, caplog):
    """A 200 that is not an answer was logged ``outcome=ok`` (so was a client gone
    mid-stream)."""
    import logging

    caplog.set_level(logging.INFO, logger="llm_events.proxy.access")
    page = [("content-type", "text/html")]
    with (
        RawUpstream(lambda c, h, b: c.sendall(http_response(200, b"<html></html>", page))) as up,
        proxy_for(up, store) as proxy,
    ):
        assert httpx.post(proxy.url + "/v1/chat/completions", json=REQUEST).status_code == 200
        assert httpx.get(proxy.url + "/v1/models").status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "llm_events.proxy.access"]
    assert len(lines) == 2
    assert "status=200" in lines[0] and lines[0].endswith("outcome=InvalidResponse")
    assert lines[1].endswith("outcome=ok")  # a plain exchange: no answer to read


def test_a_stream_the_upstream_cuts_off_has_its_access_line(store, caplog):
    import logging

    from .fake_upstream import FakeUpstream, Scripted
    from .proxy_support import proxy_to

    caplog.set_level(logging.INFO, logger="llm_events.proxy.access")
    with FakeUpstream() as up, proxy_to(up, store) as proxy:
        up.script(Scripted(cut_after=3))
        with pytest.raises(httpx.HTTPError):
            httpx.post(proxy.url + "/v1/chat/completions", json={**REQUEST, "stream": True})
        finished_calls(store, 1)
    lines = [r.getMessage() for r in caplog.records if r.name == "llm_events.proxy.access"]
    assert len(lines) == 1 and "status=200" in lines[0]
    assert lines[0].endswith('outcome="upstream error"')


def test_a_request_over_the_size_limit_is_a_413_and_never_sent(store):
    """The proxy holds a request whole before sending it on: a body with no bound was memory
    with no bound. Over ``max_request_bytes`` (declared by Content-Length or, chunked, as it
    arrives) the SDK gets a 413 in the provider's format, the upstream sees nothing, nothing
    is recorded as a call; the proxy goes on serving."""
    from .fake_upstream import OPENAI_TEXT, FakeUpstream
    from .proxy_support import proxy_to

    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 200_000}]}
    with FakeUpstream() as up, proxy_to(up, store, max_request_bytes=100_000) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(**big)
        assert raised.value.status_code == 413
        assert raised.value.code == "request_too_large"
        assert "over the proxy's limit of 100,000 bytes" in raised.value.message

        def chunks():
            body = json.dumps(big).encode()
            for i in range(0, len(body), 16_384):
                yield body[i : i + 16_384]

        r = httpx.post(proxy.url + "/v1/chat/completions", content=chunks(), timeout=30)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        claude = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as raised_a:
            claude.messages.create(
                model="claude-3-5-haiku-latest", max_tokens=16, messages=big["messages"]
            )
        assert raised_a.value.status_code == 413  # Anthropic's own type for it
        assert raised_a.value.body["error"]["type"] == "request_too_large"
        assert up.seen == []
        small = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert small.choices[0].message.content == OPENAI_TEXT
    assert len(finished_calls(store, 1)) == 1  # only the small one
    assert len(list(store.iter_events(types=["call_started"]))) == 1


def test_a_client_that_stalls_mid_body_gets_a_408_and_nothing_is_sent(store):
    """uvicorn bounds idle connections between requests, not a client that stops sending
    its body: such a request held its connection (and its bytes) for ever. Past
    ``body_timeout_s`` with no new piece the client is answered 408 in the provider's
    format, the upstream sees nothing, nothing is recorded, and the proxy goes on."""
    import socket

    from .fake_upstream import OPENAI_TEXT, FakeUpstream
    from .proxy_support import proxy_to

    with FakeUpstream() as up, proxy_to(up, store, body_timeout_s=0.5) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                b'{"model": "gpt-4o-mini", '
            )
            t0 = time.monotonic()
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                piece = sock.recv(65536)
                if not piece:
                    break
                reply += piece
            waited = time.monotonic() - t0
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), head
        error = json.loads(body)["error"]
        assert error["code"] == "request_timeout"
        assert error["message"] == (
            "llm-events proxy: no more of the request body came for 0.5 s (after 25 bytes); "
            "nothing was sent upstream"
        )
        assert 0.4 < waited < 9
        assert up.seen == []
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        small = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert small.choices[0].message.content == OPENAI_TEXT
    assert len(finished_calls(store, 1)) == 1  # only the whole one


def test_a_request_that_cannot_be_recorded_is_a_503_and_never_sent(tmp_path):
    """Write-ahead: ``attempt_started`` is committed before the request goes upstream. A
    store that refuses the write (here one opened read-only, as a full disk or a file
    another user owns would) makes the proxy answer 503 ``recording_failed`` in the
    provider's format, and send nothing: an unrecorded call never reaches the provider."""
    from llm_events import EventStore

    from .fake_upstream import FakeUpstream
    from .proxy_support import proxy_to

    path = tmp_path / "ro.db"
    EventStore(path).close()
    store = EventStore(path, readonly=True)
    with FakeUpstream() as up, proxy_to(up, store) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(**REQUEST)
        assert raised.value.status_code == 503
        assert raised.value.code == "recording_failed"
        assert raised.value.body["message"] == (
            "llm-events proxy: the request could not be recorded, so it was not sent"
        )
        claude = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as raised_a:
            claude.messages.create(
                model="claude-3-5-haiku-latest", max_tokens=16, messages=MESSAGES
            )
        assert raised_a.value.status_code == 503
        assert raised_a.value.body["error"] == {
            "type": "api_error",
            "message": "llm-events proxy: the request could not be recorded, so it was not sent",
        }
        assert up.seen == []
    store.close()
    assert EventStore(path, readonly=True).count() == 0


def test_an_html_page_labelled_as_a_stream_is_recorded_as_no_stream(store):
    """A gateway's error page sent as ``text/event-stream`` holds no event at all: the
    attempt fails as ``InvalidResponse`` saying what came, not as a stream cut short."""
    page = b"<html><head><title>503 Service Unavailable</title></head><body>down</body></html>"

    def handler(conn, head, body):
        conn.sendall(chunked_head())
        conn.sendall(chunk(page))
        conn.sendall(b"0\r\n\r\n")

    with RawUpstream(handler) as up, proxy_for(up, store) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        got = list(
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        )
        assert got == []  # the SDK finds no event either
    (call_id,) = finished_calls(store, 1)
    events, done = outcome(store, call_id)
    failed = events["attempt_failed"][0]
    assert failed.error_type == "InvalidResponse"
    assert failed.message == (
        f"the answer (text/event-stream, {len(page)} bytes) is unreadable: no server-sent "
        f"event in it (it begins {page[:60].decode()!r})"
    )
    assert (done.status, done.error_type) == ("error", "InvalidResponse")

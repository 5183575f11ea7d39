"""Every recorded provider exchange of the corpus (tests/data/providers) through the proxy:
the client gets the recorded bytes exactly, and the store holds the call."""

from __future__ import annotations

import json

import httpx
import pytest

from llm_events.capture.server import ProxySettings, ProxyThread, build_app

from . import corpus
from .proxy_support import OPENAI_KEY, call_events, finished_calls, store_bytes

CASES = [
    c
    for p in ("openai_chat", "openai_responses", "anthropic")
    for c in corpus.cases(p)
    if c.path.startswith("/v1/")
]


def _request_body(case: corpus.Case) -> dict:
    if case.request is not None:
        body = dict(case.request)
    elif case.provider == "anthropic":
        body = {
            "model": "claude-x",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
        }
    elif case.provider == "openai_responses":
        body = {"model": "gpt-x", "input": "hi"}
    else:
        body = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
    body["stream"] = case.stream
    return body


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_case_through_the_proxy(case, store, db_path):
    body = _request_body(case)
    headers = {"authorization": f"Bearer {OPENAI_KEY}", "x-stainless-retry-count": "0"}
    with corpus.serve(case) as server:
        direct = httpx.post(server.url + case.path, json=body, headers=headers)
        s = ProxySettings(upstreams={"openai": server.url + "/v1", "anthropic": server.url})
        with ProxyThread(build_app(s, store)) as proxy:
            via = httpx.post(proxy.url + case.path, json=body, headers=headers)
        assert json.loads(server.requests[-1]["body"]) == body
    assert via.status_code == direct.status_code == case.status
    assert via.content == direct.content == case.body
    for name, value in case.headers().items():
        assert via.headers.get(name) == value, name
    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    assert events["call_started"][0].source == "proxy"
    if case.status < 400:
        assert events["call_finished"][0].status == "ok"
        assert "attempt_succeeded" in events
    else:
        failed = events["attempt_failed"][0]
        assert failed.status_code == case.status
        assert events["call_finished"][0].status == "error"
    store.flush()
    assert OPENAI_KEY.encode() not in store_bytes(db_path)

"""Every recorded provider exchange of the corpus (tests/data/providers) through the proxy:
the client gets the recorded bytes exactly, and the store holds the call."""

from __future__ import annotations

import json

import httpx
import pytest

from llm_events.capture.blob_refs import BLOB_REF
from llm_events.capture.server import ProxySettings, ProxyThread, build_app
from llm_events.log.conversation import BlobPart

from . import corpus
from .proxy_support import (
    OPENAI_KEY,
    call_events,
    finished_calls,
    parsed_answer,
    store_bytes,
    stream_reports_error,
)

CASES = corpus.proxied_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_case_through_the_proxy(case, store, db_path):
    body = corpus.request_body(case)
    headers = {"authorization": f"Bearer {OPENAI_KEY}", "x-stainless-retry-count": "0"}
    with corpus.serve(case) as server:
        direct = httpx.post(server.url + case.path, json=body, headers=headers)
        s = ProxySettings(upstreams={"openai": server.url + "/v1", "anthropic": server.url})
        with ProxyThread(build_app(s, store)) as proxy:
            via = httpx.post(proxy.url + case.path, json=body, headers=headers)
        assert json.loads(server.requests[-1]["body"]) == body
    assert via.status_code == direct.status_code == case.status
    assert via.content == direct.content == case.body
    hop = {"connection", "keep-alive", "transfer-encoding"}
    assert [h for h in via.headers.multi_items() if h[0] not in hop] == [
        h for h in direct.headers.multi_items() if h[0] not in hop
    ]
    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    assert events["call_started"][0].source == "proxy"
    if case.status < 400 and not stream_reports_error(case):
        assert events["call_finished"][0].status == "ok"
        ok = events["attempt_succeeded"][0]
        want = parsed_answer(case)
        assert ok.text == want.text
        assert [(t.id, t.name, t.arguments) for t in ok.tool_calls] == [
            (t.id, t.name, t.arguments) for t in want.tool_calls
        ]
        assert (ok.finish_reason, ok.refusal, ok.response_id) == (
            want.finish_reason,
            want.refusal,
            want.response_id,
        )
        assert (ok.input_tokens, ok.output_tokens, ok.reasoning_tokens) == (
            want.usage.input_tokens,
            want.usage.output_tokens,
            want.usage.reasoning_tokens,
        )
        assert [r.content for r in ok.reasoning] == [r.content for r in want.reasoning]
        built = events["prompt_built"][0]
        assert built.messages, "the conversation is recorded"
        digests = [p.sha256 for m in built.messages for p in m.parts if isinstance(p, BlobPart)]
        if digests:  # inline images: stored once, the recorded body refers to them
            store.flush()
            (count,) = store.conn().execute("SELECT count(*) FROM blobs").fetchone()
            assert count == len(set(digests))
            body_text = json.dumps(events["attempt_started"][0].params["body"])
            assert all(f"{BLOB_REF}{d}" in body_text for d in digests)
    else:
        failed = events["attempt_failed"][0]
        if case.status >= 400:
            assert failed.status_code == case.status
        else:  # the error event the stream carried
            assert failed.error_code or failed.provider_error_type
        assert events["call_finished"][0].status == "error"
    store.flush()
    assert OPENAI_KEY.encode() not in store_bytes(db_path)

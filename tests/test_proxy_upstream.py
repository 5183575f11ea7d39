"""What the upstream receives from the proxy's direct pool path (capture/upstream.py)."""

from __future__ import annotations

import json

import httpcore
import httpx
import pytest

from llm_events.capture.upstream import _host, as_httpx

from .fake_upstream import FakeUpstream
from .proxy_support import OPENAI_KEY, proxy_to


def test_upstream_gets_host_length_query_and_headers_as_a_direct_call_would(store):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hé"}]}
    with FakeUpstream() as up, proxy_to(up, store) as proxy:
        r = httpx.post(
            proxy.url + "/v1/chat/completions?api-version=2024",
            content=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {OPENAI_KEY}", "X-Custom": "a"},
        )
        assert r.status_code == 200
        posted = up.app.seen[-1]
        got = httpx.get(proxy.url + "/v1/models")
        assert got.status_code == 200
        fetched = up.app.seen[-1]
    assert posted["headers"]["host"] == f"127.0.0.1:{up.port}"
    assert posted["headers"]["content-length"] == str(len(json.dumps(body).encode()))
    assert posted["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert posted["headers"]["x-custom"] == "a"
    assert posted["query"] == "api-version=2024"
    assert json.loads(posted["body"]) == body
    assert fetched["headers"]["host"] == f"127.0.0.1:{up.port}"
    assert "content-length" not in fetched["headers"]  # a GET without a body has none


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://api.openai.com/v1", b"api.openai.com"),
        ("https://api.openai.com:443/v1", b"api.openai.com"),
        ("http://127.0.0.1:80/v1", b"127.0.0.1"),
        ("http://127.0.0.1:11434", b"127.0.0.1:11434"),
        ("http://[::1]:8000/v1", b"[::1]:8000"),
    ],
)
def test_host_header_is_the_one_httpx_sends(url, host):
    assert _host(httpcore.URL(url)) == host
    assert httpx.Request("GET", url).headers["host"].encode() == host


def test_pool_errors_become_the_httpx_errors_of_the_same_name():
    for exc in (httpcore.ConnectError("no"), httpcore.ReadTimeout("slow")):
        mapped = as_httpx(exc)
        assert type(mapped).__name__ == type(exc).__name__
        assert isinstance(mapped, httpx.TransportError) and str(mapped) == str(exc)
    assert isinstance(as_httpx(httpcore.PoolTimeout("full")), httpx.PoolTimeout)
    plain = ValueError("x")
    assert as_httpx(plain) is plain

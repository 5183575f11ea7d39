"""The recorded-response corpus is complete, well-formed, credential-free and served byte for byte."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests import corpus

ALL = corpus.cases()
IDS = [c.id for c in ALL]
SSE = [c for c in ALL if c.stream and "event-stream" in c.content_type]
NDJSON = [c for c in ALL if c.stream and "ndjson" in c.content_type]
JSON_BODIES = [c for c in ALL if not c.stream and "json" in c.content_type]


def sse_events(body: bytes) -> list[dict]:
    """Events of an SSE stream per the WHATWG spec: lines end only at CR, LF or CRLF."""
    events, data, event = [], [], None
    for line in re.split(r"\r\n|\r|\n", body.decode("utf-8")):
        if line == "":
            if data:
                events.append({"event": event, "data": "\n".join(data)})
            data, event = [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
    if data:
        events.append({"event": event, "data": "\n".join(data)})
    return events


def test_every_provider_has_cases():
    for provider in corpus.PROVIDERS:
        assert corpus.cases(provider), provider


def test_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="unknown provider"):
        corpus.cases("nope")


@pytest.mark.parametrize("c", ALL, ids=IDS)
def test_metadata_complete(c: corpus.Case):
    meta = c.meta
    assert isinstance(meta["status"], int) and 100 <= meta["status"] <= 599
    assert isinstance(meta["headers"], dict) and all(
        isinstance(v, str) for v in meta["headers"].values()
    )
    assert isinstance(meta["content_type"], str) and meta["content_type"]
    assert isinstance(meta["stream"], bool)
    assert isinstance(meta["source"], str) and len(meta["source"]) > 10
    assert isinstance(meta["notes"], str)
    assert c.body, "empty body"
    if c.request is not None:
        assert isinstance(c.request, dict)
    if "synthetic" in meta["source"].lower():
        assert "synthetic" in meta["notes"].lower()
    if "outcome" in meta:  # a stream that starts with 200 and then fails or stops early
        assert (
            meta["outcome"] in ("error", "incomplete") and meta["stream"] and meta["status"] == 200
        )


@pytest.mark.parametrize("c", ALL, ids=IDS)
def test_no_credentials(c: corpus.Case):
    lowered = {k.lower() for k in c.meta["headers"]}
    assert not lowered & {"authorization", "x-api-key", "api-key", "set-cookie", "cookie"}
    text = c.body.decode("utf-8", "replace") + json.dumps(c.request or {})
    fake = c.meta.get("fake_api_key")
    for key in re.findall(r"sk-[A-Za-z0-9_-]{20,}", text):
        assert fake and key == fake, f"something like a key in {c.id}: {key[:12]}..."


def test_sources_md_lists_every_case():
    text = (corpus.ROOT / "SOURCES.md").read_text(encoding="utf-8")
    missing = [c.id for c in ALL if f"`{c.id}`" not in text]
    assert not missing


@pytest.mark.parametrize("c", JSON_BODIES, ids=[c.id for c in JSON_BODIES])
def test_json_bodies_parse(c: corpus.Case):
    parsed = json.loads(c.body)
    assert isinstance(parsed, dict)
    if c.status >= 400:
        assert "error" in parsed or parsed.get("object") == "error"  # vLLM's flat error


@pytest.mark.parametrize("c", SSE, ids=[c.id for c in SSE])
def test_sse_streams_are_valid_events(c: corpus.Case):
    events = sse_events(c.body)
    assert len(events) >= 2
    for ev in events:
        if ev["data"] == "[DONE]":
            continue
        payload = json.loads(ev["data"])
        if ev["event"] is not None and "type" in payload:
            assert payload["type"] == ev["event"], c.id


@pytest.mark.parametrize("c", NDJSON, ids=[c.id for c in NDJSON])
def test_ndjson_streams_parse(c: corpus.Case):
    lines = [line for line in re.split(rb"\r\n|\r|\n", c.body) if line.strip()]
    assert len(lines) >= 2
    for line in lines:
        assert isinstance(json.loads(line), dict)


def test_a_header_recorded_twice_is_served_once_joined():
    c = corpus.case("openai_chat/usage_cache_write_reasoning")
    names = [k for k in c.meta["headers"] if k.lower() == "access-control-expose-headers"]
    assert len(names) == 2
    assert c.headers()[names[0]] == "CF-Ray, X-Request-ID, CF-Ray"


def test_chunks_split_every_multibyte_character():
    body = "a😀b中\u2028c".encode()
    pieces = corpus.chunks(body, size=100)
    assert b"".join(pieces) == body
    for piece in pieces[:-1]:
        with pytest.raises(UnicodeDecodeError):
            piece.decode("utf-8")


def test_served_bytes_are_identical():
    """Every case comes back from the 127.0.0.1 server with its status, headers and exact bytes."""
    with httpx.Client(timeout=10) as client:
        for c in ALL:
            with corpus.serve(c) as server:
                with client.stream("POST", server.url + c.path, json=c.request or {}) as response:
                    pieces = list(response.iter_raw())
                assert response.status_code == c.status, c.id
                assert b"".join(pieces) == c.body, c.id
                for key, value in c.headers().items():
                    assert response.headers.get(key) == value, (c.id, key)
                assert server.requests[0]["path"] == c.path
                if c.stream and len(c.body) > 64:
                    assert len(pieces) > 1, c.id


def test_cases_are_served_in_order_then_the_last_repeats():
    """An SDK's retry after a 429 gets the next case: what the proxy's retry tests need."""
    limited, ok = corpus.case("anthropic/error_429_rate_limit"), corpus.case("anthropic/plain")
    with corpus.serve(limited, ok) as server, httpx.Client(timeout=10) as client:
        statuses = [client.post(server.url + "/v1/messages", json={}).status_code for _ in range(3)]
    assert statuses == [429, 200, 200]
    assert len(server.requests) == 3


def test_anthropic_sdk_reads_a_served_stream():
    """The real SDK assembles the corpus stream served in split chunks, multi-byte text intact."""
    import anthropic

    c = corpus.case("anthropic/synthetic_stream_multibyte")
    with corpus.serve(c) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)
        request = {k: c.request[k] for k in ("model", "max_tokens", "messages")}
        with client.messages.stream(**request) as stream:
            text = "".join(stream.text_stream)
    assert text == c.meta["expected_text"]


def test_openai_sdk_reads_line_separators_inside_strings():
    """U+2028/U+2029/U+0085 inside JSON strings do not end SSE lines for the real SDK."""
    import openai

    c = corpus.case("openai_chat/synthetic_stream_line_separators")
    with corpus.serve(c) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)
        request = {k: v for k, v in c.request.items() if k != "stream"}
        chunks = list(client.chat.completions.create(stream=True, **request))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == c.meta["expected_text"]

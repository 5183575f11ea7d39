"""Compressed answers through the proxy: recorded decoded, and never in a coding the
recorder cannot undo (the client still gets bytes in a coding it asked for)."""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import pytest

from llm_events.capture.encodings import Decoder, decodable, narrowed_accept_encoding
from llm_events.capture.server import ProxySettings, ProxyThread, build_app

from . import corpus
from .proxy_support import OPENAI_KEY, call_events, finished_calls

NODE_FETCH = "gzip, deflate, br, zstd"  # what Node's fetch (undici) asks for


def test_the_proxy_asks_upstream_only_for_codings_it_can_record(store):
    case = corpus.case("openai_chat/tool_calls")
    headers = {
        "authorization": f"Bearer {OPENAI_KEY}",
        "accept-encoding": NODE_FETCH,
        "x-stainless-retry-count": "0",
    }
    with corpus.serve(case, encoding="gzip") as server:
        s = ProxySettings(upstreams={"openai": server.url + "/v1"})
        with ProxyThread(build_app(s, store)) as proxy:
            got = httpx.post(proxy.url + case.path, json=case.request, headers=headers)
        sent = {k.lower(): v for k, v in server.requests[-1]["headers"].items()}
    assert got.headers["content-encoding"] == "gzip" and got.content == case.body
    asked = [c.strip() for c in sent["accept-encoding"].split(",")]
    assert set(asked) <= decodable() and {"gzip", "deflate"} <= set(asked)
    if "br" not in decodable():
        assert "br" not in asked
    (call_id,) = finished_calls(store, 1)
    ok = call_events(store, call_id)["attempt_succeeded"][0]
    answer = json.loads(case.body)["choices"][0]["message"]
    assert [t.name for t in ok.tool_calls] == [c["function"]["name"] for c in answer["tool_calls"]]


@pytest.mark.parametrize(
    ("asked", "sent"),
    [
        ("gzip, deflate", "gzip, deflate"),
        ("gzip;q=1.0, identity; q=0.5", "gzip;q=1.0, identity; q=0.5"),
        ("compress", "identity"),
        ("", "identity"),
    ],
)
def test_accept_encoding_keeps_what_can_be_undone(asked, sent):
    assert narrowed_accept_encoding(asked) == sent


def test_star_is_spelled_out_as_what_can_be_undone():
    assert {"gzip", "deflate"} <= set(narrowed_accept_encoding("*").split(", ")) <= decodable()


BODY = (
    'data: {"choices":[{"delta":{"content":"h\u00e9llo \u2014 \U0001f600"}}]}\n\n' * 50
).encode()


def undone(decoder: Decoder, data: bytes, size: int) -> bytes:
    return b"".join(decoder(data[i : i + size]) for i in range(0, len(data), size))


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_gzip_zlib_and_raw_deflate_are_undone_in_any_pieces(size):
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_deflate = raw.compress(BODY) + raw.flush()
    for coding, data in (
        ("gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", raw_deflate),  # what some servers send as deflate
        ("gzip, gzip", gzip.compress(gzip.compress(BODY))),
    ):
        decoder = Decoder(coding)
        assert undone(decoder, data, size) == BODY and decoder.ok, coding


def test_a_coding_it_does_not_know_is_read_as_the_client_reads_it_and_a_corrupt_body_not():
    decoder = Decoder("snappy")  # httpx (the SDKs) and Node's fetch pass it over
    assert decoder.ok and decoder(b'{"id": 1}') == b'{"id": 1}'
    assert decoder.skipped == ["snappy"]
    corrupt = Decoder("gzip")
    assert corrupt(b"not gzip at all") == b"" and not corrupt.ok


def test_a_whole_request_body_is_undone_within_a_limit():
    from llm_events.capture.encodings import undone_whole

    assert undone_whole(gzip.compress(BODY), "gzip", len(BODY)) == BODY
    bomb = gzip.compress(b"\0" * 50_000_000)  # 50 MB from about 50 kB
    assert len(bomb) < 100_000 and undone_whole(bomb, "gzip", 1_000_000) is None
    assert undone_whole(b"not gzip", "gzip", 100) is None
    assert undone_whole(BODY, "snappy", len(BODY)) is None

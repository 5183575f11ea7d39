"""SSE and NDJSON framing: lines end only at CR, LF or CRLF, whatever the chunking."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from llm_events.providers.lines import LineSplitter, SSEStream, iter_lines, iter_sse

SEPARATORS = "\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e"


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for p in points:
        pieces.append(data[start:p])
        start = p
    pieces.append(data[start:])
    return pieces


def test_unicode_line_separators_stay_inside_a_line():
    text = f"data: {json.dumps({'t': 'a' + SEPARATORS + 'b'}, ensure_ascii=False)}\n\n"
    assert [json.loads(e.data)["t"] for e in iter_sse([text.encode()])] == ["a" + SEPARATORS + "b"]
    # what str.splitlines (and httpx's iter_lines) would have done
    assert len(text.splitlines()) > 2


def test_cr_lf_and_crlf_end_lines_even_split_between_chunks():
    assert list(iter_lines([b"a\r", b"\nb\rc\nd\r\n", b"e"])) == ["a", "b", "c", "d", "e"]
    splitter = LineSplitter()
    assert splitter.feed(b"x\r") == []  # the LF of a CRLF may follow
    assert splitter.feed(b"y") == ["x"]
    assert splitter.close() == ["y"]


def test_multibyte_characters_split_across_chunks_arrive_whole():
    data = 'data: {"t": "h\u00e9\u20ac\U0001f600"}\n\n'.encode()
    pieces = [data[i : i + 1] for i in range(len(data))]
    assert [json.loads(e.data)["t"] for e in iter_sse(pieces)] == ["h\u00e9\u20ac\U0001f600"]


def test_sse_fields_comments_multiline_data_bom_and_unterminated_last_event():
    stream = SSEStream()
    events = stream.feed(
        b"\xef\xbb\xbf: comment\nevent: one\ndata: a\ndata:b\nid: 7\n\ndata: [DONE]"
    )
    assert [(e.event, e.data, e.id) for e in events] == [("one", "a\nb", "7")]
    assert [(e.event, e.data) for e in stream.close()] == [("message", "[DONE]")]


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
            max_size=12,
        ),
        max_size=8,
    ),
    st.sampled_from(["\n", "\r", "\r\n"]),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_any_chunking_gives_the_same_lines(lines, end, cuts):
    data = "".join(line + end for line in lines).encode()
    assert list(iter_lines(split_at(data, cuts))) == lines

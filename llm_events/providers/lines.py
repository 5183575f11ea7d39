"""Stream framing to the specs: lines, server-sent events and NDJSON, fed bytes as they come.

A line ends only at CR, LF or CRLF (the SSE spec, and what NDJSON servers write).
``str.splitlines`` and httpx's ``iter_lines`` also split at U+2028, U+2029, U+0085 and
others, which cuts a JSON string holding one of them in two; nothing here does.  Bytes are
decoded incrementally, so a multi-byte UTF-8 character split across two network chunks
arrives whole, and a CR at the end of one chunk followed by LF at the start of the next is
one line end.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import NamedTuple

_LINE_END = re.compile(r"\r\n|\r|\n")


class LineSplitter:
    """Bytes in, complete lines out (without their line ends)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""

    def feed(self, chunk: bytes) -> list[str]:
        return self._split(self._decoder.decode(chunk))

    def close(self) -> list[str]:
        """The last line if the stream did not end with a line end."""
        lines = self._split(self._decoder.decode(b"", final=True))
        rest = self._buffer
        self._buffer = ""
        if rest:
            lines.append(rest.removesuffix("\r"))
        return lines

    @property
    def pending(self) -> str:
        """Text received after the last complete line."""
        return self._buffer

    def _split(self, text: str) -> list[str]:
        if not text:
            return []
        text = self._buffer + text
        lines: list[str] = []
        start = 0
        for match in _LINE_END.finditer(text):
            if match.group() == "\r" and match.end() == len(text):
                break  # a CR last: the LF of a CRLF may be in the next chunk
            lines.append(text[start : match.start()])
            start = match.end()
        self._buffer = text[start:]
        return lines


class SSEEvent(NamedTuple):
    event: str
    data: str
    id: str | None = None


class SSEDecoder:
    """Lines in, events out (the WHATWG event-stream interpretation).

    ``data:`` lines are joined with LF, ``event:`` names the event (default ``message``), a
    blank line dispatches it, lines starting with ``:`` are comments, a leading BOM is
    dropped.  An event whose data is empty is not dispatched (as the spec says), unless it
    named itself with ``event:``.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._first = True

    def line(self, line: str) -> SSEEvent | None:
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def close(self) -> SSEEvent | None:
        """An event left without its blank line (a stream cut at its very end)."""
        return self._dispatch()

    def _dispatch(self) -> SSEEvent | None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data and not event:
            return None
        return SSEEvent(event or "message", "\n".join(data), self._id)


class SSEStream:
    """Bytes in, events out: a :class:`LineSplitter` feeding an :class:`SSEDecoder`."""

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._decoder = SSEDecoder()

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return self._events(self._lines.feed(chunk))

    def close(self) -> list[SSEEvent]:
        events = self._events(self._lines.close())
        last = self._decoder.close()
        if last is not None:
            events.append(last)
        return events

    def _events(self, lines: list[str]) -> list[SSEEvent]:
        out = []
        for line in lines:
            event = self._decoder.line(line)
            if event is not None:
                out.append(event)
        return out


def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    splitter = LineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.close()


async def aiter_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    splitter = LineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.close():
        yield line


def iter_sse(chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    stream = SSEStream()
    for chunk in chunks:
        yield from stream.feed(chunk)
    yield from stream.close()

"""Server-sent events: the framing OpenAI and Anthropic use for streamed answers.

Only the parts of the format those APIs use: ``event:`` and ``data:`` fields (multi-line
data joined with newlines), a blank line ends an event, ``:`` lines are comments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple


class SSEEvent(NamedTuple):
    event: str
    data: str


async def aiter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Group lines into events.  A trailing event without its blank line is still yielded."""
    event = ""
    data: list[str] = []
    async for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if data or event:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data or event:
        yield SSEEvent(event or "message", "\n".join(data))

"""What every wire-format adapter offers, and the pieces they share.

An adapter translates one provider's wire format to and from the neutral shape of
:mod:`llm_events.log.conversation`:

- ``build_request(req, blobs=None) -> dict``: the provider's request body.  Inline parts
  (``BlobPart``) take their bytes from ``part.content`` (base64) or from ``blobs``
  (``{sha256: bytes}``).
- ``parse_request(body) -> (ChatRequest, {sha256: bytes})``: a wire body in neutral form;
  inline base64 content becomes a ``BlobPart`` (digest, size, media type, no content) and
  its bytes are handed back in the second item, to be stored once.
- ``parse_response(body, headers) -> ModelResponse``.
- ``stream_parser(headers) -> StreamParser``: fed the raw bytes of a streamed answer as
  they arrive.
- ``parse_error(status, body, headers) -> ProviderError``.

Nothing here does I/O; the backends, the httpx transport and the proxy bring the bytes.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from ..log.conversation import (
    BlobPart,
    ChatRequest,
    Message,
    ModelResponse,
    ProviderError,
    ToolCallPart,
    ToolDefinition,
)
from .lines import SSEStream

#: Longest provider error message kept (the rest is cut, marked with an ellipsis).
MAX_MESSAGE_CHARS = 2000

Blobs = dict[str, bytes]


class StreamFormatError(ValueError):
    """A streamed event or line that is not the JSON the protocol promises."""


# --- headers --------------------------------------------------------------------------------

_KEPT_EXACT = frozenset(
    {"x-request-id", "request-id", "openai-processing-ms", "retry-after", "retry-after-ms"}
)
_KEPT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


def kept_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The response headers worth recording, names lower-cased: request ids, rate limits
    and retry hints.  Nothing else (in particular no credential or cookie) is kept."""
    if not headers:
        return {}
    items = headers.multi_items() if hasattr(headers, "multi_items") else headers.items()
    out: dict[str, str] = {}
    for name, value in items:
        lower = str(name).lower()
        if lower in _KEPT_EXACT or lower.startswith(_KEPT_PREFIXES):
            out[lower] = str(value)
    return out


def header_request_id(headers: Mapping[str, str] | None) -> str | None:
    kept = kept_headers(headers)
    return kept.get("x-request-id") or kept.get("request-id")


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or an HTTP date)."""
    lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
    ms = lowered.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# --- errors ---------------------------------------------------------------------------------


def is_retryable_status(status: int) -> bool:
    """408, 409, 429 and 5xx (529 included) may succeed later; other 4xx will not."""
    return status in (408, 409, 429) or status >= 500


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def parse_error(
    status: int, body: bytes | str | None, headers: Mapping[str, str] | None
) -> ProviderError:
    """A provider's error answer in any of the shapes they use.

    OpenAI and vLLM: ``{"error": {"message", "type", "code", "param"}}`` (older vLLM: the same
    fields at the top level); Anthropic: ``{"type": "error", "error": {"type", "message"},
    "request_id"}``; Ollama: ``{"error": "..."}``; FastAPI: ``{"detail": ...}``; anything
    else: the text itself.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    data: Any = None
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    error_type = code = request_id = None
    message = text
    if isinstance(data, dict):
        err = data.get("error", data.get("detail"))
        if isinstance(err, dict):
            message = err.get("message") or err.get("msg") or json.dumps(err)
            error_type = _str_or_none(err.get("type"))
            code = _str_or_none(err.get("code"))
        elif isinstance(err, str):
            message = err
        elif isinstance(err, list):  # FastAPI validation errors
            message = json.dumps(err, ensure_ascii=False)
        elif isinstance(data.get("message"), str):
            message = data["message"]
            error_type = _str_or_none(data.get("type"))
            code = _str_or_none(data.get("code"))
        request_id = _str_or_none(data.get("request_id"))
    elif data is not None and not isinstance(data, str):
        message = text
    elif isinstance(data, str):
        message = data
    return ProviderError(
        status_code=status,
        error_type=error_type,
        code=code,
        message=shorten(str(message)),
        request_id=header_request_id(headers) or request_id,
        headers=kept_headers(headers),
        retryable=is_retryable_status(status),
        retry_after_s=parse_retry_after(headers),
        raw=data if data is not None else (text or None),
    )


# --- inline content -------------------------------------------------------------------------


def blob(data: bytes, mime_type: str | None, modality: str | None = None) -> tuple[BlobPart, str]:
    """A ``BlobPart`` for ``data`` (without the bytes) and its digest."""
    digest = hashlib.sha256(data).hexdigest()
    part = BlobPart(
        modality=modality or modality_of(mime_type),
        mime_type=mime_type,
        sha256=digest,
        size=len(data),
    )
    return part, digest


def modality_of(mime_type: str | None) -> str:
    kind = (mime_type or "").partition("/")[0]
    return kind if kind in ("image", "audio", "video") else "file"


def b64decode(data: str) -> bytes | None:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None


def parse_data_url(url: str) -> tuple[str | None, bytes] | None:
    """``(media type, bytes)`` of a ``data:...;base64,`` URL, or ``None`` for another URL."""
    if not url.startswith("data:"):
        return None
    header, comma, payload = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        return None
    data = b64decode(payload)
    if data is None:
        return None
    return header[: -len(";base64")] or None, data


def blob_bytes(part: BlobPart, blobs: Mapping[str, bytes] | None) -> bytes:
    """The bytes of an inline part: its own ``content`` or the ``blobs`` it names."""
    content = getattr(part, "content", None)
    if content:
        data = b64decode(content)
        if data is not None:
            return data
    if blobs and part.sha256 in blobs:
        return blobs[part.sha256]
    raise ValueError(
        f"the bytes of inline {part.modality} {part.sha256[:12] or '?'} are not available "
        "(give the part a base64 'content' or pass blobs={sha256: bytes})"
    )


def blob_base64(part: BlobPart, blobs: Mapping[str, bytes] | None) -> str:
    content = getattr(part, "content", None)
    if content:
        return content
    return base64.b64encode(blob_bytes(part, blobs)).decode("ascii")


def data_url(part: BlobPart, blobs: Mapping[str, bytes] | None) -> str:
    return f"data:{part.mime_type or 'application/octet-stream'};base64,{blob_base64(part, blobs)}"


# --- small helpers --------------------------------------------------------------------------


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def decode_body(body: bytes | str | dict[str, Any]) -> Any:
    """A JSON body as data (``ValueError`` when it is not JSON)."""
    if isinstance(body, (dict, list)):
        return body
    return json.loads(body)


def json_text(value: Any) -> str:
    """Arguments as JSON text, for formats that send them as objects."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_value(text: str) -> Any:
    """Arguments as an object, for formats that want one (``{}`` when empty or not JSON)."""
    if not text or not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return {}


class ToolCallAssembly:
    """Tool calls arriving in pieces, keyed by the stream's own index."""

    def __init__(self) -> None:
        self._calls: dict[Any, dict[str, Any]] = {}

    def start(self, key: Any, *, id: str | None = None, name: str | None = None) -> None:
        call = self._calls.setdefault(key, {"id": None, "name": "", "arguments": []})
        if id and not call["id"]:
            call["id"] = id
        if name and not call["name"]:
            call["name"] = name

    def add(self, key: Any, arguments: str) -> None:
        self.start(key)
        if arguments:
            self._calls[key]["arguments"].append(arguments)

    def set_arguments(self, key: Any, arguments: str) -> None:
        self.start(key)
        self._calls[key]["arguments"] = [arguments]

    def has(self, key: Any) -> bool:
        return key in self._calls

    def arguments(self, key: Any) -> str:
        return "".join(self._calls[key]["arguments"]) if key in self._calls else ""

    def parts(self) -> list[ToolCallPart]:
        return [
            ToolCallPart(id=c["id"], name=c["name"], arguments="".join(c["arguments"]))
            for c in self._calls.values()
        ]

    def __bool__(self) -> bool:
        return bool(self._calls)


# --- the adapter protocol -------------------------------------------------------------------


class StreamParser:
    """Feed it the bytes of a streamed answer; it keeps everything received so far.

    ``feed(chunk)`` returns the text deltas in that chunk (what a streaming caller shows);
    ``response()`` the answer as assembled so far (complete once ``done``, partial for a
    broken stream); ``error`` a provider error reported inside the stream.  Call ``close()``
    at the end of the bytes: it parses an event the server left without its last line end.
    """

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self.headers = kept_headers(headers)
        self.request_id = header_request_id(headers)
        self.done = False
        self.error: ProviderError | None = None
        #: events with data seen so far (``None``: a format that does not count them); none
        #: in a body that came means it was no event stream (an HTML error page a gateway
        #: labelled ``text/event-stream``)
        self.events_seen: int | None = None

    def feed(self, chunk: bytes) -> list[str]:
        raise NotImplementedError

    def close(self) -> list[str]:
        return []

    def response(self) -> ModelResponse:
        raise NotImplementedError


class SSEJsonParser(StreamParser):
    """A stream of SSE events each holding one JSON object (OpenAI's and Anthropic's): the
    framing, blank events, the ``[DONE]`` marker and a malformed event handled once here;
    a format reads each object in :meth:`_event`."""

    #: what one event is called in the error for a malformed one
    unit: ClassVar[str] = "event"

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self._sse = SSEStream()
        self.events_seen = 0

    def feed(self, chunk: bytes) -> list[str]:
        return self._handle(self._sse.feed(chunk))

    def close(self) -> list[str]:
        return self._handle(self._sse.close())

    def _handle(self, events: list[Any]) -> list[str]:
        deltas: list[str] = []
        for event in events:
            data = event.data
            stripped = data.strip()
            if not stripped:
                continue
            self.events_seen = (self.events_seen or 0) + 1
            if stripped == "[DONE]":
                self._done_marker()
                continue
            try:
                value = json.loads(data)
            except ValueError:
                raise StreamFormatError(
                    f"a stream {self.unit} is not valid JSON: {data[:200]!r}"
                ) from None
            if isinstance(value, dict):
                self._event(value, data, deltas)
        return deltas

    def _done_marker(self) -> None:
        """``data: [DONE]``: OpenAI's end of a chat stream (ignored by the others)."""

    def _event(self, value: dict[str, Any], data: str, deltas: list[str]) -> None:
        """One event's object (``data``: its text as sent); append the text deltas it holds."""
        raise NotImplementedError


class Adapter:
    """Base of the wire-format adapters (stateless: one instance per format is shared).

    The public methods are the same for every format; a format fills in the hooks: how its
    conversation and tools are written and read, how an answer is read, which stream parser
    reads its streams."""

    #: the format's name (``openai_chat``, ``openai_responses``, ``anthropic``, ``ollama``)
    name: ClassVar[str] = ""
    #: the request path under the provider's base URL
    path: ClassVar[str] = ""
    #: request keys the neutral fields hold (every other key travels in ``params``)
    wire_keys: ClassVar[tuple[str, ...]] = ("model", "messages", "tools", "stream")
    #: the stream parser of this format
    parser: ClassVar[type[StreamParser]] = StreamParser

    # the API ----------------------------------------------------------------------------------

    def build_request(
        self, req: ChatRequest, blobs: Mapping[str, bytes] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {} if req.model is None else {"model": req.model}
        body.update(self.write_conversation(req.messages, blobs))
        if req.tools:
            body["tools"] = [self.write_tool(t) for t in req.tools]
        body.update(req.params)
        if req.stream or self.always_says_stream:
            body["stream"] = req.stream
        return body

    def parse_request(self, body: dict[str, Any] | bytes | str) -> tuple[ChatRequest, Blobs]:
        data = request_body(body)
        blobs: Blobs = {}
        messages = self.read_conversation(data, blobs)
        skip = self.wire_keys_of(data)
        model = data.get("model")
        req = ChatRequest(
            model=model if isinstance(model, str) else None,
            messages=messages,
            tools=self.read_tools(data),
            params={k: v for k, v in data.items() if k not in skip},
            stream=self.read_stream_flag(data),
        )
        return req, blobs

    def parse_response(
        self, body: bytes | str | dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> ModelResponse:
        return self.read_answer(decode_body(body), headers)

    def stream_parser(self, headers: Mapping[str, str] | None = None) -> StreamParser:
        return self.parser(headers)

    def parse_error(
        self, status: int, body: bytes | str | None, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        return parse_error(status, body, headers)

    # the hooks --------------------------------------------------------------------------------

    #: whether a body always carries ``stream`` (Ollama streams unless told not to)
    always_says_stream: ClassVar[bool] = False

    def write_conversation(
        self, messages: list[Message], blobs: Mapping[str, bytes] | None
    ) -> dict[str, Any]:
        raise NotImplementedError

    def write_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        raise NotImplementedError

    def read_conversation(self, data: dict[str, Any], blobs: Blobs) -> list[Message]:
        raise NotImplementedError

    def read_tool(self, tool: dict[str, Any]) -> ToolDefinition:
        raise NotImplementedError

    def read_tools(self, data: dict[str, Any]) -> list[ToolDefinition]:
        return [self.read_tool(t) for t in as_list(data.get("tools")) if isinstance(t, dict)]

    def read_answer(self, data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
        raise NotImplementedError

    def read_stream_flag(self, data: dict[str, Any]) -> bool:
        return bool(data.get("stream"))

    def wire_keys_of(self, data: dict[str, Any]) -> tuple[str, ...]:
        return self.wire_keys

    def __repr__(self) -> str:
        return f"<{self.name} adapter>"


def request_body(body: dict[str, Any] | bytes | str) -> dict[str, Any]:
    data = decode_body(body)
    if not isinstance(data, dict):
        raise ValueError("a request body must be a JSON object")
    return data

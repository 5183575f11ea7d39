"""What capture needs of the provider adapters, in one place.

The proxy and the transport see wire traffic; ``llm_events.providers`` turns it into the
neutral shapes of :mod:`llm_events.log.conversation`.  Capture reaches the adapters only
through this module, so the rest of capture does not depend on how they are laid out.

Until ``llm_events.providers`` exists this module holds a minimal stand-in (OpenAI chat
completions and Anthropic messages: text, usage, ids), replaced by the real adapters.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ..log.conversation import ChatRequest, Message, ModelResponse, ProviderError, TextPart, Usage

#: response headers worth keeping: request ids, rate limits, retry hints (never credentials)
_KEPT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_KEPT_NAMES = (
    "x-request-id",
    "request-id",
    "retry-after",
    "retry-after-ms",
    "openai-processing-ms",
)


class StreamParser(Protocol):
    done: bool

    def feed(self, chunk: bytes) -> list[str]: ...

    def response(self) -> ModelResponse: ...


class Adapter(Protocol):
    name: str

    def parse_request(self, body: dict[str, Any]) -> Any: ...

    def parse_response(self, body: Any, headers: dict[str, str]) -> ModelResponse: ...

    def stream_parser(self, headers: dict[str, str]) -> StreamParser: ...

    def parse_error(self, status: int, body: Any, headers: dict[str, str]) -> ProviderError: ...


def kept_headers(headers: dict[str, str]) -> dict[str, str]:
    """The response headers a record keeps (lower-cased names)."""
    return {k: v for k, v in headers.items() if k in _KEPT_NAMES or k.startswith(_KEPT_PREFIXES)}


def request_of(adapter: Adapter, body: dict[str, Any]) -> tuple[ChatRequest, dict[str, bytes]]:
    """The neutral request and the inline blobs (sha256 -> bytes) of a wire body."""
    parsed = adapter.parse_request(body)
    if isinstance(parsed, tuple):
        return parsed[0], dict(parsed[1] or {})
    return parsed, dict(getattr(parsed, "blobs", None) or {})


def _real_adapters() -> Any:
    try:
        from ..providers import adapter_for_path as real
    except ImportError:
        return None
    return real


#: ``llm_events.providers.adapter_for_path`` once it exists (looked up once: a failing
#: import on every request cost more than the rest of parsing it)
_REAL = _real_adapters()


def adapter_for_path(path: str) -> Adapter | None:
    """The adapter of the wire format served at ``path`` (``/v1/chat/completions``)."""
    if _REAL is not None:
        return _REAL(path)
    if path.rstrip("/").endswith("/chat/completions"):
        return _OpenAIChat()
    if path.rstrip("/").endswith("/v1/messages"):
        return _AnthropicMessages()
    return None


# --- stand-in (replaced by llm_events.providers) ----------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


class _SSE:
    """Incremental SSE: complete ``data:`` payloads out of arbitrary byte chunks."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[str]:
        self.buffer += chunk
        out = []
        while True:
            cut = self.buffer.find(b"\n")
            if cut < 0:
                return out
            line, self.buffer = self.buffer[:cut].rstrip(b"\r"), self.buffer[cut + 1 :]
            if line.startswith(b"data:"):
                out.append(line[5:].strip().decode("utf-8", "replace"))


class _StreamBase:
    def __init__(self, headers: dict[str, str]) -> None:
        self.sse = _SSE()
        self.done = False
        self.result = ModelResponse(headers=kept_headers(headers))
        self.result.request_id = headers.get("x-request-id") or headers.get("request-id")
        self.text: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        out = []
        for data in self.sse.feed(chunk):
            if data == "[DONE]":
                self.done = True
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            piece = self.event(obj)
            if piece:
                self.text.append(piece)
                out.append(piece)
        return out

    def event(self, obj: dict[str, Any]) -> str:
        raise NotImplementedError

    def response(self) -> ModelResponse:
        self.result.text = "".join(self.text)
        return self.result


class _OpenAIStream(_StreamBase):
    def event(self, obj: dict[str, Any]) -> str:
        r = self.result
        r.response_id = obj.get("id") or r.response_id
        r.response_model = obj.get("model") or r.response_model
        if obj.get("usage"):
            r.usage = _openai_usage(obj["usage"])
        piece = ""
        for choice in obj.get("choices") or []:
            piece += (choice.get("delta") or {}).get("content") or ""
            r.finish_reason = choice.get("finish_reason") or r.finish_reason
        return piece


class _AnthropicStream(_StreamBase):
    def event(self, obj: dict[str, Any]) -> str:
        r, kind = self.result, obj.get("type")
        if kind == "message_start":
            msg = obj.get("message") or {}
            r.response_id, r.response_model = msg.get("id"), msg.get("model")
            r.usage = _anthropic_usage(msg.get("usage") or {})
        elif kind == "content_block_delta":
            return (obj.get("delta") or {}).get("text") or ""
        elif kind == "message_delta":
            r.finish_reason = (obj.get("delta") or {}).get("stop_reason")
            out = (obj.get("usage") or {}).get("output_tokens")
            r.usage = Usage(input_tokens=r.usage.input_tokens, output_tokens=out)
        elif kind == "message_stop":
            self.done = True
        return ""


def _openai_usage(u: dict[str, Any]) -> Usage:
    return Usage(input_tokens=u.get("prompt_tokens"), output_tokens=u.get("completion_tokens"))


def _anthropic_usage(u: dict[str, Any]) -> Usage:
    return Usage(input_tokens=u.get("input_tokens"), output_tokens=u.get("output_tokens"))


class _Base:
    name = ""
    stream_class: type[_StreamBase] = _StreamBase

    def parse_request(self, body: dict[str, Any]) -> ChatRequest:
        messages = []
        system = body.get("system")
        if system:
            messages.append(Message(role="system", parts=[TextPart(content=_text_of(system))]))
        for m in body.get("messages") or []:
            if isinstance(m, dict):
                role = "system" if m.get("role") == "developer" else str(m.get("role", "user"))
                parts = [TextPart(content=_text_of(m.get("content")))]
                messages.append(Message(role=role, parts=parts))
        params = {k: v for k, v in body.items() if k not in ("model", "messages", "system")}
        return ChatRequest(
            model=body.get("model"),
            messages=messages,
            params=params,
            stream=bool(body.get("stream")),
        )

    def stream_parser(self, headers: dict[str, str]) -> StreamParser:
        return self.stream_class(headers)

    def parse_error(self, status: int, body: Any, headers: dict[str, str]) -> ProviderError:
        err = body.get("error") if isinstance(body, dict) else None
        err = err if isinstance(err, dict) else {}
        return ProviderError(
            status_code=status,
            error_type=err.get("type"),
            code=err.get("code"),
            message=str(err.get("message") or ""),
            request_id=headers.get("x-request-id") or headers.get("request-id"),
            headers=kept_headers(headers),
            retryable=status in (408, 409, 429) or status >= 500,
        )


class _OpenAIChat(_Base):
    name = "openai"
    stream_class = _OpenAIStream

    def parse_response(self, body: Any, headers: dict[str, str]) -> ModelResponse:
        choice = (body.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        return ModelResponse(
            text=message.get("content") or "",
            finish_reason=choice.get("finish_reason"),
            usage=_openai_usage(body.get("usage") or {}),
            response_id=body.get("id"),
            response_model=body.get("model"),
            request_id=headers.get("x-request-id"),
            headers=kept_headers(headers),
        )


class _AnthropicMessages(_Base):
    name = "anthropic"
    stream_class = _AnthropicStream

    def parse_response(self, body: Any, headers: dict[str, str]) -> ModelResponse:
        return ModelResponse(
            text=_text_of(body.get("content")),
            finish_reason=body.get("stop_reason"),
            usage=_anthropic_usage(body.get("usage") or {}),
            response_id=body.get("id"),
            response_model=body.get("model"),
            request_id=headers.get("request-id"),
            headers=kept_headers(headers),
        )

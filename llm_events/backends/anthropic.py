"""``anthropic:MODEL``: Anthropic's Messages API (``POST /v1/messages``).

Base URL: the ``base_url`` option, else ``ANTHROPIC_BASE_URL``, else
``https://api.anthropic.com``.  Key: ``api_key`` option, else ``ANTHROPIC_API_KEY`` (sent as
``x-api-key``), with the ``anthropic-version`` header (``version`` option, else
``ANTHROPIC_VERSION``, else 2023-06-01).  ``max_tokens`` is required by the API and
defaults to 1024.  ``stop`` becomes ``stop_sequences``; JSON mode, which the API lacks, is
asked for in the system text.  Streams are SSE: ``message_start`` carries the input tokens,
``message_delta`` the output tokens and stop reason, ``message_stop`` ends the answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..interface.prompt import LLMResult, Prompt
from ..interface.streaming import StreamChunk
from .errors import (
    BackendError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    StreamInterrupted,
)
from .http import HTTPBackend, first_env, int_or_none, need
from .render import as_list, split_json_flag, system_text

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024

#: Error types an Anthropic stream may report mid-way, and what they mean for a retry.
_STREAM_ERRORS: dict[str, tuple[type[BackendError], int]] = {
    "overloaded_error": (ServerError, 529),
    "api_error": (ServerError, 500),
    "rate_limit_error": (RateLimitError, 429),
}


def usage_fields(usage: Any) -> dict[str, int | None]:
    """Anthropic usage, with input counting cached reads and writes (as OpenAI's does)."""
    if not isinstance(usage, dict):
        return {}
    base = int_or_none(usage.get("input_tokens"))
    read = int_or_none(usage.get("cache_read_input_tokens"))
    written = int_or_none(usage.get("cache_creation_input_tokens"))
    total = None if base is None else base + (read or 0) + (written or 0)
    return {
        "input_tokens": total,
        "output_tokens": int_or_none(usage.get("output_tokens")),
        "cached_tokens": read,
    }


class AnthropicBackend(HTTPBackend):
    backend_name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    base_url_env = ("ANTHROPIC_BASE_URL",)
    api_key_env = ("ANTHROPIC_API_KEY",)
    model_env = ("ANTHROPIC_MODEL",)
    default_model = "claude-3-5-haiku-latest"
    endpoint = "/v1/messages"

    def __init__(self, model: str | None = None, *, version: str | None = None, **options: Any):
        super().__init__(model, **options)
        self.version = version or first_env(("ANTHROPIC_VERSION",)) or DEFAULT_VERSION

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        headers["anthropic-version"] = self.version
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def request_body(self, prompt: Prompt, *, stream: bool) -> dict[str, Any]:
        json_mode, params = split_json_flag(self.params)
        body: dict[str, Any] = {
            "model": self.resolve_model(),
            "max_tokens": params.pop("max_tokens", DEFAULT_MAX_TOKENS),
            "messages": [{"role": "user", "content": prompt.user}],
        }
        system = system_text(prompt, json_instruction=json_mode)
        if system:
            body["system"] = system
        if "stop" in params:
            body["stop_sequences"] = as_list(params.pop("stop"))
        body.update(params)
        if stream:
            body["stream"] = True
        return body

    def parse_response(self, data: Any) -> LLMResult:
        from ..interface.client import attach_details

        name = self.backend_label()
        content = need(data, "content", backend=name)
        if not isinstance(content, list):
            raise InvalidResponseError(f"{name}: 'content' is not a list", backend=name)
        text = "".join(
            block.get("text", "")
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
        usage = usage_fields(data.get("usage"))
        result = LLMResult(
            raw=data,
            text=text,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
        )
        return attach_details(
            result, cached_tokens=usage.get("cached_tokens"), finish_reason=data.get("stop_reason")
        )

    async def parse_stream(self, lines: AsyncIterator[str]) -> AsyncIterator[StreamChunk]:
        name = self.backend_label()
        async for event in aiter_events(lines, name):
            kind = event.get("type")
            chunk = StreamChunk()
            if kind == "message_start":
                message = event.get("message") or {}
                chunk.model = message.get("model")
                chunk.raw = {"id": message.get("id"), "model": message.get("model")}
                for key, value in usage_fields(message.get("usage")).items():
                    setattr(chunk, key, value)
            elif kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    chunk.text = delta.get("text") or ""
            elif kind == "message_delta":
                delta = event.get("delta") or {}
                chunk.finish_reason = delta.get("stop_reason")
                usage = event.get("usage") or {}
                chunk.output_tokens = int_or_none(usage.get("output_tokens"))
                chunk.raw = {"stop_reason": delta.get("stop_reason"), "usage": usage}
            elif kind == "message_stop":
                return
            elif kind == "error":
                raise stream_error(name, event.get("error") or {})
            yield chunk
        raise StreamInterrupted(
            f"{name}: the stream ended before the answer was complete (no message_stop)",
            backend=name,
        )


async def aiter_events(lines: AsyncIterator[str], name: str) -> AsyncIterator[dict[str, Any]]:
    from .sse import aiter_sse

    async for event in aiter_sse(lines):
        try:
            data = json.loads(event.data)
        except ValueError:
            raise InvalidResponseError(
                f"{name}: a stream event is not valid JSON: {event.data[:200]!r}", backend=name
            ) from None
        if isinstance(data, dict):
            yield data


def stream_error(name: str, error: dict[str, Any]) -> BackendError:
    kind = str(error.get("type") or "error")
    message = f"{name}: {error.get('message') or kind} ({kind})"
    cls, status = _STREAM_ERRORS.get(kind, (BackendError, None))
    return cls(message, backend=name, status_code=status, error_code=kind)

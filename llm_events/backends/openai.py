"""``openai:MODEL``: Chat Completions on any OpenAI-compatible server.

Base URL: the ``base_url`` option, else ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``.
Key: ``api_key`` option, else ``OPENAI_API_KEY`` (sent as ``Authorization: Bearer``; local
servers that need none get no header).  Streams are SSE with ``stream_options.include_usage``
so the last chunk carries the usage, including cached and reasoning tokens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..interface.prompt import LLMResult, Prompt
from ..interface.streaming import StreamChunk
from .errors import InvalidResponseError, StreamInterrupted
from .http import HTTPBackend, int_or_none, need
from .render import chat_messages, split_json_flag
from .sse import aiter_sse


def usage_fields(usage: Any) -> dict[str, int | None]:
    """Input, output, cached and reasoning tokens from an OpenAI ``usage`` object."""
    if not isinstance(usage, dict):
        return {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": int_or_none(usage.get("prompt_tokens")),
        "output_tokens": int_or_none(usage.get("completion_tokens")),
        "cached_tokens": int_or_none(prompt_details.get("cached_tokens"))
        if isinstance(prompt_details, dict)
        else None,
        "reasoning_tokens": int_or_none(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else None,
    }


class OpenAIBackend(HTTPBackend):
    """Chat Completions (``POST {base_url}/chat/completions``).

    Extra option: ``include_usage=False`` for servers that refuse ``stream_options``.
    """

    backend_name = "openai"
    default_base_url = "https://api.openai.com/v1"
    base_url_env = ("OPENAI_BASE_URL", "OPENAI_API_BASE")
    api_key_env = ("OPENAI_API_KEY",)
    model_env = ("OPENAI_MODEL",)
    default_model = "gpt-4o-mini"
    endpoint = "/chat/completions"

    def __init__(self, model: str | None = None, *, include_usage: bool = True, **options: Any):
        super().__init__(model, **options)
        self.include_usage = include_usage

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def request_body(self, prompt: Prompt, *, stream: bool) -> dict[str, Any]:
        json_mode, params = split_json_flag(self.params)
        body: dict[str, Any] = {"model": self.resolve_model(), "messages": chat_messages(prompt)}
        if json_mode and "response_format" not in params:
            body["response_format"] = {"type": "json_object"}
        body.update(params)
        if stream:
            body["stream"] = True
            if self.include_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    def parse_response(self, data: Any) -> LLMResult:
        from ..interface.client import attach_details

        name = self.backend_label()
        choice = need(data, "choices", 0, backend=name)
        message = need(choice, "message", backend=name)
        text = message.get("content") if isinstance(message, dict) else None
        usage = usage_fields(data.get("usage"))
        result = LLMResult(
            raw=data,
            text=text or "",
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
        )
        return attach_details(
            result,
            cached_tokens=usage.get("cached_tokens"),
            reasoning_tokens=usage.get("reasoning_tokens"),
            finish_reason=choice.get("finish_reason") if isinstance(choice, dict) else None,
        )

    async def parse_stream(self, lines: AsyncIterator[str]) -> AsyncIterator[StreamChunk]:
        name = self.backend_label()
        finished = False
        async for event in aiter_sse(lines):
            if event.data.strip() == "[DONE]":
                return
            try:
                data = json.loads(event.data)
            except ValueError:
                raise InvalidResponseError(
                    f"{name}: a stream chunk is not valid JSON: {event.data[:200]!r}", backend=name
                ) from None
            if isinstance(data, dict) and "error" in data:
                from .errors import error_for_status

                raise error_for_status(name, 500, event.data, {})
            chunk = StreamChunk(model=data.get("model") if isinstance(data, dict) else None)
            if isinstance(data, dict) and data.get("id"):
                chunk.raw = {"id": data["id"]}
            for choice in data.get("choices") or [] if isinstance(data, dict) else []:
                delta = choice.get("delta") or {}
                if isinstance(delta, dict) and delta.get("content"):
                    chunk.text += delta["content"]
                if choice.get("finish_reason"):
                    chunk.finish_reason = choice["finish_reason"]
                    finished = True
            if isinstance(data, dict) and data.get("usage"):
                for key, value in usage_fields(data["usage"]).items():
                    setattr(chunk, key, value)
                chunk.raw["usage"] = data["usage"]
            yield chunk
        if not finished:
            raise StreamInterrupted(
                f"{name}: the stream ended before the answer was complete (no [DONE])",
                backend=name,
            )

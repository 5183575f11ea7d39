"""``ollama:MODEL``: a local Ollama server's chat API (``POST /api/chat``).

Base URL: the ``base_url`` option, else ``OLLAMA_HOST`` (Ollama's own variable, with or
without ``http://``), else ``http://127.0.0.1:11434``.  Model: ``OLLAMA_MODEL``, else
``llama3.2``.  Parameters go into Ollama's ``options`` (``max_tokens`` becomes
``num_predict``); ``json`` sets ``format: "json"``; ``keep_alive``, ``format`` and ``think``
stay at the top level.  Streams are NDJSON: one object a line, the last with ``done: true``
and the token counts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..interface.prompt import LLMResult, Prompt
from ..interface.streaming import StreamChunk
from .errors import BackendError, InvalidResponseError, StreamInterrupted
from .http import HTTPBackend, int_or_none, need
from .render import as_list, chat_messages, split_json_flag

#: Request fields that are not model options.
TOP_LEVEL = ("keep_alive", "format", "think", "tools")


def usage_fields(data: dict[str, Any]) -> dict[str, int | None]:
    return {
        "input_tokens": int_or_none(data.get("prompt_eval_count")),
        "output_tokens": int_or_none(data.get("eval_count")),
    }


class OllamaBackend(HTTPBackend):
    backend_name = "ollama"
    default_base_url = "http://127.0.0.1:11434"
    base_url_env = ("OLLAMA_HOST",)
    model_env = ("OLLAMA_MODEL",)
    default_model = "llama3.2"
    endpoint = "/api/chat"

    @staticmethod
    def normalise_base_url(url: str) -> str:
        if "://" not in url:
            url = f"http://{url}"
        return url.replace("://0.0.0.0", "://127.0.0.1").rstrip("/")

    def request_body(self, prompt: Prompt, *, stream: bool) -> dict[str, Any]:
        json_mode, params = split_json_flag(self.params)
        body: dict[str, Any] = {
            "model": self.resolve_model(),
            "messages": chat_messages(prompt),
            "stream": stream,
        }
        if json_mode:
            body["format"] = "json"
        options: dict[str, Any] = dict(params.pop("options", None) or {})
        for key in TOP_LEVEL:
            if key in params:
                body[key] = params.pop(key)
        if "max_tokens" in params:
            options["num_predict"] = params.pop("max_tokens")
        if "stop" in params:
            options["stop"] = as_list(params.pop("stop"))
        options.update(params)
        if options:
            body["options"] = options
        return body

    def parse_response(self, data: Any) -> LLMResult:
        from ..interface.client import attach_details

        name = self.backend_label()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            raise BackendError(f"{name}: {data['error']}", backend=name)
        message = need(data, "message", backend=name)
        usage = usage_fields(data)
        result = LLMResult(
            raw=data,
            text=(message.get("content") if isinstance(message, dict) else None) or "",
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
        )
        return attach_details(result, finish_reason=data.get("done_reason"))

    async def parse_stream(self, lines: AsyncIterator[str]) -> AsyncIterator[StreamChunk]:
        name = self.backend_label()
        async for line in lines:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                raise InvalidResponseError(
                    f"{name}: a stream line is not valid JSON: {line[:200]!r}", backend=name
                ) from None
            if not isinstance(data, dict):
                continue
            if isinstance(data.get("error"), str):
                raise BackendError(f"{name}: {data['error']}", backend=name)
            message = data.get("message") or {}
            chunk = StreamChunk(
                text=(message.get("content") if isinstance(message, dict) else "") or "",
                model=data.get("model"),
            )
            if data.get("done"):
                usage = usage_fields(data)
                chunk.input_tokens = usage["input_tokens"]
                chunk.output_tokens = usage["output_tokens"]
                chunk.finish_reason = data.get("done_reason") or "stop"
                chunk.raw = {
                    k: v
                    for k, v in data.items()
                    if k not in ("message",) and not isinstance(v, (dict, list))
                }
                yield chunk
                return
            yield chunk
        raise StreamInterrupted(
            f"{name}: the stream ended before the answer was complete (no done: true)",
            backend=name,
        )

"""``openai:MODEL``: Chat Completions on any OpenAI-compatible server.

Base URL: the ``base_url`` option, else ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``.
Key: ``api_key`` option, else ``OPENAI_API_KEY`` (sent as ``Authorization: Bearer``; local
servers that need none get no header).  Streams are SSE with ``stream_options.include_usage``
so the last chunk carries the usage, including cached and reasoning tokens.  Bodies,
answers, streams and errors go through :mod:`llm_events.providers.openai_chat`.
"""

from __future__ import annotations

from typing import Any

from ..providers import StreamParser
from ..providers.openai_chat import adapter as chat_adapter
from .http import HTTPBackend
from .render import split_json_flag


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
    adapter = chat_adapter
    stream_end = "[DONE]"

    def __init__(self, model: str | None = None, *, include_usage: bool = True, **options: Any):
        super().__init__(model, **options)
        self.include_usage = include_usage

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def wire_params(self, *, stream: bool) -> tuple[bool, dict[str, Any]]:
        json_mode, params = split_json_flag(self.params)
        out: dict[str, Any] = {}
        if json_mode and "response_format" not in params:
            out["response_format"] = {"type": "json_object"}
        out.update(params)
        if stream and self.include_usage:
            out["stream_options"] = {"include_usage": True}
        return False, out

    def stream_complete(self, parser: StreamParser) -> bool:
        # some servers end with the finish reason and no [DONE]
        return parser.done or getattr(parser, "finish_reason", None) is not None

"""``anthropic:MODEL``: Anthropic's Messages API (``POST /v1/messages``).

Base URL: the ``base_url`` option, else ``ANTHROPIC_BASE_URL``, else
``https://api.anthropic.com``.  Key: ``api_key`` option, else ``ANTHROPIC_API_KEY`` (sent as
``x-api-key``), with the ``anthropic-version`` header (``version`` option, else
``ANTHROPIC_VERSION``, else 2023-06-01).  ``max_tokens`` is required by the API and
defaults to 1024.  ``stop`` becomes ``stop_sequences``; JSON mode, which the API lacks, is
asked for in the system text.  Bodies, answers, SSE streams (``message_start`` ...
``message_stop``) and errors go through :mod:`llm_events.providers.anthropic`.
"""

from __future__ import annotations

from typing import Any

from ..providers.anthropic import adapter as messages_adapter
from .http import HTTPBackend, first_env
from .render import as_list, split_json_flag

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024


class AnthropicBackend(HTTPBackend):
    backend_name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    base_url_env = ("ANTHROPIC_BASE_URL",)
    api_key_env = ("ANTHROPIC_API_KEY",)
    model_env = ("ANTHROPIC_MODEL",)
    default_model = "claude-3-5-haiku-latest"
    endpoint = "/v1/messages"
    adapter = messages_adapter
    stream_end = "message_stop"

    def __init__(self, model: str | None = None, *, version: str | None = None, **options: Any):
        super().__init__(model, **options)
        self.version = version or first_env(("ANTHROPIC_VERSION",)) or DEFAULT_VERSION

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        headers["anthropic-version"] = self.version
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def wire_params(self, *, stream: bool) -> tuple[bool, dict[str, Any]]:
        json_mode, params = split_json_flag(self.params)
        out: dict[str, Any] = {"max_tokens": params.pop("max_tokens", DEFAULT_MAX_TOKENS)}
        if "stop" in params:
            out["stop_sequences"] = as_list(params.pop("stop"))
        out.update(params)
        return json_mode, out

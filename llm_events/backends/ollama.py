"""``ollama:MODEL``: a local Ollama server's chat API (``POST /api/chat``).

Base URL: the ``base_url`` option, else ``OLLAMA_HOST`` (Ollama's own variable, with or
without ``http://``), else ``http://127.0.0.1:11434``.  Model: ``OLLAMA_MODEL``, else
``llama3.2``.  Parameters go into Ollama's ``options`` (``max_tokens`` becomes
``num_predict``); ``json`` sets ``format: "json"``; ``keep_alive``, ``format`` and ``think``
stay at the top level.  Bodies, answers, NDJSON streams (the last line has ``done: true``
and the token counts) and errors go through :mod:`llm_events.providers.ollama`.
"""

from __future__ import annotations

from typing import Any

from ..interface.prompt import LLMResult
from ..providers.ollama import adapter as ollama_adapter
from .errors import BackendError
from .http import HTTPBackend
from .render import as_list, split_json_flag

#: Request fields that are not model options.
TOP_LEVEL = ("keep_alive", "format", "think", "tools")


class OllamaBackend(HTTPBackend):
    backend_name = "ollama"
    default_base_url = "http://127.0.0.1:11434"
    base_url_env = ("OLLAMA_HOST",)
    model_env = ("OLLAMA_MODEL",)
    default_model = "llama3.2"
    endpoint = "/api/chat"
    adapter = ollama_adapter
    stream_end = "done: true"

    @staticmethod
    def normalise_base_url(url: str) -> str:
        if "://" not in url:
            url = f"http://{url}"
        return url.replace("://0.0.0.0", "://127.0.0.1").rstrip("/")

    def wire_params(self, *, stream: bool) -> tuple[bool, dict[str, Any]]:
        json_mode, params = split_json_flag(self.params)
        out: dict[str, Any] = {}
        if json_mode:
            out["format"] = "json"
        options: dict[str, Any] = dict(params.pop("options", None) or {})
        for key in TOP_LEVEL:
            if key in params:
                out[key] = params.pop(key)
        if "max_tokens" in params:
            options["num_predict"] = params.pop("max_tokens")
        if "stop" in params:
            options["stop"] = as_list(params.pop("stop"))
        options.update(params)
        if options:
            out["options"] = options
        return False, out

    def parse_response(self, data: Any, headers: Any = None) -> LLMResult:
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            name = self.backend_label()
            raise BackendError(f"{name}: {data['error']}", backend=name)
        return super().parse_response(data, headers)

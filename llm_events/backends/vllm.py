"""``vllm:MODEL``: a vLLM server, which speaks the OpenAI Chat Completions protocol.

Base URL: the ``base_url`` option, else ``VLLM_BASE_URL``, else ``http://127.0.0.1:8000/v1``.
Key: ``api_key`` option or ``VLLM_API_KEY`` (only if the server was started with
``--api-key``).  Without a model (``vllm`` alone, or ``VLLM_MODEL`` unset) the first model
the server lists at ``/models`` is used, since a vLLM server usually serves exactly one.
"""

from __future__ import annotations

from .http import need
from .openai import OpenAIBackend


class VLLMBackend(OpenAIBackend):
    backend_name = "vllm"
    default_base_url = "http://127.0.0.1:8000/v1"
    base_url_env = ("VLLM_BASE_URL",)
    api_key_env = ("VLLM_API_KEY",)
    model_env = ("VLLM_MODEL",)
    default_model = None

    def resolve_model(self) -> str:
        if not self.model:
            data = self.get_json("/models")
            self.model = str(need(data, "data", 0, "id", backend=self.backend_label()))
        return self.model

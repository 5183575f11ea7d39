"""The vllm backend (OpenAI protocol, local defaults, model discovery) and registry laziness."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from llm_events import available_backends, client_from_spec
from llm_events.backends.vllm import VLLMBackend

from .backend_helpers import base_url, events, openai_completion, openai_sse, server_fixtures

shared_server, server = server_fixtures()


def test_defaults():
    client = client_from_spec("vllm:Qwen/Qwen2.5-0.5B-Instruct")
    assert isinstance(client, VLLMBackend)
    assert client.base_url == "http://127.0.0.1:8000/v1"
    assert client.model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert {"openai", "anthropic", "ollama", "vllm", "llm"} <= set(available_backends())


def test_model_discovered_from_the_server(server, builder, db_path, monkeypatch):
    monkeypatch.setenv("VLLM_BASE_URL", base_url(server, "/v1"))
    monkeypatch.delenv("VLLM_MODEL", raising=False)
    server.expect_request("/v1/models", method="GET").respond_with_json(
        {"object": "list", "data": [{"id": "meta-llama/Llama-3.2-1B", "object": "model"}]}
    )
    server.expect_request("/v1/chat/completions").respond_with_json(
        openai_completion("served", model="meta-llama/Llama-3.2-1B")
    )
    client = client_from_spec("vllm", seed=1)
    result = client.generate(builder.build_prompt("hi"), context_builder=builder)
    assert result.text == "served"
    request = server.log[1][0]
    assert "Authorization" not in request.headers
    assert json.loads(request.data)["model"] == "meta-llama/Llama-3.2-1B"
    ok = events(db_path, "attempt_succeeded")[0]
    assert ok["backend"] == "vllm" and ok["model"] == "meta-llama/Llama-3.2-1B"
    assert events(db_path, "attempt_started")[0]["params"] == {"seed": 1}


def test_streams(server, builder, db_path, monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "token-abc123")
    server.expect_request("/v1/chat/completions").respond_with_data(
        openai_sse(["v", "LLM"]), content_type="text/event-stream"
    )
    client = client_from_spec("vllm:m", base_url=base_url(server, "/v1"))

    async def run():
        return [
            p
            async for p in client.async_generate(builder.build_prompt("x"), context_builder=builder)
        ]

    assert asyncio.run(run()) == ["v", "LLM"]
    assert server.log[0][0].headers["Authorization"] == "Bearer token-abc123"
    assert events(db_path, "attempt_succeeded")[0]["text"] == "vLLM"


def test_backends_are_imported_only_when_used():
    code = (
        "import sys, llm_events\n"
        "from llm_events import client_from_spec\n"
        "client_from_spec('echo')\n"
        "assert 'httpx' not in sys.modules, 'httpx imported'\n"
        "assert 'llm' not in sys.modules, 'llm imported'\n"
        "client_from_spec('openai:gpt-4o-mini')\n"
        "assert 'httpx' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

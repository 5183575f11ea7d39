"""OpenAI Chat Completions (``POST /v1/chat/completions``), and every server speaking it
(vLLM, llama.cpp, LM Studio, Ollama's ``/v1``, OpenRouter...).

Neutral <-> wire: ``system`` and ``developer`` messages are system turns; user content parts
``text``, ``image_url`` (an URL, or a ``data:`` URL that becomes an inline blob),
``input_audio`` and ``file`` (inline data becomes a blob); assistant ``tool_calls`` and
``refusal``; ``tool`` messages answer a ``tool_call_id``.  Reasoning that servers add to a
message (``reasoning_content`` from vLLM and DeepSeek, ``reasoning`` from others) is read,
never sent back.  Streams are SSE chunks of ``choices[].delta``, ended by ``data: [DONE]``;
tool-call arguments are concatenated exactly as their deltas came, per ``index``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...log.conversation import Message, ModelResponse, ToolDefinition
from ..base import Adapter, Blobs, as_list
from .answers import ChatStreamParser, parse_chat_response
from .requests import neutral_messages, neutral_tool, wire_messages, wire_tool


class OpenAIChatAdapter(Adapter):
    name = "openai_chat"
    path = "/chat/completions"
    wire_keys = ("model", "messages", "tools", "functions", "stream")
    parser = ChatStreamParser

    def write_conversation(
        self, messages: list[Message], blobs: Mapping[str, bytes] | None
    ) -> dict[str, Any]:
        return {"messages": wire_messages(messages, blobs)}

    def write_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        return wire_tool(tool)

    def read_conversation(self, data: dict[str, Any], blobs: Blobs) -> list[Message]:
        return neutral_messages(as_list(data.get("messages")), blobs)

    def read_tool(self, tool: dict[str, Any]) -> ToolDefinition:
        return neutral_tool(tool)

    def read_tools(self, data: dict[str, Any]) -> list[ToolDefinition]:
        legacy = [  # the legacy function definitions
            {"type": "function", "function": fn}
            for fn in as_list(data.get("functions"))
            if isinstance(fn, dict)
        ]
        return [*super().read_tools(data), *map(neutral_tool, legacy)]

    def read_answer(self, data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
        return parse_chat_response(data, headers)


adapter = OpenAIChatAdapter()

"""OpenAI's Responses API (``POST /v1/responses``) and its streaming events.

Neutral <-> wire: ``instructions`` is the leading system turn; ``input`` is a string (one
user turn) or items: messages (``input_text``, ``input_image`` by URL or ``data:`` URL,
``input_file``, ``output_text``, ``refusal``), ``function_call`` items (tool calls of an
assistant turn; ``call_id`` is the call's id), ``function_call_output`` (a tool turn) and
``reasoning`` (summary text; its ``encrypted_content`` is kept as the signature; reasoning
is not sent back, the API wants its item ids).  Answers: ``output`` items of the same kinds;
``finish_reason`` is the response's ``status`` (``completed``), or the reason it is
``incomplete`` (``max_output_tokens``).  Streams: SSE ``response.*`` events, ended by
``response.completed``, ``response.incomplete`` or ``response.failed``; function-call
arguments are concatenated exactly from ``response.function_call_arguments.delta``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...log.conversation import Message, ModelResponse, ToolDefinition
from ..base import Adapter, Blobs
from .answers import ResponsesStreamParser, parse_output
from .requests import neutral_input, neutral_tool, wire_input, wire_tool


class OpenAIResponsesAdapter(Adapter):
    name = "openai_responses"
    path = "/responses"
    wire_keys = ("model", "instructions", "input", "tools", "stream")
    parser = ResponsesStreamParser

    def write_conversation(
        self, messages: list[Message], blobs: Mapping[str, bytes] | None
    ) -> dict[str, Any]:
        instructions, items = wire_input(messages, blobs)
        body: dict[str, Any] = {} if instructions is None else {"instructions": instructions}
        body["input"] = items
        return body

    def write_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        return wire_tool(tool)

    def read_conversation(self, data: dict[str, Any], blobs: Blobs) -> list[Message]:
        return neutral_input(data, blobs)

    def read_tool(self, tool: dict[str, Any]) -> ToolDefinition:
        return neutral_tool(tool)

    def read_answer(self, data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
        return parse_output(data, headers)


adapter = OpenAIResponsesAdapter()

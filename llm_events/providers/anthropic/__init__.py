"""Anthropic Messages (``POST /v1/messages``).

Neutral <-> wire: system turns become the top-level ``system`` (a string, or text blocks
when there are several); content blocks ``text``, ``image`` and ``document`` (``base64``
sources become inline blobs, ``url`` sources URIs), ``tool_use`` (its ``input`` object is the
call's JSON arguments), ``tool_result`` (a ``tool`` turn; consecutive tool turns and the user
turn after them are one user message on the wire, as the API wants), ``thinking`` (text and
signature) and ``redacted_thinking``.  Usage: ``input_tokens`` counts every input token,
cached reads and writes included, as OpenAI's does; ``cache_read_tokens`` and
``cache_write_tokens`` say how many of them were cached.  Streams are SSE events
``message_start`` ... ``message_stop``; ``input_json_delta`` fragments are concatenated
exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...log.conversation import Message, ModelResponse, ToolDefinition
from ..base import Adapter, Blobs
from .answers import MessagesStreamParser, parse_message
from .requests import neutral_messages, neutral_tool, wire_messages, wire_system, wire_tool


class AnthropicAdapter(Adapter):
    name = "anthropic"
    path = "/v1/messages"
    wire_keys = ("model", "system", "messages", "tools", "stream")
    parser = MessagesStreamParser

    def write_conversation(
        self, messages: list[Message], blobs: Mapping[str, bytes] | None
    ) -> dict[str, Any]:
        system = wire_system(messages)
        body: dict[str, Any] = {} if system is None else {"system": system}
        body["messages"] = wire_messages(messages, blobs)
        return body

    def write_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        return wire_tool(tool)

    def read_conversation(self, data: dict[str, Any], blobs: Blobs) -> list[Message]:
        return neutral_messages(data, blobs)

    def read_tool(self, tool: dict[str, Any]) -> ToolDefinition:
        return neutral_tool(tool)

    def read_answer(self, data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
        return parse_message(data, headers)


adapter = AnthropicAdapter()

"""OpenAI's legacy Completions (``POST /v1/completions``), still served by vLLM and others.

Neutral <-> wire: the ``prompt`` text is one user turn (a list of prompts, one turn each;
token-id prompts stay in ``params``); building joins the conversation's text into one
prompt, system text first.  Answers are ``choices[0].text``; streams are the chat chunks'
SSE framing with ``choices[].text`` (read by the chat stream parser).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..log.conversation import Message, ModelResponse, TextPart, ToolDefinition
from .base import Adapter, Blobs
from .openai_chat.answers import ChatStreamParser, choice_fields, first_choice
from .openai_chat.requests import text_of


def parse_text_response(data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
    choice = first_choice(data)
    text = choice.get("text")
    return ModelResponse(
        text=text if isinstance(text, str) else "",
        **choice_fields(data, choice, headers),
    )


class OpenAICompletionsAdapter(Adapter):
    name = "openai_completions"
    path = "/completions"
    wire_keys = ("model", "prompt", "stream")
    parser = ChatStreamParser

    def write_conversation(
        self, messages: list[Message], blobs: Mapping[str, bytes] | None
    ) -> dict[str, Any]:
        texts = [text_of(m.parts) for m in messages]
        return {"prompt": "\n\n".join(t for t in texts if t)}

    def read_conversation(self, data: dict[str, Any], blobs: Blobs) -> list[Message]:
        prompt = data.get("prompt")
        if isinstance(prompt, str):
            return [Message(role="user", parts=[TextPart(content=prompt)])]
        if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            return [Message(role="user", parts=[TextPart(content=p)]) for p in prompt]
        return []

    def read_tools(self, data: dict[str, Any]) -> list[ToolDefinition]:
        return []

    def wire_keys_of(self, data: dict[str, Any]) -> tuple[str, ...]:
        prompt = data.get("prompt")
        if isinstance(prompt, str) or (
            isinstance(prompt, list) and all(isinstance(p, str) for p in prompt)
        ):
            return self.wire_keys
        return ("model", "stream")  # token-id prompts stay as they are, in params

    def read_answer(self, data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
        return parse_text_response(data, headers)


adapter = OpenAICompletionsAdapter()

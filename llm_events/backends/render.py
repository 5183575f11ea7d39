"""How a :class:`Prompt` becomes what a chat API reads, the same way for every backend.

``examples`` hold the context a builder retrieved; they are sent after the system text under
a ``Context:`` heading, so every backend (and a replay against another one) sees the same
words.  Parameters have one spelling here (``temperature``, ``max_tokens``, ``top_p``,
``stop``, ``seed``, ``json``) that each backend maps to its own.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..interface.prompt import Prompt
from ..log.conversation import ChatRequest, Message, TextPart, ToolDefinition

#: Parameter names every backend understands (others pass through to the server as given).
COMMON_PARAMS = ("temperature", "max_tokens", "top_p", "stop", "seed", "json")

JSON_INSTRUCTION = "Respond with a single valid JSON value and nothing else."


def system_text(prompt: Prompt, *, json_instruction: bool = False) -> str:
    """The system text, followed by the retrieved context (and a JSON instruction if asked)."""
    parts = [prompt.system] if prompt.system else []
    if prompt.examples:
        parts.append("Context:\n" + "\n\n".join(str(e) for e in prompt.examples))
    if json_instruction:
        parts.append(JSON_INSTRUCTION)
    return "\n\n".join(parts)


def chat_messages(prompt: Prompt, *, json_instruction: bool = False) -> list[dict[str, str]]:
    """OpenAI/Ollama-style messages: an optional system message, then the user's."""
    system = system_text(prompt, json_instruction=json_instruction)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt.user})
    return messages


def conversation(prompt: Prompt, *, json_instruction: bool = False) -> list[Message]:
    """The prompt as neutral messages: the system text (with the retrieved context) first,
    then the prompt's own messages when it carries a conversation, else its user text."""
    system = system_text(prompt, json_instruction=json_instruction)
    head = [Message(role="system", parts=[TextPart(content=system)])] if system else []
    if prompt.messages:
        return head + msgspec.convert(prompt.messages, list[Message])
    return [*head, Message(role="user", parts=[TextPart(content=prompt.user)])]


def chat_request(
    prompt: Prompt,
    model: str | None,
    params: dict[str, Any],
    *,
    stream: bool = False,
    json_instruction: bool = False,
) -> ChatRequest:
    """What a backend sends, in neutral form: the conversation, the prompt's tools, and
    ``params`` (already in the provider's spelling) with the prompt's ``options`` over them."""
    tools = msgspec.convert(prompt.tools, list[ToolDefinition]) if prompt.tools else []
    return ChatRequest(
        model=model,
        messages=conversation(prompt, json_instruction=json_instruction),
        tools=tools,
        params={**params, **prompt.options},
        stream=stream,
    )


def split_json_flag(params: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """``(json mode wanted, the other params)``; ``json`` and ``json_mode`` both switch it on."""
    rest = dict(params)
    wanted = bool(rest.pop("json", False)) | bool(rest.pop("json_mode", False))
    return wanted, rest


def as_list(stop: Any) -> list[str]:
    """``stop`` as a list of strings (a single string is one stop sequence)."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    return [str(s) for s in stop]

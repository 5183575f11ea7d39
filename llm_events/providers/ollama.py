"""Ollama's native chat API (``POST /api/chat``), and ``/api/generate`` answers.

Neutral <-> wire: messages carry a ``content`` string, ``images`` (base64 only: Ollama
cannot fetch an image by URL, so a URI part is refused), ``thinking``, ``tool_calls``
(``function.arguments`` is an object, turned into JSON text and back) and, for tool
results, ``tool_name`` (looked up from the call the result answers).  Streams are NDJSON:
one answer object a line, the last with ``done: true`` and the token counts; errors are
``{"error": "..."}``.  Ollama has no response id; its request has no id header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..log.conversation import (
    BlobPart,
    Message,
    ModelResponse,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
    UriPart,
    Usage,
)
from .base import (
    Adapter,
    Blobs,
    StreamFormatError,
    StreamParser,
    as_dict,
    as_list,
    b64decode,
    blob,
    blob_base64,
    header_request_id,
    int_or_none,
    json_text,
    json_value,
    kept_headers,
    parse_error,
)
from .lines import LineSplitter
from .openai_chat.requests import neutral_tool, response_text, wire_tool

#: The answer's timing fields, kept as stop details (nanoseconds, as Ollama reports them).
TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def image_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def wire_messages(
    messages: list[Message], blobs: Mapping[str, bytes] | None
) -> list[dict[str, Any]]:
    names: dict[str | None, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        results = [p for p in message.parts if isinstance(p, ToolCallResponsePart)]
        for part in results:
            wire: dict[str, Any] = {"role": "tool", "content": response_text(part.response)}
            tool_name = names.get(part.id) or message.name
            if tool_name:
                wire["tool_name"] = tool_name
            if part.id:  # Ollama 0.12.10+: a tool message names its call (api.Message.ToolCallID)
                wire["tool_call_id"] = part.id
            out.append(wire)
        rest = [p for p in message.parts if not isinstance(p, ToolCallResponsePart)]
        if message.role == "tool" or (results and not rest):
            continue
        wire = {
            "role": message.role,
            "content": "".join(p.content for p in rest if isinstance(p, TextPart)),
        }
        images = []
        for part in rest:
            if isinstance(part, BlobPart):
                images.append(blob_base64(part, blobs))
            elif isinstance(part, UriPart):
                raise ValueError(
                    f"ollama takes inline images only, not an image by URL ({part.uri[:80]})"
                )
        if images:
            wire["images"] = images
        thinking = "".join(
            p.content for p in rest if isinstance(p, ReasoningPart) and not p.redacted
        )
        if thinking:
            wire["thinking"] = thinking
        calls = [p for p in rest if isinstance(p, ToolCallPart)]
        if calls:
            wire["tool_calls"] = []
            for call in calls:
                names[call.id] = call.name
                function: dict[str, Any] = {
                    "name": call.name,
                    "arguments": json_value(call.arguments),
                }
                # Ollama 0.12.10+ gives each call an id (api.ToolCall.ID), sent back as given
                wire["tool_calls"].append(
                    {"id": call.id, "function": function} if call.id else {"function": function}
                )
        out.append(wire)
    return out


def neutral_messages(wire: list[Any], blobs: Blobs) -> list[Message]:
    messages: list[Message] = []
    for item in wire:
        if not isinstance(item, dict):
            continue
        role = str(item.get("role") or "user")
        content = item.get("content")
        if role == "tool":
            messages.append(
                Message(
                    role="tool",
                    parts=[ToolCallResponsePart(id=item.get("tool_call_id"), response=content)],
                    name=item.get("tool_name") if isinstance(item.get("tool_name"), str) else None,
                )
            )
            continue
        parts: list[Any] = []
        if isinstance(item.get("thinking"), str) and item["thinking"]:
            parts.append(ReasoningPart(content=item["thinking"]))
        if isinstance(content, str) and content:
            parts.append(TextPart(content=content))
        for image in as_list(item.get("images")):
            data = b64decode(str(image))
            if data is not None:
                part, digest = blob(data, image_mime(data), "image")
                blobs[digest] = data
                parts.append(part)
        parts.extend(tool_calls(item))
        messages.append(Message(role=role, parts=parts))
    return messages


def tool_calls(message: dict[str, Any]) -> list[ToolCallPart]:
    calls = []
    for call in as_list(message.get("tool_calls")):
        function = as_dict(as_dict(call).get("function"))
        calls.append(
            ToolCallPart(
                id=call.get("id"),
                name=str(function.get("name") or ""),
                arguments=json_text(function.get("arguments", {})),
            )
        )
    return calls


def usage(data: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=int_or_none(data.get("prompt_eval_count")),
        output_tokens=int_or_none(data.get("eval_count")),
    )


def timings(data: dict[str, Any]) -> dict[str, Any] | None:
    found = {k: data[k] for k in TIMINGS if k in data}
    return found or None


def parse_answer(data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
    if not isinstance(data, dict):
        raise ValueError("the server's answer is not a JSON object")
    if "message" in data:
        message = as_dict(data["message"])
        text = message.get("content")
        thinking = message.get("thinking")
        calls = tool_calls(message)
    elif "response" in data:  # /api/generate
        text, thinking, calls = data.get("response"), data.get("thinking"), []
    else:
        raise ValueError("the server's answer has no ['message']")
    return ModelResponse(
        text=text if isinstance(text, str) else "",
        tool_calls=calls,
        reasoning=[ReasoningPart(content=thinking)]
        if isinstance(thinking, str) and thinking
        else [],
        finish_reason=data.get("done_reason") or ("stop" if data.get("done") else None),
        stop_details=timings(data),
        usage=usage(data),
        response_model=data.get("model"),
        request_id=header_request_id(headers),
        headers=kept_headers(headers),
        raw=data,
    )


class NDJSONStreamParser(StreamParser):
    """One JSON object a line; the one with ``done: true`` ends the answer."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self._lines = LineSplitter()
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._calls: list[ToolCallPart] = []
        self._last: dict[str, Any] = {}
        self._model: str | None = None

    def feed(self, chunk: bytes) -> list[str]:
        return self._handle(self._lines.feed(chunk))

    def close(self) -> list[str]:
        return self._handle(self._lines.close())

    def _handle(self, lines: list[str]) -> list[str]:
        deltas: list[str] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                raise StreamFormatError(
                    f"a stream line is not valid JSON: {line[:200]!r}"
                ) from None
            if not isinstance(data, dict):
                continue
            if isinstance(data.get("error"), str):
                self.error = parse_error(500, line, self.headers)
                continue
            self._model = data.get("model") or self._model
            message = as_dict(data.get("message"))
            piece = message.get("content") if message else data.get("response")
            if isinstance(piece, str) and piece:
                self._text.append(piece)
                deltas.append(piece)
            thinking = message.get("thinking") if message else data.get("thinking")
            if isinstance(thinking, str) and thinking:
                self._thinking.append(thinking)
            self._calls.extend(tool_calls(message))
            if data.get("done"):
                self.done = True
                self._last = data
        return deltas

    def response(self) -> ModelResponse:
        thinking = "".join(self._thinking)
        last = self._last
        return ModelResponse(
            text="".join(self._text),
            tool_calls=list(self._calls),
            reasoning=[ReasoningPart(content=thinking)] if thinking else [],
            finish_reason=(last.get("done_reason") or "stop") if self.done else None,
            stop_details=timings(last),
            usage=usage(last),
            response_model=self._model,
            request_id=self.request_id,
            headers=dict(self.headers),
            raw={k: v for k, v in last.items() if k != "message"} or None,
        )


class OllamaAdapter(Adapter):
    """``/api/chat`` bodies are built; ``/api/chat`` and ``/api/generate`` ones are read."""

    name = "ollama"
    path = "/api/chat"
    parser = NDJSONStreamParser
    always_says_stream = True

    def write_conversation(
        self, messages: list[Message], blobs: Mapping[str, bytes] | None
    ) -> dict[str, Any]:
        return {"messages": wire_messages(messages, blobs)}

    def write_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        return wire_tool(tool)

    def read_conversation(self, data: dict[str, Any], blobs: Blobs) -> list[Message]:
        if not is_generate(data):
            return neutral_messages(as_list(data.get("messages")), blobs)
        wire = []  # /api/generate: system + prompt + images
        if isinstance(data.get("system"), str):
            wire.append({"role": "system", "content": data["system"]})
        wire.append({"role": "user", "content": data.get("prompt"), "images": data.get("images")})
        return neutral_messages(wire, blobs)

    def read_tool(self, tool: dict[str, Any]) -> ToolDefinition:
        return neutral_tool(tool)

    def read_stream_flag(self, data: dict[str, Any]) -> bool:
        return data.get("stream", True) is not False

    def wire_keys_of(self, data: dict[str, Any]) -> tuple[str, ...]:
        if is_generate(data):
            return ("model", "prompt", "system", "images", "tools", "stream")
        return self.wire_keys

    def read_answer(self, data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            raise ValueError(data["error"])
        return parse_answer(data, headers)


def is_generate(data: dict[str, Any]) -> bool:
    return "messages" not in data and "prompt" in data


adapter = OllamaAdapter()

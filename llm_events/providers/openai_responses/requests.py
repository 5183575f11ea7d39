"""Responses API requests: ``instructions``, ``input`` items and ``tools``, neutral <-> wire
(the package docstring says how each item maps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...log.conversation import (
    BlobPart,
    Message,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
    UriPart,
)
from ..base import Blobs, as_dict, as_list, b64decode, blob, blob_base64, data_url, parse_data_url
from ..openai_chat.requests import response_text, text_of


def wire_content(part: Part, blobs: Mapping[str, bytes] | None, role: str) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {
            "type": "output_text" if role == "assistant" else "input_text",
            "text": part.content,
        }
    if isinstance(part, UriPart):
        if part.modality == "image":
            item: dict[str, Any] = {"type": "input_image", "image_url": part.uri}
            if part.detail:
                item["detail"] = part.detail
            return item
        return {"type": "input_file", "file_url": part.uri}
    if isinstance(part, BlobPart):
        if part.modality == "image":
            return {"type": "input_image", "image_url": data_url(part, blobs)}
        if part.modality == "audio":
            fmt = (part.mime_type or "audio/wav").rpartition("/")[2]
            return {
                "type": "input_audio",
                "input_audio": {"data": blob_base64(part, blobs), "format": fmt},
            }
        return {"type": "input_file", "file_data": data_url(part, blobs)}
    return None


def wire_input(
    messages: list[Message], blobs: Mapping[str, bytes] | None
) -> tuple[str | None, list[dict[str, Any]]]:
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    leading = True
    for message in messages:
        if message.role == "system" and leading:
            instructions.append(text_of(message.parts))
            continue
        leading = False
        for part in message.parts:
            if isinstance(part, ToolCallResponsePart):
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": part.id,
                        "output": response_text(part.response),
                    }
                )
        rest = [
            p
            for p in message.parts
            if not isinstance(p, (ToolCallResponsePart, ToolCallPart, ReasoningPart))
        ]
        if rest:
            if len(rest) == 1 and isinstance(rest[0], TextPart):
                content: Any = rest[0].content
            else:
                content = [
                    c for p in rest if (c := wire_content(p, blobs, message.role)) is not None
                ]
            items.append({"role": message.role, "content": content})
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                items.append(
                    {
                        "type": "function_call",
                        "call_id": part.id,
                        "name": part.name,
                        "arguments": part.arguments,
                    }
                )
    return ("\n\n".join(instructions) if instructions else None), items


def wire_tool(tool: ToolDefinition) -> dict[str, Any]:
    if tool.type != "function":
        return {"type": tool.type, **tool.extra}
    wire: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description is not None:
        wire["description"] = tool.description
    if tool.parameters is not None:
        wire["parameters"] = tool.parameters
    wire.update(tool.extra)
    return wire


def neutral_tool(tool: dict[str, Any]) -> ToolDefinition:
    rest = dict(tool)
    kind = str(rest.pop("type", "function"))
    if kind != "function":
        return ToolDefinition(name=str(rest.get("name") or kind), type=kind, extra=rest)
    return ToolDefinition(
        name=str(rest.pop("name", "")),
        description=rest.pop("description", None),
        parameters=rest.pop("parameters", None),
        extra=rest,
    )


def neutral_content(content: Any, blobs: Blobs) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content=content)]
    parts: list[Part] = []
    for item in as_list(content):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append(TextPart(content=str(item.get("text") or "")))
        elif kind == "refusal":
            parts.append(TextPart(content=str(item.get("refusal") or "")))
        elif kind == "input_image":
            url = str(item.get("image_url") or item.get("file_id") or "")
            inline = parse_data_url(url)
            if inline is not None:
                part, digest = blob(inline[1], inline[0], "image")
                blobs[digest] = inline[1]
                parts.append(part)
            else:
                parts.append(UriPart(uri=url, detail=item.get("detail")))
        elif kind == "input_file":
            inline = parse_data_url(str(item.get("file_data") or ""))
            if inline is not None:
                part, digest = blob(inline[1], inline[0], "file")
                blobs[digest] = inline[1]
                parts.append(part)
            elif item.get("file_url") or item.get("file_id"):
                parts.append(
                    UriPart(modality="file", uri=str(item.get("file_url") or item.get("file_id")))
                )
        elif kind == "input_audio":
            audio = as_dict(item.get("input_audio"))
            data = b64decode(str(audio.get("data") or ""))
            if data is not None:
                part, digest = blob(data, f"audio/{audio.get('format') or 'wav'}", "audio")
                blobs[digest] = data
                parts.append(part)
    return parts


def reasoning_part(item: dict[str, Any]) -> ReasoningPart:
    texts = [str(s.get("text") or "") for s in as_list(item.get("summary")) if isinstance(s, dict)]
    texts += [str(c.get("text") or "") for c in as_list(item.get("content")) if isinstance(c, dict)]
    return ReasoningPart(
        content="\n\n".join(t for t in texts if t), signature=item.get("encrypted_content")
    )


def neutral_input(data: dict[str, Any], blobs: Blobs) -> list[Message]:
    messages: list[Message] = []
    if isinstance(data.get("instructions"), str) and data["instructions"]:
        messages.append(Message(role="system", parts=[TextPart(content=data["instructions"])]))
    source = data.get("input")
    if isinstance(source, str):
        messages.append(Message(role="user", parts=[TextPart(content=source)]))
        return messages

    def assistant_with(part: Part) -> None:
        if messages and messages[-1].role == "assistant":
            last = messages.pop()
            messages.append(Message(role="assistant", parts=[*last.parts, part]))
        else:
            messages.append(Message(role="assistant", parts=[part]))

    for item in as_list(source):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            role = str(item.get("role") or "user")
            role = "system" if role == "developer" else role
            messages.append(Message(role=role, parts=neutral_content(item.get("content"), blobs)))
        elif kind == "function_call":
            assistant_with(
                ToolCallPart(
                    id=item.get("call_id"),
                    name=str(item.get("name") or ""),
                    arguments=str(item.get("arguments") or ""),
                )
            )
        elif kind == "custom_tool_call":
            assistant_with(
                ToolCallPart(
                    id=item.get("call_id"),
                    name=str(item.get("name") or ""),
                    arguments=str(item.get("input") or ""),
                )
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append(
                Message(
                    role="tool",
                    parts=[
                        ToolCallResponsePart(id=item.get("call_id"), response=item.get("output"))
                    ],
                )
            )
        elif kind == "reasoning":
            assistant_with(reasoning_part(item))
    return messages

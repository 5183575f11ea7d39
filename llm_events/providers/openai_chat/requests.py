"""Chat Completions requests: ``messages`` and ``tools``, neutral <-> wire (the package
docstring says how each part maps)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...log.conversation import (
    BlobPart,
    Message,
    Part,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
    UriPart,
)
from ..base import Blobs, as_dict, as_list, b64decode, blob, blob_base64, data_url, parse_data_url

_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def text_of(parts: list[Part]) -> str:
    return "".join(p.content for p in parts if isinstance(p, TextPart))


def response_text(response: Any) -> str:
    """A tool result as the text a ``tool`` message carries."""
    if isinstance(response, str):
        return response
    return json.dumps(response, ensure_ascii=False)


def content_part(part: Part, blobs: Mapping[str, bytes] | None) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.content}
    if isinstance(part, UriPart):
        image: dict[str, Any] = {"url": part.uri}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, BlobPart):
        if part.modality == "image":
            return {"type": "image_url", "image_url": {"url": data_url(part, blobs)}}
        if part.modality == "audio":
            fmt = (part.mime_type or "audio/wav").rpartition("/")[2]
            fmt = "mp3" if fmt in ("mpeg", "mp3") else fmt
            return {
                "type": "input_audio",
                "input_audio": {"data": blob_base64(part, blobs), "format": fmt},
            }
        return {"type": "file", "file": {"file_data": data_url(part, blobs)}}
    return None


def wire_messages(
    messages: list[Message], blobs: Mapping[str, bytes] | None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        # tool results travel as one ``tool`` message each, wherever the neutral turn had them
        for part in message.parts:
            if isinstance(part, ToolCallResponsePart):
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": part.id,
                        "content": response_text(part.response),
                    }
                )
        rest = [p for p in message.parts if not isinstance(p, ToolCallResponsePart)]
        if message.role == "tool" or (
            not rest and any(isinstance(p, ToolCallResponsePart) for p in message.parts)
        ):
            continue
        wire: dict[str, Any] = {"role": message.role}
        if message.name:
            wire["name"] = message.name
        if message.role == "assistant":
            calls = [p for p in rest if isinstance(p, ToolCallPart)]
            text = text_of(rest)
            wire["content"] = text if text or not calls else None
            if calls:
                wire["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in calls
                ]
        elif all(isinstance(p, TextPart) for p in rest) and len(rest) <= 1:
            wire["content"] = text_of(rest)
        else:
            wire["content"] = [c for p in rest if (c := content_part(p, blobs)) is not None]
        out.append(wire)
    return out


def wire_tool(tool: ToolDefinition) -> dict[str, Any]:
    if tool.type != "function":
        return {"type": tool.type, **tool.extra}
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    function.update(tool.extra)
    return {"type": "function", "function": function}


def neutral_tool(tool: dict[str, Any]) -> ToolDefinition:
    kind = str(tool.get("type") or "function")
    if kind == "function":
        function = dict(as_dict(tool.get("function")))
        return ToolDefinition(
            name=str(function.pop("name", "")),
            description=function.pop("description", None),
            parameters=function.pop("parameters", None),
            extra=function,
        )
    extra = {k: v for k, v in tool.items() if k != "type"}
    name = as_dict(extra.get(kind)).get("name") or tool.get("name") or kind
    return ToolDefinition(name=str(name), type=kind, extra=extra)


def neutral_parts(content: Any, blobs: Blobs) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content=content)]
    parts: list[Part] = []
    for item in as_list(content):
        if isinstance(item, str):
            parts.append(TextPart(content=item))
            continue
        kind = item.get("type")
        if kind == "text":
            parts.append(TextPart(content=str(item.get("text") or "")))
        elif kind == "refusal":
            parts.append(TextPart(content=str(item.get("refusal") or "")))
        elif kind == "image_url":
            image = item.get("image_url")
            image = image if isinstance(image, dict) else {"url": image}
            url = str(image.get("url") or "")
            inline = parse_data_url(url)
            if inline is not None:
                part, digest = blob(inline[1], inline[0], "image")
                blobs[digest] = inline[1]
                parts.append(part)
            else:
                parts.append(UriPart(uri=url, detail=image.get("detail")))
        elif kind == "input_audio":
            audio = as_dict(item.get("input_audio"))
            data = b64decode(str(audio.get("data") or ""))
            if data is not None:
                fmt = str(audio.get("format") or "wav")
                part, digest = blob(data, _AUDIO_MIME.get(fmt, f"audio/{fmt}"), "audio")
                blobs[digest] = data
                parts.append(part)
        elif kind == "file":
            file = as_dict(item.get("file"))
            inline = parse_data_url(str(file.get("file_data") or ""))
            if inline is not None:
                part, digest = blob(inline[1], inline[0], "file")
                blobs[digest] = inline[1]
                parts.append(part)
            elif file.get("file_id"):
                parts.append(UriPart(modality="file", uri=str(file["file_id"])))
    return parts


def neutral_messages(wire: list[Any], blobs: Blobs) -> list[Message]:
    messages: list[Message] = []
    for item in wire:
        if not isinstance(item, dict):
            continue
        role = str(item.get("role") or "user")
        name = item.get("name")
        if role == "developer":
            role = "system"
        if role == "tool":
            messages.append(
                Message(
                    role="tool",
                    parts=[
                        ToolCallResponsePart(
                            id=item.get("tool_call_id"), response=tool_content(item.get("content"))
                        )
                    ],
                )
            )
            continue
        if role == "function":  # the legacy function-calling protocol
            messages.append(
                Message(
                    role="tool", parts=[ToolCallResponsePart(id=name, response=item.get("content"))]
                )
            )
            continue
        parts = neutral_parts(item.get("content"), blobs)
        if role == "assistant":
            if item.get("refusal"):
                parts.append(TextPart(content=str(item["refusal"])))
            for call in as_list(item.get("tool_calls")):
                if isinstance(call, dict):
                    parts.append(tool_call(call))
            legacy = as_dict(item.get("function_call"))
            if legacy:
                parts.append(
                    ToolCallPart(
                        name=str(legacy.get("name") or ""),
                        arguments=str(legacy.get("arguments") or ""),
                    )
                )
        messages.append(
            Message(role=role, parts=parts, name=name if isinstance(name, str) else None)
        )
    return messages


def call_body(call: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A tool call's body and the key of its arguments: ``function.arguments`` (JSON text),
    or ``custom.input`` (free text) for custom tools."""
    if call.get("type") == "custom" or ("custom" in call and "function" not in call):
        return as_dict(call.get("custom")), "input"
    return as_dict(call.get("function")), "arguments"


def tool_call(call: dict[str, Any]) -> ToolCallPart:
    body, field = call_body(call)
    return ToolCallPart(
        id=call.get("id"), name=str(body.get("name") or ""), arguments=str(body.get(field) or "")
    )


def tool_content(content: Any) -> Any:
    """A ``tool`` message's content: its text (text parts joined), else as given."""
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" for p in content
    ):
        return "".join(str(p.get("text") or "") for p in content)
    return content

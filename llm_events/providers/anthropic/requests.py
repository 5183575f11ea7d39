"""Anthropic Messages requests: the conversation (``system``, ``messages``) and tools,
neutral <-> wire (the package docstring says how each block maps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ...log.conversation import (
    TEXT_DOCUMENT,
    BlobPart,
    Message,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
    UriPart,
    part_extra,
)
from ..base import Blobs, as_dict, as_list, b64decode, blob, blob_base64, json_text, json_value


def wire_block(part: Part, blobs: Mapping[str, bytes] | None) -> dict[str, Any] | None:
    extra = dict(part.extra)
    document = extra.pop(TEXT_DOCUMENT, None)
    if isinstance(part, TextPart) and isinstance(document, dict):
        source = {"type": "text", "media_type": document.get("media_type") or "text/plain"}
        block: dict[str, Any] | None = {
            "type": "document",
            "source": {**source, "data": part.content},
        }
    else:
        block = _wire_block(part, blobs)
    if block is not None and extra:
        block.update(extra)  # cache_control, citations, ...: as the request had them
    return block


def _wire_block(part: Part, blobs: Mapping[str, bytes] | None) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.content}
    if isinstance(part, UriPart):
        kind = "image" if part.modality == "image" else "document"
        return {"type": kind, "source": {"type": "url", "url": part.uri}}
    if isinstance(part, BlobPart):
        kind = "image" if part.modality == "image" else "document"
        return {
            "type": kind,
            "source": {
                "type": "base64",
                "media_type": part.mime_type or "application/octet-stream",
                "data": blob_base64(part, blobs),
            },
        }
    if isinstance(part, ToolCallPart):
        return {
            "type": "tool_use",
            "id": part.id,
            "name": part.name,
            "input": json_value(part.arguments),
        }
    if isinstance(part, ToolCallResponsePart):
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.id}
        if part.response is not None:
            server = "type" in part.extra  # a server tool's result: its content as it came
            block["content"] = (
                part.response
                if server or isinstance(part.response, (str, list))
                else json_text(part.response)
            )
        if part.is_error:
            block["is_error"] = True
        return block
    if isinstance(part, ReasoningPart):
        if part.redacted:
            return {"type": "redacted_thinking", "data": part.data or ""}
        block = {"type": "thinking", "thinking": part.content}
        if part.signature is not None:
            block["signature"] = part.signature
        return block
    return None


def wire_system(messages: list[Message]) -> str | list[dict[str, Any]] | None:
    parts = [p for m in messages if m.role == "system" for p in m.parts if isinstance(p, TextPart)]
    if not parts:
        return None
    if len(parts) == 1 and not parts[0].extra:
        return parts[0].content
    return [{"type": "text", "text": p.content, **p.extra} for p in parts]


def wire_messages(
    messages: list[Message], blobs: Mapping[str, bytes] | None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    previous_tool = False
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = [b for p in message.parts if (b := wire_block(p, blobs)) is not None]
        if (
            (message.role == "tool" or previous_tool)
            and out
            and out[-1]["role"] == "user"
            and role == "user"
        ):
            previous = out[-1]
            if isinstance(previous["content"], str):
                previous["content"] = [{"type": "text", "text": previous["content"]}]
            previous["content"].extend(blocks)
        elif (
            role == "user"
            and message.role != "tool"
            and len(blocks) == 1
            and blocks[0].keys() == {"type", "text"}
        ):
            out.append({"role": role, "content": blocks[0]["text"]})
        else:
            out.append({"role": role, "content": blocks})
        previous_tool = message.role == "tool"
    return out


def wire_tool(tool: ToolDefinition) -> dict[str, Any]:
    if tool.type != "function":  # server tools (web_search_..., bash_..., computer_...)
        return {"type": tool.type, "name": tool.name, **tool.extra}
    wire: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        wire["description"] = tool.description
    wire["input_schema"] = tool.parameters if tool.parameters is not None else {"type": "object"}
    wire.update(tool.extra)
    return wire


def neutral_tool(tool: dict[str, Any]) -> ToolDefinition:
    rest = dict(tool)
    kind = rest.pop("type", None)
    name = str(rest.pop("name", ""))
    if kind not in (None, "custom"):
        return ToolDefinition(name=name, type=str(kind), extra=rest)
    return ToolDefinition(
        name=name,
        description=rest.pop("description", None),
        parameters=rest.pop("input_schema", None),
        extra=rest,
    )


def neutral_source(block: dict[str, Any], blobs: Blobs) -> Part | None:
    source = as_dict(block.get("source"))
    modality = "image" if block.get("type") == "image" else "file"
    kind = source.get("type")
    if kind == "base64":
        data = b64decode(str(source.get("data") or ""))
        if data is None:
            return None
        part, digest = blob(data, source.get("media_type"), modality)
        blobs[digest] = data
        return part
    if kind == "url":
        return UriPart(modality=modality, uri=str(source.get("url") or ""))
    if kind == "text":
        return TextPart(content=str(source.get("data") or ""))
    if kind == "file":
        return UriPart(modality=modality, uri=str(source.get("file_id") or ""))
    return None


def is_server_block(kind: Any, suffix: str) -> bool:
    """A block of a tool the API runs itself: ``server_tool_use``, ``mcp_tool_use`` and
    their results (``web_search_tool_result``, ``code_execution_tool_result``, ...)."""
    return (
        isinstance(kind, str) and kind.endswith(suffix) and kind not in ("tool_use", "tool_result")
    )


def server_extra(block: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """A server tool block's own keys (its ``type`` first), kept on the part's ``extra`` so
    that it is sent back as that block, not as a client tool call or result."""
    if not is_server_block(block.get("type"), "_tool_use") and not is_server_block(
        block.get("type"), "_tool_result"
    ):
        return {}
    return {k: v for k, v in block.items() if k not in fields}


def neutral_block(block: Any, blobs: Blobs) -> Part | None:
    part = _neutral_block(block, blobs)
    if part is None:
        return None
    extra = {**part.extra, **part_extra(block)}
    return msgspec.structs.replace(part, extra=extra) if extra != part.extra else part


def _neutral_block(block: Any, blobs: Blobs) -> Part | None:
    if isinstance(block, str):
        return TextPart(content=block)
    if not isinstance(block, dict):
        return None
    kind = block.get("type")
    if kind == "text":
        return TextPart(content=str(block.get("text") or ""))
    if kind in ("image", "document"):
        return neutral_source(block, blobs)
    if kind == "tool_use" or is_server_block(kind, "_tool_use"):
        return ToolCallPart(
            id=block.get("id"),
            name=str(block.get("name") or ""),
            arguments=json_text(block.get("input", {})),
            extra=server_extra(block, ("id", "name", "input")),
        )
    if is_server_block(kind, "_tool_result"):  # web_search_tool_result, ...: the server's
        return ToolCallResponsePart(
            id=block.get("tool_use_id"),
            response=block.get("content"),
            extra=server_extra(block, ("tool_use_id", "content")),
        )
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list) and all(
            isinstance(b, dict) and b.get("type") == "text" for b in content
        ):
            content = "".join(str(b.get("text") or "") for b in content)
        return ToolCallResponsePart(
            id=block.get("tool_use_id"), response=content, is_error=bool(block.get("is_error"))
        )
    if kind == "thinking":
        return ReasoningPart(
            content=str(block.get("thinking") or ""), signature=block.get("signature")
        )
    if kind == "redacted_thinking":
        return ReasoningPart(redacted=True, data=block.get("data"))
    return None


def neutral_messages(data: dict[str, Any], blobs: Blobs) -> list[Message]:
    messages: list[Message] = []
    system = data.get("system")
    if isinstance(system, str) and system:
        messages.append(Message(role="system", parts=[TextPart(content=system)]))
    elif isinstance(system, list):
        parts = [p for b in system if (p := neutral_block(b, blobs)) is not None]
        if parts:
            messages.append(Message(role="system", parts=parts))
    for item in as_list(data.get("messages")):
        if not isinstance(item, dict):
            continue
        role = str(item.get("role") or "user")
        content = item.get("content")
        blocks = [content] if isinstance(content, str) else as_list(content)
        parts = [p for b in blocks if (p := neutral_block(b, blobs)) is not None]
        if role == "user" and parts and all(isinstance(p, ToolCallResponsePart) for p in parts):
            role = "tool"
        messages.append(Message(role=role, parts=parts))
    return messages

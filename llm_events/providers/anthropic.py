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

import json
from collections.abc import Mapping
from typing import Any

import msgspec

from ..log.conversation import (
    TEXT_DOCUMENT,
    BlobPart,
    Message,
    ModelResponse,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
    UriPart,
    Usage,
    part_extra,
)
from .base import (
    Adapter,
    Blobs,
    StreamFormatError,
    StreamParser,
    ToolCallAssembly,
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
from .lines import SSEStream

#: Stream error types and the HTTP status they stand for (what a retry decision needs).
STREAM_ERROR_STATUS = {
    "overloaded_error": 529,
    "api_error": 500,
    "rate_limit_error": 429,
    "timeout_error": 504,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
}


# --- requests -------------------------------------------------------------------------------


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
            block["content"] = (
                part.response
                if isinstance(part.response, (str, list))
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


def neutral_block(block: Any, blobs: Blobs) -> Part | None:
    part = _neutral_block(block, blobs)
    extra = part_extra(block)
    return msgspec.structs.replace(part, extra=extra) if part is not None and extra else part


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
    if kind in ("tool_use", "server_tool_use"):
        return ToolCallPart(
            id=block.get("id"),
            name=str(block.get("name") or ""),
            arguments=json_text(block.get("input", {})),
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


# --- responses ------------------------------------------------------------------------------


def usage(data: Any, previous: Usage | None = None) -> Usage:
    """Anthropic usage with input counting cached reads and writes (as OpenAI's does).

    In a stream ``message_delta`` repeats the counts cumulatively, some of them only; a count
    it leaves out keeps its earlier value."""
    data = as_dict(data)
    before = previous or Usage()
    base = int_or_none(data.get("input_tokens"))
    read = int_or_none(data.get("cache_read_input_tokens"))
    written = int_or_none(data.get("cache_creation_input_tokens"))
    if base is None and read is None and written is None:
        total = before.input_tokens
    else:
        read = read if read is not None else before.cache_read_tokens
        written = written if written is not None else before.cache_write_tokens
        if base is None and before.input_tokens is not None:
            base = (
                before.input_tokens
                - (before.cache_read_tokens or 0)
                - (before.cache_write_tokens or 0)
            )
        total = None if base is None else base + (read or 0) + (written or 0)
    output = int_or_none(data.get("output_tokens"))
    return Usage(
        input_tokens=total,
        output_tokens=output if output is not None else before.output_tokens,
        cache_read_tokens=read if read is not None else before.cache_read_tokens,
        cache_write_tokens=written if written is not None else before.cache_write_tokens,
    )


def stop_details(data: dict[str, Any]) -> dict[str, Any] | None:
    details: dict[str, Any] = {}
    if data.get("stop_sequence") is not None:
        details["stop_sequence"] = data["stop_sequence"]
    if data.get("stop_details") is not None:
        details["stop_details"] = data["stop_details"]
    return details or None


def split_content(blocks: list[Any]) -> tuple[str, list[ToolCallPart], list[ReasoningPart]]:
    text: list[str] = []
    calls: list[ToolCallPart] = []
    reasoning: list[ReasoningPart] = []
    for block in blocks:
        part = neutral_block(block, {})
        if isinstance(part, TextPart):
            text.append(part.content)
        elif isinstance(part, ToolCallPart):
            calls.append(part)
        elif isinstance(part, ReasoningPart):
            reasoning.append(part)
    return "".join(text), calls, reasoning


def parse_message(data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ValueError("the server's answer has no ['content'] list")
    text, calls, reasoning = split_content(data["content"])
    return ModelResponse(
        text=text,
        tool_calls=calls,
        reasoning=reasoning,
        finish_reason=data.get("stop_reason"),
        stop_details=stop_details(data),
        usage=usage(data.get("usage")),
        response_id=data.get("id"),
        response_model=data.get("model"),
        request_id=header_request_id(headers),
        headers=kept_headers(headers),
        raw=data,
    )


def stream_error(error: dict[str, Any], headers: dict[str, str], request_id: str | None) -> Any:
    kind = str(error.get("type") or "error")
    status = STREAM_ERROR_STATUS.get(kind, 500)
    body = json.dumps({"type": "error", "error": error})
    parsed = parse_error(status, body, headers)
    parsed.request_id = parsed.request_id or request_id
    return parsed


class MessagesStreamParser(StreamParser):
    """SSE events of the Messages API; ``message_stop`` ends the answer."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self._sse = SSEStream()
        self._blocks: dict[int, dict[str, Any]] = {}
        self._stopped: set[int] = set()
        self._calls = ToolCallAssembly()
        self._usage = Usage()
        self.finish_reason: str | None = None
        self._stop: dict[str, Any] = {}
        self._id: str | None = None
        self._model: str | None = None
        self.started = False

    def feed(self, chunk: bytes) -> list[str]:
        return self._handle(self._sse.feed(chunk))

    def close(self) -> list[str]:
        return self._handle(self._sse.close())

    def _handle(self, events: list[Any]) -> list[str]:
        deltas: list[str] = []
        for event in events:
            if not event.data.strip():
                continue
            try:
                data = json.loads(event.data)
            except ValueError:
                raise StreamFormatError(
                    f"a stream event is not valid JSON: {event.data[:200]!r}"
                ) from None
            if isinstance(data, dict):
                self._event(data, deltas)
        return deltas

    def _event(self, data: dict[str, Any], deltas: list[str]) -> None:
        kind = data.get("type")
        if kind == "message_start":
            self.started = True
            message = as_dict(data.get("message"))
            self._id = message.get("id") or self._id
            self._model = message.get("model") or self._model
            self._usage = usage(message.get("usage"), self._usage)
        elif kind == "content_block_start":
            index = int_or_none(data.get("index")) or 0
            block = dict(as_dict(data.get("content_block")))
            self._blocks[index] = block
            if block.get("type") in ("tool_use", "server_tool_use"):
                self._calls.start(index, id=block.get("id"), name=block.get("name"))
            elif block.get("type") == "text" and block.get("text"):
                deltas.append(block["text"])
        elif kind == "content_block_delta":
            index = int_or_none(data.get("index")) or 0
            block = self._blocks.setdefault(index, {"type": "text", "text": ""})
            delta = as_dict(data.get("delta"))
            dtype = delta.get("type")
            if dtype == "text_delta":
                piece = str(delta.get("text") or "")
                block["text"] = str(block.get("text") or "") + piece
                if piece:
                    deltas.append(piece)
            elif dtype == "input_json_delta":
                self._calls.add(index, str(delta.get("partial_json") or ""))
            elif dtype == "thinking_delta":
                block["thinking"] = str(block.get("thinking") or "") + str(
                    delta.get("thinking") or ""
                )
            elif dtype == "signature_delta":
                block["signature"] = str(block.get("signature") or "") + str(
                    delta.get("signature") or ""
                )
            elif dtype == "citations_delta":
                block.setdefault("citations", []).append(delta.get("citation"))
        elif kind == "content_block_stop":
            self._stopped.add(int_or_none(data.get("index")) or 0)
        elif kind == "message_delta":
            delta = as_dict(data.get("delta"))
            if delta.get("stop_reason"):
                self.finish_reason = delta["stop_reason"]
            for key in ("stop_sequence", "stop_details"):
                if delta.get(key) is not None:
                    self._stop[key] = delta[key]
            self._usage = usage(data.get("usage"), self._usage)
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            self.error = stream_error(as_dict(data.get("error")), self.headers, self.request_id)

    def response(self) -> ModelResponse:
        text: list[str] = []
        calls: list[ToolCallPart] = []
        reasoning: list[ReasoningPart] = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            kind = block.get("type")
            if kind == "text":
                text.append(str(block.get("text") or ""))
            elif kind in ("tool_use", "server_tool_use"):
                arguments = self._calls.arguments(index)
                if not arguments and "input" in block and index in self._stopped:
                    # no fragments, or only empty ones: the call's input is its start's
                    arguments = json_text(block["input"])
                calls.append(
                    ToolCallPart(
                        id=block.get("id"), name=str(block.get("name") or ""), arguments=arguments
                    )
                )
            elif kind == "thinking":
                reasoning.append(
                    ReasoningPart(
                        content=str(block.get("thinking") or ""),
                        signature=block.get("signature") or None,
                    )
                )
            elif kind == "redacted_thinking":
                reasoning.append(ReasoningPart(redacted=True, data=block.get("data")))
        return ModelResponse(
            text="".join(text),
            tool_calls=calls,
            reasoning=reasoning,
            finish_reason=self.finish_reason,
            stop_details=dict(self._stop) or None,
            usage=self._usage,
            response_id=self._id,
            response_model=self._model,
            request_id=self.request_id,
            headers=dict(self.headers),
            raw={k: v for k, v in {"id": self._id, "model": self._model}.items() if v is not None},
        )


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

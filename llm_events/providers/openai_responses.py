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

import json
from collections.abc import Mapping
from typing import Any

from ..log.conversation import (
    BlobPart,
    Message,
    ModelResponse,
    Part,
    ProviderError,
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
    ToolCallAssembly,
    as_dict,
    as_list,
    b64decode,
    blob,
    blob_base64,
    data_url,
    header_request_id,
    int_or_none,
    is_retryable_status,
    kept_headers,
    parse_data_url,
    shorten,
)
from .lines import SSEStream
from .openai_chat import response_text, text_of

TERMINAL = ("response.completed", "response.incomplete", "response.failed")


# --- requests -------------------------------------------------------------------------------


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


# --- responses ------------------------------------------------------------------------------


def usage(data: Any) -> Usage:
    data = as_dict(data)
    return Usage(
        input_tokens=int_or_none(data.get("input_tokens")),
        output_tokens=int_or_none(data.get("output_tokens")),
        cache_read_tokens=int_or_none(
            as_dict(data.get("input_tokens_details")).get("cached_tokens")
        ),
        reasoning_tokens=int_or_none(
            as_dict(data.get("output_tokens_details")).get("reasoning_tokens")
        ),
    )


def finish(data: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    status = data.get("status")
    details = as_dict(data.get("incomplete_details")) or None
    if status == "incomplete" and details and details.get("reason"):
        return str(details["reason"]), details
    return status, details


def failure(
    data: dict[str, Any], headers: dict[str, str], request_id: str | None
) -> ProviderError | None:
    error = as_dict(data.get("error"))
    if not error:
        return None
    code = error.get("code")
    status = 429 if code == "rate_limit_exceeded" else 500
    return ProviderError(
        status_code=status,
        error_type=error.get("type"),
        code=None if code is None else str(code),
        message=shorten(str(error.get("message") or "")),
        request_id=request_id,
        headers=headers,
        retryable=is_retryable_status(status),
        raw=error,
    )


def parse_output(data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        raise ValueError("the server's answer has no ['output'] list")
    text: list[str] = []
    refusal: list[str] = []
    calls: list[ToolCallPart] = []
    reasoning: list[ReasoningPart] = []
    logprobs: list[Any] = []
    for item in data["output"]:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for content in as_list(item.get("content")):
                if content.get("type") == "output_text":
                    text.append(str(content.get("text") or ""))
                    logprobs.extend(as_list(content.get("logprobs")))
                elif content.get("type") == "refusal":
                    refusal.append(str(content.get("refusal") or ""))
        elif kind == "function_call":
            calls.append(
                ToolCallPart(
                    id=item.get("call_id"),
                    name=str(item.get("name") or ""),
                    arguments=str(item.get("arguments") or ""),
                )
            )
        elif kind == "custom_tool_call":
            calls.append(
                ToolCallPart(
                    id=item.get("call_id"),
                    name=str(item.get("name") or ""),
                    arguments=str(item.get("input") or ""),
                )
            )
        elif kind == "reasoning":
            reasoning.append(reasoning_part(item))
    reason, details = finish(data)
    return ModelResponse(
        text="".join(text),
        tool_calls=calls,
        refusal="".join(refusal) if refusal else None,
        reasoning=reasoning,
        finish_reason=reason,
        stop_details=details,
        usage=usage(data.get("usage")),
        response_id=data.get("id"),
        response_model=data.get("model"),
        request_id=header_request_id(headers),
        headers=kept_headers(headers),
        logprobs=logprobs or None,
        raw=data,
    )


class ResponsesStreamParser(StreamParser):
    """``response.*`` events; a terminal one (completed, incomplete, failed) ends it."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self._sse = SSEStream()
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._calls = ToolCallAssembly()
        self._reasoning: dict[int, dict[str, Any]] = {}
        self._logprobs: list[Any] = []
        self._response: dict[str, Any] = {}
        self.finish_reason: str | None = None
        self._details: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> list[str]:
        return self._handle(self._sse.feed(chunk))

    def close(self) -> list[str]:
        return self._handle(self._sse.close())

    def _handle(self, events: list[Any]) -> list[str]:
        deltas: list[str] = []
        for event in events:
            if not event.data.strip() or event.data.strip() == "[DONE]":
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
        kind = str(data.get("type") or "")
        index = int_or_none(data.get("output_index"))
        if kind in ("response.created", "response.in_progress", *TERMINAL):
            response = as_dict(data.get("response"))
            self._response.update({k: v for k, v in response.items() if v is not None})
            if kind in TERMINAL:
                self.done = True
                self.finish_reason, self._details = finish(response)
                if kind == "response.failed":
                    self.error = failure(response, self.headers, self.request_id)
        elif kind == "response.output_item.added":
            item = as_dict(data.get("item"))
            if item.get("type") in ("function_call", "custom_tool_call"):
                self._calls.start(index, id=item.get("call_id"), name=item.get("name"))
                initial = item.get("arguments") or item.get("input")
                if initial:
                    self._calls.add(index, str(initial))
            elif item.get("type") == "reasoning":
                self._reasoning.setdefault(index or 0, {"text": [], "signature": None})
        elif kind == "response.output_item.done":
            item = as_dict(data.get("item"))
            if item.get("type") == "reasoning":
                slot = self._reasoning.setdefault(index or 0, {"text": [], "signature": None})
                slot["signature"] = item.get("encrypted_content")
                if not slot["text"]:
                    slot["text"] = [reasoning_part(item).content]
            elif item.get("type") in ("function_call", "custom_tool_call"):
                self._calls.start(index, id=item.get("call_id"), name=item.get("name"))
                final = (
                    item.get("arguments")
                    if item.get("type") == "function_call"
                    else item.get("input")
                )
                if final and not self._calls.arguments(index):
                    self._calls.set_arguments(index, str(final))
        elif kind == "response.output_text.delta":
            piece = str(data.get("delta") or "")
            if piece:
                self._text.append(piece)
                deltas.append(piece)
            self._logprobs.extend(as_list(data.get("logprobs")))
        elif kind == "response.refusal.delta":
            self._refusal.append(str(data.get("delta") or ""))
        elif kind in (
            "response.function_call_arguments.delta",
            "response.custom_tool_call_input.delta",
        ):
            self._calls.add(index, str(data.get("delta") or ""))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            slot = self._reasoning.setdefault(index or 0, {"text": [], "signature": None})
            slot["text"].append(str(data.get("delta") or ""))
        elif kind == "error":
            code = data.get("code")
            status = 429 if code == "rate_limit_exceeded" else 500
            self.error = ProviderError(
                status_code=status,
                error_type=data.get("type") if data.get("type") != "error" else None,
                code=None if code is None else str(code),
                message=shorten(str(data.get("message") or "")),
                request_id=self.request_id,
                headers=dict(self.headers),
                retryable=is_retryable_status(status),
                raw=data,
            )

    def response(self) -> ModelResponse:
        response = self._response
        return ModelResponse(
            text="".join(self._text),
            tool_calls=self._calls.parts(),
            refusal="".join(self._refusal) if self._refusal else None,
            reasoning=[
                ReasoningPart(content="".join(slot["text"]), signature=slot["signature"])
                for _, slot in sorted(self._reasoning.items())
            ],
            finish_reason=self.finish_reason,
            stop_details=self._details,
            usage=usage(response.get("usage")),
            response_id=response.get("id"),
            response_model=response.get("model"),
            request_id=self.request_id,
            headers=dict(self.headers),
            logprobs=self._logprobs or None,
            raw={k: response[k] for k in ("id", "model", "status") if k in response},
        )


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

"""OpenAI Chat Completions (``POST /v1/chat/completions``), and every server speaking it
(vLLM, llama.cpp, LM Studio, Ollama's ``/v1``, OpenRouter...).

Neutral <-> wire: ``system`` and ``developer`` messages are system turns; user content parts
``text``, ``image_url`` (an URL, or a ``data:`` URL that becomes an inline blob),
``input_audio`` and ``file`` (inline data becomes a blob); assistant ``tool_calls`` and
``refusal``; ``tool`` messages answer a ``tool_call_id``.  Reasoning that servers add to a
message (``reasoning_content`` from vLLM and DeepSeek, ``reasoning`` from others) is read,
never sent back.  Streams are SSE chunks of ``choices[].delta``, ended by ``data: [DONE]``;
tool-call arguments are concatenated exactly as their deltas came, per ``index``.
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
    kept_headers,
    parse_data_url,
    parse_error,
)
from .lines import SSEStream

_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg"}


# --- requests -------------------------------------------------------------------------------


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


# --- responses ------------------------------------------------------------------------------


def usage(data: Any) -> Usage:
    """OpenAI usage: ``prompt_tokens`` (cached ones included) and ``completion_tokens``
    (reasoning ones included), with the cached and reasoning counts from the details."""
    data = as_dict(data)
    prompt = as_dict(data.get("prompt_tokens_details"))
    completion = as_dict(data.get("completion_tokens_details"))
    return Usage(
        input_tokens=int_or_none(data.get("prompt_tokens")),
        output_tokens=int_or_none(data.get("completion_tokens")),
        cache_read_tokens=int_or_none(prompt.get("cached_tokens")),
        reasoning_tokens=int_or_none(completion.get("reasoning_tokens")),
    )


def reasoning_of(message: dict[str, Any]) -> str | None:
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def stop_details(choice: dict[str, Any]) -> dict[str, Any] | None:
    """vLLM's ``stop_reason`` (the stop string or token id that ended the answer)."""
    if choice.get("stop_reason") is not None:
        return {"stop_reason": choice["stop_reason"]}
    return None


def choice_fields(
    data: dict[str, Any], choice: dict[str, Any], headers: Mapping[str, str] | None
) -> dict[str, Any]:
    """The ModelResponse fields every OpenAI-shaped answer has, whatever its choice holds
    (chat completions and legacy completions alike)."""
    return {
        "finish_reason": choice.get("finish_reason"),
        "stop_details": stop_details(choice),
        "usage": usage(data.get("usage")),
        "response_id": data.get("id"),
        "response_model": data.get("model"),
        "request_id": header_request_id(headers),
        "headers": kept_headers(headers),
        "logprobs": choice.get("logprobs"),
        "raw": data,
    }


def first_choice(data: Any) -> dict[str, Any]:
    """``choices[0]`` of an OpenAI-shaped answer (chat or legacy completions), or ValueError."""
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("choices"), list)
        or not data["choices"]
    ):
        raise ValueError("the server's answer has no ['choices'][0]")
    return as_dict(data["choices"][0])


def parse_chat_response(data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
    choice = first_choice(data)
    if "message" not in choice:
        raise ValueError("the server's answer has no ['choices'][0]['message']")
    message = as_dict(choice.get("message"))
    calls = [tool_call(c) for c in as_list(message.get("tool_calls")) if isinstance(c, dict)]
    legacy = as_dict(message.get("function_call"))
    if legacy:
        calls.append(
            ToolCallPart(
                name=str(legacy.get("name") or ""), arguments=str(legacy.get("arguments") or "")
            )
        )
    thinking = reasoning_of(message)
    content = message.get("content")
    return ModelResponse(
        text=content if isinstance(content, str) else "",
        tool_calls=calls,
        refusal=message.get("refusal") if isinstance(message.get("refusal"), str) else None,
        reasoning=[ReasoningPart(content=thinking)] if thinking else [],
        **choice_fields(data, choice, headers),
    )


class ChatStreamParser(StreamParser):
    """``data:`` chunks of ``chat.completion.chunk``; ``[DONE]`` ends the stream."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self._sse = SSEStream()
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._reasoning: list[str] = []
        self._calls = ToolCallAssembly()
        self._logprobs: dict[str, list[Any]] = {}
        self.finish_reason: str | None = None
        self._stop_details: dict[str, Any] | None = None
        self._usage = Usage()
        self._id: str | None = None
        self._model: str | None = None
        self._extra: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> list[str]:
        return self._handle(self._sse.feed(chunk))

    def close(self) -> list[str]:
        return self._handle(self._sse.close())

    def _handle(self, events: list[Any]) -> list[str]:
        deltas: list[str] = []
        for event in events:
            data = event.data
            if data.strip() == "[DONE]":
                self.done = True
                continue
            if not data.strip():
                continue
            try:
                chunk = json.loads(data)
            except ValueError:
                raise StreamFormatError(
                    f"a stream chunk is not valid JSON: {data[:200]!r}"
                ) from None
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                self.error = parse_error(500, data, self.headers)
                self.error.request_id = self.error.request_id or self.request_id
                continue
            self._chunk(chunk, deltas)
        return deltas

    def _chunk(self, chunk: dict[str, Any], deltas: list[str]) -> None:
        self._id = self._id or chunk.get("id")
        self._model = chunk.get("model") or self._model
        for key in ("system_fingerprint", "service_tier"):
            if chunk.get(key) is not None:
                self._extra[key] = chunk[key]
        if chunk.get("usage"):
            self._usage = usage(chunk["usage"])
        for choice in as_list(chunk.get("choices")):
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = as_dict(choice.get("delta"))
            if "delta" not in choice and isinstance(choice.get("text"), str):
                delta = {"content": choice["text"]}  # legacy /completions chunks
            if isinstance(delta.get("content"), str) and delta["content"]:
                self._text.append(delta["content"])
                deltas.append(delta["content"])
            if isinstance(delta.get("refusal"), str):
                self._refusal.append(delta["refusal"])
            thinking = reasoning_of(delta)
            if thinking:
                self._reasoning.append(thinking)
            for position, call in enumerate(as_list(delta.get("tool_calls"))):
                if not isinstance(call, dict):
                    continue
                key = call.get("index", position)
                function, field = call_body(call)
                self._calls.start(key, id=call.get("id"), name=function.get("name"))
                arguments = function.get(field)
                if isinstance(arguments, str):
                    self._calls.add(key, arguments)
            legacy = as_dict(delta.get("function_call"))
            if legacy:
                self._calls.start("function_call", name=legacy.get("name"))
                self._calls.add("function_call", str(legacy.get("arguments") or ""))
            logprobs = as_dict(choice.get("logprobs"))
            for key, tokens in logprobs.items():
                if isinstance(tokens, list):
                    self._logprobs.setdefault(key, []).extend(tokens)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            details = stop_details(choice)
            if details:
                self._stop_details = details

    def response(self) -> ModelResponse:
        reasoning = "".join(self._reasoning)
        raw: dict[str, Any] = {"id": self._id, "model": self._model, **self._extra}
        return ModelResponse(
            text="".join(self._text),
            tool_calls=self._calls.parts(),
            refusal="".join(self._refusal) if self._refusal else None,
            reasoning=[ReasoningPart(content=reasoning)] if reasoning else [],
            finish_reason=self.finish_reason,
            stop_details=self._stop_details,
            usage=self._usage,
            response_id=self._id,
            response_model=self._model,
            request_id=self.request_id,
            headers=dict(self.headers),
            logprobs=dict(self._logprobs) if self._logprobs else None,
            raw={k: v for k, v in raw.items() if v is not None},
        )


class OpenAIChatAdapter(Adapter):
    name = "openai_chat"
    path = "/chat/completions"
    wire_keys = ("model", "messages", "tools", "functions", "stream")
    parser = ChatStreamParser

    def write_conversation(
        self, messages: list[Message], blobs: Mapping[str, bytes] | None
    ) -> dict[str, Any]:
        return {"messages": wire_messages(messages, blobs)}

    def write_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        return wire_tool(tool)

    def read_conversation(self, data: dict[str, Any], blobs: Blobs) -> list[Message]:
        return neutral_messages(as_list(data.get("messages")), blobs)

    def read_tool(self, tool: dict[str, Any]) -> ToolDefinition:
        return neutral_tool(tool)

    def read_tools(self, data: dict[str, Any]) -> list[ToolDefinition]:
        legacy = [  # the legacy function definitions
            {"type": "function", "function": fn}
            for fn in as_list(data.get("functions"))
            if isinstance(fn, dict)
        ]
        return [*super().read_tools(data), *map(neutral_tool, legacy)]

    def read_answer(self, data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
        return parse_chat_response(data, headers)


adapter = OpenAIChatAdapter()

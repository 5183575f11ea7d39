"""Anthropic Messages answers, whole (``parse_message``) and streamed (SSE ``message_start``
... ``message_stop``, :class:`MessagesStreamParser`), read into a neutral ``ModelResponse``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...log.conversation import ModelResponse, ReasoningPart, TextPart, ToolCallPart, Usage
from ..base import (
    SSEJsonParser,
    ToolCallAssembly,
    as_dict,
    header_request_id,
    int_or_none,
    json_text,
    kept_headers,
    parse_error,
)
from .requests import is_server_block, neutral_block, server_extra

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


def usage(data: Any, previous: Usage | None = None) -> Usage:
    """Anthropic usage with input counting cached reads and writes (as OpenAI's does), and
    ``output_tokens_details.thinking_tokens`` (part of ``output_tokens``) as reasoning tokens.

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
    thinking = int_or_none(as_dict(data.get("output_tokens_details")).get("thinking_tokens"))
    return Usage(
        input_tokens=total,
        output_tokens=output if output is not None else before.output_tokens,
        cache_read_tokens=read if read is not None else before.cache_read_tokens,
        cache_write_tokens=written if written is not None else before.cache_write_tokens,
        reasoning_tokens=thinking if thinking is not None else before.reasoning_tokens,
    )


def stop_details(data: dict[str, Any]) -> dict[str, Any] | None:
    details: dict[str, Any] = {}
    if data.get("stop_sequence") is not None:
        details["stop_sequence"] = data["stop_sequence"]
    if data.get("stop_details") is not None:
        details["stop_details"] = data["stop_details"]
    return details or None


def refusal_of(stop_reason: Any, details: dict[str, Any] | None) -> str | None:
    """A refused answer (``stop_reason`` ``refusal``) as the neutral refusal: the
    explanation of its ``stop_details`` (or their category), else the stop reason itself."""
    if stop_reason != "refusal":
        return None
    said = as_dict((details or {}).get("stop_details"))
    return str(said.get("explanation") or said.get("category") or stop_reason)


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
    details = stop_details(data)
    return ModelResponse(
        text=text,
        tool_calls=calls,
        refusal=refusal_of(data.get("stop_reason"), details),
        reasoning=reasoning,
        finish_reason=data.get("stop_reason"),
        stop_details=details,
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


class MessagesStreamParser(SSEJsonParser):
    """SSE events of the Messages API; ``message_stop`` ends the answer."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self._blocks: dict[int, dict[str, Any]] = {}
        self._stopped: set[int] = set()
        self._calls = ToolCallAssembly()
        self._usage = Usage()
        self.finish_reason: str | None = None
        self._stop: dict[str, Any] = {}
        self._id: str | None = None
        self._model: str | None = None
        self.started = False

    def _event(self, data: dict[str, Any], text: str, deltas: list[str]) -> None:
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
            if block.get("type") == "tool_use" or is_server_block(block.get("type"), "_tool_use"):
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
            # the header's request-id, else the one the event carries (current error events
            # end with "request_id", as the error bodies do)
            said = data.get("request_id") if isinstance(data.get("request_id"), str) else None
            self.error = stream_error(
                as_dict(data.get("error")), self.headers, self.request_id or said
            )

    def response(self) -> ModelResponse:
        text: list[str] = []
        calls: list[ToolCallPart] = []
        reasoning: list[ReasoningPart] = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            kind = block.get("type")
            if kind == "text":
                text.append(str(block.get("text") or ""))
            elif kind == "tool_use" or is_server_block(kind, "_tool_use"):
                arguments = self._calls.arguments(index)
                if not arguments and "input" in block and index in self._stopped:
                    # no fragments, or only empty ones: the call's input is its start's
                    arguments = json_text(block["input"])
                calls.append(
                    ToolCallPart(
                        id=block.get("id"),
                        name=str(block.get("name") or ""),
                        arguments=arguments,
                        extra=server_extra(block, ("id", "name", "input")),
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
        details = dict(self._stop) or None
        return ModelResponse(
            text="".join(text),
            tool_calls=calls,
            refusal=refusal_of(self.finish_reason, details),
            reasoning=reasoning,
            finish_reason=self.finish_reason,
            stop_details=details,
            usage=self._usage,
            response_id=self._id,
            response_model=self._model,
            request_id=self.request_id,
            headers=dict(self.headers),
            raw={k: v for k, v in {"id": self._id, "model": self._model}.items() if v is not None},
        )

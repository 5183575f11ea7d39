"""Responses API answers, whole (``parse_output``) and streamed (``response.*`` events,
:class:`ResponsesStreamParser`), read into a neutral ``ModelResponse``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...log.conversation import ModelResponse, ProviderError, ReasoningPart, ToolCallPart, Usage
from ..base import (
    SSEJsonParser,
    ToolCallAssembly,
    as_dict,
    as_list,
    header_request_id,
    int_or_none,
    is_retryable_status,
    kept_headers,
    shorten,
)
from .requests import reasoning_part

TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def usage(data: Any) -> Usage:
    """Responses usage: ``input_tokens`` (cached and cache-written ones included) with the
    cached and written counts from ``input_tokens_details``, reasoning from the output's."""
    data = as_dict(data)
    details = as_dict(data.get("input_tokens_details"))
    return Usage(
        input_tokens=int_or_none(data.get("input_tokens")),
        output_tokens=int_or_none(data.get("output_tokens")),
        cache_read_tokens=int_or_none(details.get("cached_tokens")),
        cache_write_tokens=int_or_none(details.get("cache_write_tokens")),
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


class ResponsesStreamParser(SSEJsonParser):
    """``response.*`` events; a terminal one (completed, incomplete, failed) ends it."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._calls = ToolCallAssembly()
        self._reasoning: dict[int, dict[str, Any]] = {}
        self._logprobs: list[Any] = []
        self._response: dict[str, Any] = {}
        self.finish_reason: str | None = None
        self._details: dict[str, Any] | None = None

    def _event(self, data: dict[str, Any], text: str, deltas: list[str]) -> None:
        kind = str(data.get("type") or "")
        index = int_or_none(data.get("output_index"))
        if kind in ("response.created", "response.in_progress", *TERMINAL):
            response = as_dict(data.get("response"))
            self._response.update({k: v for k, v in response.items() if v is not None})
            if kind in TERMINAL:
                self.done = True
                # the final response's reasoning items win: their encrypted_content is what a
                # non-streamed answer holds and what the client sends back (each serialisation
                # of an item is encrypted anew, so output_item.done's differs)
                for position, item in enumerate(as_list(response.get("output"))):
                    if as_dict(item).get("type") == "reasoning":
                        self._reasoning_done(position, item)
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
                self._slot(index)
        elif kind == "response.output_item.done":
            item = as_dict(data.get("item"))
            if item.get("type") == "reasoning":
                self._reasoning_done(index, item)
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
            # summary parts, then content parts, each by its own index (as reasoning_part
            # joins them: with a blank line between parts)
            summary = kind == "response.reasoning_summary_text.delta"
            part = int_or_none(data.get("summary_index" if summary else "content_index")) or 0
            key = (0 if summary else 1, part)
            self._slot(index)["parts"].setdefault(key, []).append(str(data.get("delta") or ""))
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

    def _reasoning_done(self, index: int | None, item: dict[str, Any]) -> None:
        slot = self._slot(index)
        if item.get("encrypted_content") or not slot["signature"]:
            slot["signature"] = item.get("encrypted_content")
        whole = reasoning_part(item).content
        if whole:  # the item whole: what a non-streamed answer holds
            slot["parts"] = {(0, 0): [whole]}

    def _slot(self, index: int | None) -> dict[str, Any]:
        """The reasoning item at ``index``: its text parts by (kind, index), its signature."""
        return self._reasoning.setdefault(index or 0, {"parts": {}, "signature": None})

    def response(self) -> ModelResponse:
        response = self._response
        return ModelResponse(
            text="".join(self._text),
            tool_calls=self._calls.parts(),
            refusal="".join(self._refusal) if self._refusal else None,
            reasoning=[
                ReasoningPart(
                    content="\n\n".join(
                        text for _, p in sorted(slot["parts"].items()) if (text := "".join(p))
                    ),
                    signature=slot["signature"],
                )
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

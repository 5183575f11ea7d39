"""Chat Completions answers, whole (``parse_chat_response``) and streamed (SSE chunks,
:class:`ChatStreamParser`), read into a neutral ``ModelResponse``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...log.conversation import ModelResponse, ReasoningPart, ToolCallPart, Usage
from ..base import (
    SSEJsonParser,
    ToolCallAssembly,
    as_dict,
    as_list,
    header_request_id,
    int_or_none,
    kept_headers,
    parse_error,
)
from .requests import call_body, tool_call


def usage(data: Any) -> Usage:
    """OpenAI usage: ``prompt_tokens`` (cached and cache-written ones included) and
    ``completion_tokens`` (reasoning ones included), with the cached, cache-written
    (``cache_write_tokens``, gpt-5.x and OpenRouter) and reasoning counts from the details."""
    data = as_dict(data)
    prompt = as_dict(data.get("prompt_tokens_details"))
    completion = as_dict(data.get("completion_tokens_details"))
    return Usage(
        input_tokens=int_or_none(data.get("prompt_tokens")),
        output_tokens=int_or_none(data.get("completion_tokens")),
        cache_read_tokens=int_or_none(prompt.get("cached_tokens")),
        cache_write_tokens=int_or_none(prompt.get("cache_write_tokens")),
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
        "request_id": header_request_id(headers) or body_request_id(data),
        "headers": kept_headers(headers),
        "logprobs": choice.get("logprobs"),
        "raw": data,
    }


def body_request_id(data: dict[str, Any]) -> str | None:
    """The request id a server puts in the body when no header carries it (Groq's
    ``x_groq.id``, ``req_...``, in a whole answer and a stream's first chunk)."""
    groq = data.get("x_groq")
    value = groq.get("id") if isinstance(groq, dict) else None
    return value if isinstance(value, str) and value else None


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


def filtered(verdict: dict[str, Any] | None) -> bool:
    """Whether an Azure ``content_filter_results`` object filtered anything."""
    return any(isinstance(v, dict) and v.get("filtered") for v in (verdict or {}).values())


class _Choice:
    """One choice of a stream (``n`` > 1 streams interleave them by ``index``), assembled
    from its deltas."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.calls = ToolCallAssembly()
        self.logprobs: dict[str, list[Any]] = {}
        self.finish_reason: str | None = None
        self.stop_details: dict[str, Any] | None = None
        self.content_filter: dict[str, Any] | None = None

    def add(self, choice: dict[str, Any], deltas: list[str] | None) -> None:
        delta = as_dict(choice.get("delta"))
        if "delta" not in choice and isinstance(choice.get("text"), str):
            delta = {"content": choice["text"]}  # legacy /completions chunks
        if isinstance(delta.get("content"), str) and delta["content"]:
            self.text.append(delta["content"])
            if deltas is not None:
                deltas.append(delta["content"])
        if isinstance(delta.get("refusal"), str):
            self.refusal.append(delta["refusal"])
        thinking = reasoning_of(delta)
        if thinking:
            self.reasoning.append(thinking)
        for position, call in enumerate(as_list(delta.get("tool_calls"))):
            if not isinstance(call, dict):
                continue
            key = call.get("index", position)
            function, field = call_body(call)
            self.calls.start(key, id=call.get("id"), name=function.get("name"))
            arguments = function.get(field)
            if isinstance(arguments, str):
                self.calls.add(key, arguments)
        legacy = as_dict(delta.get("function_call"))
        if legacy:
            self.calls.start("function_call", name=legacy.get("name"))
            self.calls.add("function_call", str(legacy.get("arguments") or ""))
        logprobs = as_dict(choice.get("logprobs"))
        for key, tokens in logprobs.items():
            if isinstance(tokens, list):
                self.logprobs.setdefault(key, []).extend(tokens)
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        details = stop_details(choice)
        if details:
            self.stop_details = details
        verdict = choice.get("content_filter_results")
        if isinstance(verdict, dict) and verdict and not filtered(self.content_filter):
            self.content_filter = verdict  # the last verdict, or the first that filtered

    def wire(self, index: int) -> dict[str, Any]:
        """The choice as a whole answer would have it (``choices[]`` of a completion)."""
        text = "".join(self.text)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.calls.parts()
            ]
        wired = {"index": index, "message": message, "finish_reason": self.finish_reason}
        if self.content_filter:
            wired["content_filter_results"] = self.content_filter
        return wired


class ChatStreamParser(SSEJsonParser):
    """``data:`` chunks of ``chat.completion.chunk``; ``[DONE]`` ends the stream.

    The answer is choice 0's; a stream of several choices (``n`` > 1) keeps them all,
    assembled, in ``raw["choices"]``."""

    unit = "chunk"

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers)
        self._choices: dict[int, _Choice] = {0: _Choice()}
        self._usage = Usage()
        self._id: str | None = None
        self._model: str | None = None
        self._extra: dict[str, Any] = {}

    @property
    def finish_reason(self) -> str | None:
        return self._choices[0].finish_reason

    def _done_marker(self) -> None:
        self.done = True

    def _event(self, chunk: dict[str, Any], data: str, deltas: list[str]) -> None:
        if "error" in chunk:
            # the status the error says it stands for (Groq's status_code, Azure's status);
            # the HTTP status is the stream's 200, so 500 when it says none
            said = as_dict(chunk["error"])
            status = int_or_none(said.get("status_code", said.get("status")))
            status = status if status is not None and 400 <= status <= 599 else 500
            self.error = parse_error(status, data, self.headers)
            self.error.request_id = self.error.request_id or self.request_id
            return
        self._chunk(chunk, deltas)

    def _chunk(self, chunk: dict[str, Any], deltas: list[str]) -> None:
        self.request_id = self.request_id or body_request_id(chunk)
        self._id = self._id or chunk.get("id")
        self._model = chunk.get("model") or self._model
        for key in ("system_fingerprint", "service_tier", "prompt_filter_results"):
            if chunk.get(key) is not None:
                self._extra[key] = chunk[key]
        if chunk.get("usage"):
            self._usage = usage(chunk["usage"])
        for choice in as_list(chunk.get("choices")):
            if not isinstance(choice, dict):
                continue
            index = int_or_none(choice.get("index")) or 0
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = _Choice()
            state.add(choice, deltas if index == 0 else None)

    def response(self) -> ModelResponse:
        first = self._choices[0]
        reasoning = "".join(first.reasoning)
        raw: dict[str, Any] = {"id": self._id, "model": self._model, **self._extra}
        if first.content_filter:  # Azure's verdict on the answer (why content_filter stopped it)
            raw["content_filter_results"] = first.content_filter
        if len(self._choices) > 1:
            raw["choices"] = [self._choices[i].wire(i) for i in sorted(self._choices)]
        return ModelResponse(
            text="".join(first.text),
            tool_calls=first.calls.parts(),
            refusal="".join(first.refusal) if first.refusal else None,
            reasoning=[ReasoningPart(content=reasoning)] if reasoning else [],
            finish_reason=first.finish_reason,
            stop_details=first.stop_details,
            usage=self._usage,
            response_id=self._id,
            response_model=self._model,
            request_id=self.request_id,
            headers=dict(self.headers),
            logprobs=dict(first.logprobs) if first.logprobs else None,
            raw={k: v for k, v in raw.items() if v is not None},
        )

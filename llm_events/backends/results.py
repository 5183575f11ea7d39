"""A provider's answer (the adapters' :class:`ModelResponse`) as the seed's ``LLMResult``.

Every field the adapters read survives: text, tool calls, refusal, reasoning, finish reason
and stop details, usage with cache and reasoning tokens, response id, the server-named
model, the provider's request id, the kept headers and logprobs.  Neutral parts become plain
dicts, so ``dataclasses.asdict`` still round-trips a result.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..interface.prompt import LLMResult
from ..interface.streaming import StreamChunk
from ..log.conversation import ModelResponse


def result_details(response: ModelResponse) -> dict[str, Any]:
    """The ``LLMResult`` fields beyond the seed's, from ``response``."""
    usage = response.usage
    return {
        "tool_calls": msgspec.to_builtins(response.tool_calls),
        "refusal": response.refusal,
        "reasoning": msgspec.to_builtins(response.reasoning),
        "finish_reason": response.finish_reason,
        "stop_details": response.stop_details,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "response_id": response.response_id,
        "response_model": response.response_model,
        "request_id": response.request_id,
        "headers": dict(response.headers),
        "logprobs": response.logprobs,
    }


def llm_result(response: ModelResponse) -> LLMResult:
    """A non-streamed answer; ``raw`` is the provider's body as it came."""
    from ..interface.client import attach_details

    result = LLMResult(
        raw=response.raw,
        text=response.text,
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        **result_details(response),
    )
    return attach_details(
        result,
        cached_tokens=response.usage.cache_read_tokens,
        reasoning_tokens=response.usage.reasoning_tokens,
        finish_reason=response.finish_reason,
    )


def final_chunk(response: ModelResponse) -> StreamChunk:
    """The last chunk of a stream: no text (that was handed out already), the usage, the
    finish reason, the model and everything else the stream told."""
    usage = response.usage
    raw = dict(response.raw) if isinstance(response.raw, dict) else {}
    return StreamChunk(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cache_read_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        finish_reason=response.finish_reason,
        model=response.response_model,
        raw=raw,
        details=result_details(response),
    )

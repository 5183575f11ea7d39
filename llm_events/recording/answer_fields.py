"""What an attempt's outcome carries beyond the seed's fields, made storable.

The recorder (:class:`~llm_events.recording.recorder.CallScope`) and nothing else turns
errors and results into event fields here: an error's class and status into retryable or
not, what an error says of the provider's answer (codes, request id, headers, a broken
stream's tool calls and reasoning), a result's tool calls, refusal, reasoning, ids and
headers, each cleaned and redacted (or left out when it cannot be stored).
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..interface.messages import MessageError, normalize_reasoning, normalize_tool_calls
from ..interface.prompt import LLMResult
from ..log.conversation import ReasoningPart, ToolCallPart
from ..log.redaction import Redactor, UnstorableValueError, clean, clean_text
from .prompt_events import as_structs


def exc_message(exc: BaseException) -> str:
    return str(exc) or repr(exc)


def classify(exc: BaseException) -> tuple[bool, int | None]:
    """(retryable, status code) of an error, from the attributes backends set."""
    retryable = getattr(exc, "retryable", None)
    status = getattr(exc, "status_code", None)
    if retryable is None:
        if isinstance(status, int):
            retryable = status in (408, 409, 429) or status >= 500
        else:
            retryable = isinstance(exc, (ConnectionError, TimeoutError))
    return bool(retryable), status if isinstance(status, int) else None


def provider_details(redactor: Redactor, exc: BaseException) -> dict[str, Any]:
    """The provider's error code and type, request id, kept headers, retry-after and a
    broken stream's tool calls and reasoning, as far as the error carries them.

    Read with ``getattr`` from the error, or from a ``provider_error`` it holds (a
    :class:`~llm_events.log.conversation.ProviderError`), so any client's errors work.
    Details that cannot be stored are left out: the failure is recorded regardless.
    """
    sources = [getattr(exc, "provider_error", None), exc]

    def first(*names: str, kind: type | tuple[type, ...] = str) -> Any:
        for src in sources:
            if src is None:
                continue
            for name in names:
                value = getattr(src, name, None)
                if isinstance(value, kind) and not isinstance(value, bool) and value != "":
                    return value
        return None

    out: dict[str, Any] = {}
    code = first("error_code", "code")
    kind = first("provider_error_type", "error_type")
    request_id = first("request_id")
    for key, value in (("error_code", code), ("provider_error_type", kind)):
        if value is not None:
            out[key] = safe_text(redactor, value)
    if request_id is not None:
        out["request_id"] = safe_text(redactor, request_id)
    retry_after = first("retry_after_s", "retry_after", kind=(int, float))
    if retry_after is not None and retry_after == retry_after:  # not NaN
        out["retry_after_s"] = float(retry_after)
    headers = first("headers", kind=dict)
    calls = first("partial_tool_calls", kind=(list, tuple))
    reasoning = first("partial_reasoning", kind=(list, tuple))
    with contextlib.suppress(UnstorableValueError, ValueError, TypeError):
        if headers:
            out["headers"] = {
                str(k).lower(): str(v) for k, v in clean(headers, redactor, "headers").items()
            }
    with contextlib.suppress(UnstorableValueError, ValueError, TypeError):
        if calls:
            out["partial_tool_calls"] = tool_call_parts(redactor, calls, "partial_tool_calls")
    with contextlib.suppress(UnstorableValueError, ValueError, TypeError):
        if reasoning:
            out["partial_reasoning"] = reasoning_parts(redactor, reasoning, "partial_reasoning")
    return out


def tool_call_parts(redactor: Redactor, calls: Any, where: str) -> list[ToolCallPart]:
    return _parts(redactor, normalize_tool_calls, calls, where, list[ToolCallPart])


def reasoning_parts(redactor: Redactor, blocks: Any, where: str) -> list[ReasoningPart]:
    return _parts(redactor, normalize_reasoning, blocks, where, list[ReasoningPart])


def _parts(redactor: Redactor, normalize: Any, value: Any, where: str, type_: Any) -> Any:
    """``value`` in the neutral shape (``normalize``), cleaned, as the event's structs."""
    try:
        neutral = normalize(value, where)
    except MessageError as e:
        raise UnstorableValueError(str(e)) from None
    return as_structs(clean(neutral, redactor, where), type_, where)


def complete_result(redactor: Redactor, result: LLMResult) -> dict[str, Any]:
    """What ``attempt_succeeded`` keeps beyond the seed's fields (only those set): tool
    calls, refusal, reasoning, stop details, cache writes, ids, headers, logprobs."""
    out: dict[str, Any] = {}
    if result.tool_calls:
        out["tool_calls"] = tool_call_parts(redactor, result.tool_calls, "result.tool_calls")
    if result.refusal is not None:
        out["refusal"] = clean_text(str(result.refusal), redactor, "result.refusal")
    if result.reasoning:
        out["reasoning"] = reasoning_parts(redactor, result.reasoning, "result.reasoning")
    if result.stop_details is not None:
        out["stop_details"] = clean(result.stop_details, redactor, "result.stop_details")
    if result.cache_write_tokens is not None:
        out["cache_write_tokens"] = int(result.cache_write_tokens)
    for name in ("response_id", "response_model", "request_id"):
        value = getattr(result, name)
        if value is not None:
            out[name] = clean_text(str(value), redactor, f"result.{name}")
    if result.headers:
        headers = clean(dict(result.headers), redactor, "result.headers")
        out["headers"] = {str(k).lower(): str(v) for k, v in headers.items()}
    if result.logprobs is not None:
        out["logprobs"] = clean(result.logprobs, redactor, "result.logprobs")
    return out


def safe_text(redactor: Redactor, text: str) -> str:
    try:
        return clean_text(text, redactor, "text")
    except UnstorableValueError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

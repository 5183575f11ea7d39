"""Backend errors: what failed, whether retrying could help, and how long the server asks us to wait.

Every HTTP backend turns transport failures and error responses into one of these, so that
the recorder (which reads ``retryable`` and ``status_code``) and ``with_retry`` (which reads
``retry_after``) treat all providers alike.  The rule, as the design fixes it: connection
errors, timeouts, 408, 409, 429 and 5xx are retryable; other 4xx are not.

Messages keep what the server said (its error message and type) and never a request header
or an API key: they are recorded verbatim in ``attempt_failed`` events.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

#: Longest server message kept in an error (the rest is cut, marked with an ellipsis).
MAX_MESSAGE_CHARS = 500


class BackendError(Exception):
    """A request to a model server failed.

    ``status_code`` is the HTTP status (``None`` when no response came back), ``retryable``
    whether the same request may succeed later, ``retry_after`` the server's hint in seconds.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        backend: str = "",
        status_code: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.backend = backend
        self.status_code = status_code
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.error_code = error_code


class RetryableBackendError(BackendError):
    """Base of the errors worth retrying: ``with_retry(exc=RetryableBackendError)``."""

    retryable = True


class BackendConnectionError(RetryableBackendError, ConnectionError):
    """The server could not be reached (refused, DNS, reset before a response)."""


class BackendTimeout(RetryableBackendError, TimeoutError):
    """Connecting, or waiting for the response, took longer than the configured timeout."""


class StreamInterrupted(RetryableBackendError):
    """A streamed answer broke off before its end (the partial text is recorded)."""

    def __init__(self, message: str, *, partial_text: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text


class APIStatusError(BackendError):
    """The server answered with an error status (4xx/5xx) not covered by a subclass."""


class RetryableStatusError(APIStatusError, RetryableBackendError):
    """408 Request Timeout or 409 Conflict: transient by HTTP's own definition."""


class RateLimitError(APIStatusError, RetryableBackendError):
    """429 Too Many Requests."""


class ServerError(APIStatusError, RetryableBackendError):
    """5xx: the server failed or is overloaded."""


class AuthenticationError(APIStatusError):
    """401 or 403: the key is missing, wrong or not allowed to use this model."""


class BadRequestError(APIStatusError):
    """Another 4xx: the request itself is wrong (bad parameter, unknown model, too long)."""


class InvalidResponseError(BackendError):
    """The server answered 2xx with a body we cannot read (malformed JSON, missing fields)."""


def is_retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def status_error_class(status: int) -> type[APIStatusError]:
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    if status in (408, 409):
        return RetryableStatusError
    if status in (401, 403):
        return AuthenticationError
    if 400 <= status < 500:
        return BadRequestError
    return APIStatusError


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def server_message(body: bytes | str) -> tuple[str, str | None]:
    """``(message, error type/code)`` from an error body in any provider's shape.

    OpenAI: ``{"error": {"message", "type", "code"}}``; Anthropic: ``{"type": "error",
    "error": {"type", "message"}}``; Ollama: ``{"error": "..."}``; anything else: the text.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return _shorten(text), None
    if isinstance(data, dict):
        err = data.get("error", data.get("detail"))
        if isinstance(err, dict):
            message = err.get("message") or err.get("msg") or json.dumps(err)
            code = err.get("type") or err.get("code")
            return _shorten(str(message)), None if code is None else str(code)
        if isinstance(err, str):
            return _shorten(err), None
        if isinstance(data.get("message"), str):
            return _shorten(data["message"]), None
    return _shorten(text), None


def error_for_status(
    backend: str, status: int, body: bytes | str, headers: Mapping[str, str]
) -> APIStatusError:
    """The error for an HTTP error response, with the server's own message kept."""
    message, code = server_message(body)
    cls = status_error_class(status)
    detail = f"{message} ({code})" if code else message
    return cls(
        f"{backend}: HTTP {status}: {detail}" if detail else f"{backend}: HTTP {status}",
        backend=backend,
        status_code=status,
        retryable=is_retryable_status(status),
        retry_after=parse_retry_after(headers),
        error_code=code,
    )


def from_foreign(exc: BaseException, backend: str) -> BaseException:
    """Classify an exception raised by a third-party SDK (e.g. through the ``llm`` package).

    SDK errors usually carry ``status_code`` (openai, anthropic) or are connection/timeout
    errors; those become our own classes so retries and records treat them alike.  Anything
    else is returned unchanged.
    """
    if isinstance(exc, BackendError):
        return exc
    status = getattr(exc, "status_code", None)
    message = f"{backend}: {type(exc).__name__}: {exc}"
    if isinstance(status, int):
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        cls = status_error_class(status)
        return cls(
            _shorten(message),
            backend=backend,
            status_code=status,
            retryable=is_retryable_status(status),
            retry_after=parse_retry_after(headers) if isinstance(headers, Mapping) else None,
        )
    name = type(exc).__name__.lower()
    if isinstance(exc, TimeoutError) or "timeout" in name:
        return BackendTimeout(_shorten(message), backend=backend)
    if isinstance(exc, ConnectionError) or "connection" in name:
        return BackendConnectionError(_shorten(message), backend=backend)
    return exc

"""Backend errors: what failed, whether retrying could help, and how long the server asks us to wait.

Every HTTP backend turns transport failures and error responses into one of these, so that
the recorder (which reads ``retryable`` and ``status_code``) and ``with_retry`` (which reads
``retry_after``) treat all providers alike.  The rule, as the design fixes it: connection
errors, timeouts, 408, 409, 429 and 5xx are retryable; other 4xx are not.

Messages keep what the server said (its error message and type) and never a request header
or an API key: they are recorded verbatim in ``attempt_failed`` events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..log.conversation import ModelResponse, ProviderError
from ..providers.base import is_retryable_status, parse_error, parse_retry_after

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
        provider_error: ProviderError | None = None,
    ) -> None:
        super().__init__(message)
        self.backend = backend
        self.status_code = status_code
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        #: the provider's error code (``invalid_api_key``), type (``rate_limit_error``),
        #: request id and kept headers, when it sent them (what ``attempt_failed`` records)
        self.error_code = error_code
        self.provider_error = provider_error
        self.provider_error_type = provider_error.error_type if provider_error else None
        self.request_id = provider_error.request_id if provider_error else None
        self.headers: dict[str, str] = dict(provider_error.headers) if provider_error else {}


class RetryableBackendError(BackendError):
    """Base of the errors worth retrying: ``with_retry(exc=RetryableBackendError)``."""

    retryable = True


class BackendConnectionError(RetryableBackendError, ConnectionError):
    """The server could not be reached (refused, DNS, reset before a response)."""


class BackendTimeout(RetryableBackendError, TimeoutError):
    """Connecting, or waiting for the response, took longer than the configured timeout."""


class StreamInterrupted(RetryableBackendError):
    """A streamed answer broke off before its end (what it had delivered is recorded)."""

    def __init__(self, message: str, *, partial_text: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text


def keep_partial(exc: BackendError, partial: ModelResponse) -> BackendError:
    """Put what a stream delivered before ``exc`` on it: ``partial_text``,
    ``partial_tool_calls`` and ``partial_reasoning`` (neutral dicts), ``partial`` (the whole
    :class:`ModelResponse`), as the recorder reads them."""
    import msgspec

    exc.partial = partial  # type: ignore[attr-defined]
    if partial.text and not getattr(exc, "partial_text", ""):
        exc.partial_text = partial.text  # type: ignore[attr-defined]
    exc.partial_tool_calls = msgspec.to_builtins(partial.tool_calls)  # type: ignore[attr-defined]
    exc.partial_reasoning = msgspec.to_builtins(partial.reasoning)  # type: ignore[attr-defined]
    if not exc.request_id:
        exc.request_id = partial.request_id
    if not exc.headers:
        exc.headers = dict(partial.headers)
    return exc


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


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def error_for_status(
    backend: str, status: int, body: bytes | str, headers: Mapping[str, str]
) -> APIStatusError:
    """The error for an HTTP error response, with the server's own message kept."""
    return error_from_provider(backend, parse_error(status, body, headers))


def error_from_provider(
    backend: str, error: ProviderError, *, what: str | None = None
) -> APIStatusError:
    """Our error class for a provider's error answer, carrying all it said.

    The message is ``backend: HTTP status: message (type or code)``; ``what`` replaces
    ``HTTP status`` (an error reported inside a stream)."""
    status = error.status_code or 500
    cls = status_error_class(status)
    label = error.error_type or error.code
    message = _shorten(error.message)
    detail = f"{message} ({label})" if label and message else (message or label or "")
    where = what or f"HTTP {status}"
    return cls(
        f"{backend}: {where}: {detail}" if detail else f"{backend}: {where}",
        backend=backend,
        status_code=error.status_code,
        retryable=error.retryable,
        retry_after=error.retry_after_s,
        error_code=error.code,
        provider_error=error,
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
        headers = headers if isinstance(headers, Mapping) else {}
        body = getattr(response, "content", None)
        # the SDK's response, read as our adapters read one (code, type, request id)
        details = parse_error(status, body if isinstance(body, bytes) else b"", headers)
        cls = status_error_class(status)
        return cls(
            _shorten(message),
            backend=backend,
            status_code=status,
            retryable=is_retryable_status(status),
            retry_after=parse_retry_after(headers),
            error_code=details.code,
            provider_error=details,
        )
    name = type(exc).__name__.lower()
    if isinstance(exc, TimeoutError) or "timeout" in name:
        return BackendTimeout(_shorten(message), backend=backend)
    if isinstance(exc, ConnectionError) or "connection" in name:
        return BackendConnectionError(_shorten(message), backend=backend)
    return exc

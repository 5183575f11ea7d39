"""The neutral shape of a chat request and of what a provider returned.

One documented JSON shape, modelled on the OpenTelemetry GenAI message schema
(``gen_ai.input.messages``: a role and a list of typed parts), is what events store,
whatever wire format the traffic used.  Provider adapters (``llm_events.providers``)
translate each wire format to and from it; backends, the httpx transport and the proxy
share them.  Plain data, no behaviour, nothing of ours imported: this is log-level.

Parts (``type`` is the tag):

- ``text``: ``content``.
- ``reasoning``: thinking text, its ``signature``, or an opaque ``redacted`` block (``data``).
- ``tool_call``: ``id``, ``name``, ``arguments`` (the JSON text exactly as the provider
  sent it, assembled from stream deltas when streamed).
- ``tool_call_response``: ``id`` of the call it answers, ``response`` (a string or JSON),
  ``is_error``.
- ``blob``: inline bytes (image, audio, file) stored once by ``sha256`` in the store's
  ``blobs`` table; the event holds the media type and size, never the bytes.
- ``uri``: content by reference (an image URL), with its ``modality`` and ``mime_type``.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: Keys of a provider's content block kept on its part as ``extra`` (Anthropic's prompt
#: caching marks and a document's citations, title and context), so that an audit sees them
#: and a replay to the same provider sends them again.
PART_EXTRA_KEYS = ("cache_control", "citations", "title", "context")


class _Part(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    #: provider-specific keys of the block (:data:`PART_EXTRA_KEYS`), sent back as they came
    extra: dict[str, Any] = {}


#: ``extra`` key of a text part that came as a document given as plain text (Anthropic's
#: ``{"type": "document", "source": {"type": "text", ...}}``): its media type, so the part
#: is sent back as that document, with its title and citations, not as a text block.
TEXT_DOCUMENT = "text_document"


def part_extra(block: Any) -> dict[str, Any]:
    """The :data:`PART_EXTRA_KEYS` of a provider's content block (``{}``: none), and for a
    document given as plain text (a text part), :data:`TEXT_DOCUMENT`."""
    if not isinstance(block, dict):
        return {}
    extra = {k: block[k] for k in PART_EXTRA_KEYS if block.get(k) is not None}
    source = block.get("source")
    if (
        block.get("type") == "document"
        and isinstance(source, dict)
        and source.get("type") == "text"
    ):
        extra[TEXT_DOCUMENT] = {"media_type": str(source.get("media_type") or "text/plain")}
    return extra


class TextPart(_Part, tag="text"):
    """Text of a message."""

    content: str


class ReasoningPart(_Part, tag="reasoning"):
    """Model thinking: visible ``content`` (+ ``signature``), or a redacted opaque block."""

    content: str = ""
    signature: str | None = None
    redacted: bool = False
    data: str | None = None


class ToolCallPart(_Part, tag="tool_call"):
    """A function the model asked to call; ``arguments`` is the provider's JSON text."""

    id: str | None = None
    name: str = ""
    arguments: str = ""


class ToolCallResponsePart(_Part, tag="tool_call_response"):
    """The application's answer to a tool call (``id`` matches the call's)."""

    id: str | None = None
    response: Any = None
    is_error: bool = False


class BlobPart(_Part, tag="blob"):
    """Inline content, stored by digest: the bytes live in the ``blobs`` table.

    ``content`` (the bytes, base64) is set only on a request being sent (a ``Prompt``'s
    messages, a ``ChatRequest`` for an adapter); events never hold it: the recorder moves
    the bytes to the ``blobs`` table, keyed by ``sha256``.
    """

    modality: str = "image"
    mime_type: str | None = None
    sha256: str = ""
    size: int = 0
    content: str | None = None


class UriPart(_Part, tag="uri"):
    """Content by reference (e.g. an image URL); ``detail`` is OpenAI's image detail."""

    modality: str = "image"
    uri: str = ""
    mime_type: str | None = None
    detail: str | None = None


Part = TextPart | ReasoningPart | ToolCallPart | ToolCallResponsePart | BlobPart | UriPart


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One turn: ``role`` is system, user, assistant or tool (developer maps to system)."""

    role: str
    parts: list[Part] = []
    name: str | None = None


class ToolDefinition(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A tool offered to the model (``type`` function; ``parameters`` a JSON schema)."""

    name: str
    type: str = "function"
    description: str | None = None
    parameters: Any = None
    #: provider-specific extras of the definition (``strict``, ``cache_control``, ...)
    extra: dict[str, Any] = {}


class Usage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Token counts as the provider reported them (``None`` where it reported none)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A chat request in neutral form: what adapters build wire bodies from (and parse
    wire bodies into, for the proxy and the transport)."""

    model: str | None = None
    messages: list[Message] = []
    tools: list[ToolDefinition] = []
    #: sampling parameters and provider-specific request fields (temperature, max_tokens,
    #: response_format, tool_choice, ...), as the provider names them
    params: dict[str, Any] = {}
    stream: bool = False


class ModelResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Everything a provider returned for one request (complete, or as far as a broken
    stream got).  Adapters fill it; backends turn it into an ``LLMResult``, the proxy into
    an ``attempt_succeeded`` or ``attempt_failed`` event."""

    text: str = ""
    tool_calls: list[ToolCallPart] = []
    refusal: str | None = None
    reasoning: list[ReasoningPart] = []
    finish_reason: str | None = None
    #: the provider's own stop details (Anthropic ``stop_sequence``/``stop_details``, ...)
    stop_details: dict[str, Any] | None = None
    usage: Usage = Usage()
    response_id: str | None = None
    #: the model as the server named it in its answer
    response_model: str | None = None
    request_id: str | None = None
    #: kept response headers: request ids, ``x-ratelimit-*``, ``anthropic-ratelimit-*``,
    #: ``retry-after`` (lower-cased names); never credentials
    headers: dict[str, str] = {}
    logprobs: Any = None
    raw: Any = None


class ProviderError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A provider's error answer, as far as it said: status, its error type and code,
    message, request id, kept headers, and whether a retry could help."""

    status_code: int | None = None
    error_type: str | None = None
    code: str | None = None
    message: str = ""
    request_id: str | None = None
    headers: dict[str, str] = {}
    retryable: bool = False
    retry_after_s: float | None = None
    raw: Any = None

"""The seed's ``Prompt`` and ``LLMResult`` dataclasses, kept compatible.

Both stay plain dataclasses: ``Prompt(**dataclasses.asdict(p))`` round-trips through JSON.
What llm-events adds (the recorded prompt id, the call id of a result) lives in private
instance attributes, never in dataclass fields.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .messages import (
    last_user_text,
    normalize_messages,
    normalize_options,
    normalize_tools,
    user_message,
)

#: Origins that builders give prompts; ``LLMClient.generate`` refuses any other.
BUILDER_ORIGINS = frozenset({"context_builder", "self_coding_engine", "replay"})

_canonical = msgspec.json.Encoder(order="sorted")


@dataclass(init=False)
class Prompt:
    """A prompt: system text, user text, examples (context), tags and metadata, and
    optionally a whole chat request: ``messages`` (earlier turns, tool calls and results,
    images), ``tools`` and provider ``options`` (``response_format``, ``tool_choice``, ...).

    Construct it with :meth:`ContextBuilder.build_prompt`; ``LLMClient.generate`` refuses
    prompts whose ``origin`` no builder gave.  ``text`` is an alias of ``user``, which is
    the last user message's text when there are messages (given ``messages`` that do not
    end with it, ``user`` is appended as the last user message).  Messages and tools are
    normalised to the neutral JSON shape (``docs/conversations.md``); a malformed one
    raises :class:`~llm_events.interface.messages.MessageError` naming it.
    """

    system: str = ""
    user: str = ""
    examples: list[str] = field(default_factory=list)
    vector_confidence: float | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    #: a whole chat request (neutral JSON shape, see ``llm_events.log.conversation``):
    #: messages of typed parts, tool definitions, provider-specific request fields
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        system: str = "",
        user: str = "",
        examples: list[str] | None = None,
        vector_confidence: float | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        origin: str = "",
        messages: list[dict[str, Any]] | None = None,
        tools: list[dict[str, Any]] | None = None,
        options: dict[str, Any] | None = None,
        *,
        text: str | None = None,
        vector_confidences: list[float] | None = None,
        outcome_tags: list[str] | None = None,
    ) -> None:
        self.system = system
        self.user = text if text is not None and not user else user
        self.examples = list(examples) if examples is not None else []
        self.metadata = dict(metadata) if metadata is not None else {}
        if vector_confidences is not None:
            self.metadata.setdefault("vector_confidences", list(vector_confidences))
        if vector_confidence is None:
            vector_confidence = _first_confidence(vector_confidences, self.metadata)
        self.vector_confidence = vector_confidence
        if not tags:
            tags = outcome_tags or self.metadata.get("tags") or self.metadata.get("outcome_tags")
        if isinstance(tags, str):
            tags = [tags]
        self.tags = list(tags) if tags else []
        self.origin = origin or str(self.metadata.get("origin", "") or "")
        self.messages = normalize_messages(messages) if messages else []
        self.tools = normalize_tools(tools) if tools else []
        self.options = normalize_options(options)
        if self.messages:
            last = last_user_text(self.messages)
            if not self.user:
                self.user = last or ""
            elif last != self.user:  # the earlier turns, then this user text
                self.messages.append(user_message(self.user))

    @property
    def text(self) -> str:
        """Alias of ``user``."""
        return self.user

    @text.setter
    def text(self, value: str) -> None:
        self.user = value

    @property
    def vector_confidences(self) -> list[float]:
        confs = self.metadata.get("vector_confidences")
        if isinstance(confs, list):
            return list(confs)
        return [] if self.vector_confidence is None else [self.vector_confidence]

    @property
    def outcome_tags(self) -> list[str]:
        return list(self.tags)

    def __str__(self) -> str:
        return self.user


def _first_confidence(confs: list[float] | None, metadata: dict[str, Any]) -> float | None:
    if confs:
        return float(confs[0])
    value = metadata.get("vector_confidence")
    if value is not None:
        return float(value)
    listed = metadata.get("vector_confidences")
    if isinstance(listed, list) and listed:
        return float(listed[0])
    return None


def prompt_fingerprint(prompt: Prompt) -> str:
    """A stable hash of everything a prompt says (detects a prompt changed after building)."""
    payload = _canonical.encode(
        [
            prompt.system,
            prompt.user,
            prompt.examples,
            prompt.tags,
            prompt.metadata,
            prompt.vector_confidence,
            prompt.origin,
            prompt.messages,
            prompt.tools,
            prompt.options,
        ]
    )
    return hashlib.sha256(payload).hexdigest()[:32]


@dataclass
class LLMResult:
    """What a model answered: the raw response, its text and an optional parsed value."""

    raw: dict[str, Any] | None = None
    text: str = ""
    parsed: Any | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    latency_ms: float | None = None
    # What llm-events adds, all defaulted (neutral shapes of ``llm_events.log.conversation``
    # as plain dicts, so ``dataclasses.asdict`` still round-trips):
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    refusal: str | None = None
    reasoning: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    stop_details: dict[str, Any] | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    response_id: str | None = None
    response_model: str | None = None
    request_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    logprobs: Any = None

    @property
    def call_id(self) -> str | None:
        """The recorded call that produced this result (``None`` if it was not recorded)."""
        return self.__dict__.get("_call_id")

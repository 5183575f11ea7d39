"""``prompt_built`` events: a prompt made storable (cleaned, redacted, inline bytes out).

A prompt is recorded once per store: the event's id and the prompt's fingerprint are kept
on the prompt object, so a client sending a prompt its builder already recorded refers to
that event instead of writing it again (and writes it anew if the prompt changed since).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ..interface.prompt import Prompt, prompt_fingerprint
from ..log import events as ev
from ..log.blobs import Blob, split_blobs
from ..log.conversation import Message, ToolDefinition
from ..log.redaction import Redactor, UnstorableValueError, clean, clean_text
from ..log.store import EventStore
from .config import settings
from .values import check_prompt

_PROMPT_STATE = "_llm_events_recorded"


def as_structs(value: Any, type_: Any, where: str) -> Any:
    """Cleaned plain data as the event's structs (refused, naming ``where``, if it does not fit)."""
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as e:
        raise UnstorableValueError(f"{where}: {e}") from None


def _conversation(
    prompt: Prompt, redactor: Redactor, blobs_out: list[Blob] | None
) -> dict[str, Any]:
    """``messages``, ``tools`` and ``options`` of a ``prompt_built``: redacted, and inline
    bytes replaced by their digest (the bytes go to ``blobs_out`` if stored)."""
    if not (prompt.messages or prompt.tools or prompt.options):
        return {}
    try:
        messages, found = split_blobs(prompt.messages, keep=settings().store_blobs)
    except ValueError as e:
        raise UnstorableValueError(f"prompt.messages: {e}") from None
    if blobs_out is not None:
        blobs_out.extend(found)
    return {
        "messages": as_structs(
            clean(messages, redactor, "prompt.messages"), list[Message], "prompt.messages"
        ),
        "tools": as_structs(
            clean(prompt.tools, redactor, "prompt.tools"), list[ToolDefinition], "prompt.tools"
        ),
        "options": clean(prompt.options, redactor, "prompt.options"),
    }


def prompt_built_event(
    prompt: Prompt,
    redactor: Redactor,
    *,
    builder: str = "",
    context: Sequence[ev.ContextItem] = (),
    blobs_out: list[Blob] | None = None,
) -> ev.PromptBuilt:
    """A ``prompt_built`` event for ``prompt``, cleaned and redacted (raises if unstorable).

    Inline bytes of its messages are appended to ``blobs_out`` (for
    :func:`llm_events.log.blobs.attach`); the event holds their digests.
    """
    check_prompt(prompt)  # typed fields coerced or refused before anything is written
    event_id = ev.new_id()
    system = clean_text(prompt.system or "", redactor, "prompt.system")
    user = clean_text(prompt.user or "", redactor, "prompt.user")
    examples = clean(prompt.examples, redactor, "prompt.examples")
    return ev.PromptBuilt(
        id=event_id,
        ts=ev.now_iso(),
        prompt_id=event_id,
        system=system,
        user=user,
        examples=examples,
        tags=clean(prompt.tags, redactor, "prompt.tags"),
        metadata=clean(prompt.metadata, redactor, "prompt.metadata"),
        vector_confidence=clean(prompt.vector_confidence, redactor, "prompt.vector_confidence"),
        origin=prompt.origin,
        context=_context(context, prompt.examples, examples, redactor) if context else [],
        builder=builder,
        fingerprint=prompt_fingerprint(prompt),
        **_conversation(prompt, redactor, blobs_out),
    )


def _context(
    items: Sequence[ev.ContextItem], raw: list[str], cleaned: list[str], redactor: Redactor
) -> list[ev.ContextItem]:
    """The context items, their texts redacted.  A builder's items are its examples: their
    texts were just cleaned (and checked) as such, so each is redacted once, not twice; an
    item whose text needs no change is kept as it is (the structs are frozen).  Callables
    among the redactor's rules are called for each text, as they may not be pure."""
    done = {} if redactor.callables else dict(zip(raw, cleaned, strict=True))
    out = []
    for c in items:
        text = c.text
        clean_ = done.get(text) if type(text) is str else None
        if clean_ is None:
            clean_ = clean_text(text, redactor, "context")
        if clean_ is text and type(c) is ev.ContextItem:
            out.append(c)
        else:
            out.append(ev.ContextItem(text=clean_, score=c.score, source=c.source))
    return out


def _store_key(store: EventStore) -> str:
    return store.path or f"conn:{id(store)}"


def mark_recorded(prompt: Prompt, event: ev.PromptBuilt, store: EventStore) -> None:
    """Remember on the prompt that ``store`` holds its ``prompt_built`` (private attribute)."""
    state = prompt.__dict__.get(_PROMPT_STATE)
    if state is None or state[1] != event.fingerprint:
        state = (event.prompt_id, event.fingerprint, set())
        prompt.__dict__[_PROMPT_STATE] = state
    state[2].add(_store_key(store))


def recorded_prompt_id(prompt: Prompt, store: EventStore) -> str | None:
    """The prompt id already recorded in ``store`` for this exact prompt content, if any."""
    state = prompt.__dict__.get(_PROMPT_STATE)
    if state is None or _store_key(store) not in state[2]:
        return None
    try:
        if prompt_fingerprint(prompt) != state[1]:
            return None  # changed after it was built: record the prompt as it is now
    except TypeError:
        return None
    return state[0]

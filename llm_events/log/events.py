"""The event vocabulary: immutable msgspec structs in one tagged union.

Events are the only source of truth; every table other than ``events`` is derived from
them.  They are plain data (no behaviour, no I/O) and import nothing else of ours.

Compatibility rules: a field is never repurposed or removed; new fields get defaults; the
``v`` field says which schema version wrote an event.  Unknown event types (written by a
newer version) decode to :class:`UnknownEvent`, which projections skip.
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import UTC
from typing import Any, ClassVar

import msgspec

from .conversation import Message, ReasoningPart, ToolCallPart, ToolDefinition
from .salvage import salvage

#: Version of the event schema this code writes.  Bump when adding fields.
#: 2: ``call_started`` and ``replay_started`` name their process (``host``, ``pid``, ``process``)
#: 3: conversations and complete results: ``prompt_built`` carries ``messages``, ``tools`` and
#:    ``options``; ``call_started`` its ``source``; ``attempt_succeeded`` tool calls, refusal,
#:    reasoning, stop details, cache-write tokens, response/request ids, kept headers and
#:    logprobs; ``attempt_failed`` the provider's error code and type, request id, headers
#:    and what a broken stream had delivered (see :mod:`.conversation`)
EVENT_SCHEMA_VERSION = 3


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """Fields every event has: a time-ordered unique ``id`` and an ISO-8601 UTC ``ts``.

    ``gc=False``: events are immutable trees of plain data that cannot hold a reference
    cycle, so the cycle collector need not track them; rebuilds and batches make millions,
    and tracking them cost a tenth of a rebuild in collections.
    """

    id: str
    ts: str
    v: int = EVENT_SCHEMA_VERSION

    type_name: ClassVar[str] = ""

    @property
    def key(self) -> str | None:
        """The value stored in the ``events.call_id`` column (the call or replay it belongs to)."""
        return getattr(self, "call_id", None) or getattr(self, "replay_id", None)


class ContextItem(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One piece of retrieved context a builder put into a prompt."""

    text: str
    score: float | None = None
    source: str = ""


class PromptBuilt(Event, tag="prompt_built", kw_only=True):
    """A builder made a Prompt.  ``prompt_id`` equals the event ``id``."""

    prompt_id: str
    system: str = ""
    user: str = ""
    examples: list[str] = []
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    vector_confidence: float | None = None
    origin: str = ""
    context: list[ContextItem] = []
    builder: str = ""
    fingerprint: str = ""
    #: the whole chat request, neutral form (schema 3); empty for a seed-style prompt,
    #: whose conversation is system + examples + user
    messages: list[Message] = []
    tools: list[ToolDefinition] = []
    #: provider-specific request fields the caller set (response_format, tool_choice, ...)
    options: dict[str, Any] = {}


class CallStarted(Event, tag="call_started", kw_only=True):
    """A logical call begins: one per ``generate`` (retries and fallbacks nest inside).

    ``host``, ``pid`` and ``process`` name the process that made the call, so that a call
    whose process ended before it finished can be closed as ``Interrupted``.
    """

    call_id: str
    prompt_id: str | None = None
    client: str = ""
    model: str | None = None
    parent_call_id: str | None = None
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    host: str | None = None
    pid: int | None = None
    #: what tells this process from a later one with the same pid (on Linux: boot id, pid
    #: namespace and start time); ``None`` where it cannot be known
    process: str | None = None
    #: where the call came from: application, replay, import, proxy, transport (schema 3;
    #: ``None`` on older events, where projections derive it)
    source: str | None = None


class RouteChosen(Event, tag="route_chosen", kw_only=True):
    """A router picked a backend; ``reason`` is tags / size / confidence / cooldown."""

    call_id: str
    chosen: str
    reason: str
    candidates: list[str] = []
    estimated_tokens: int | None = None


class AttemptStarted(Event, tag="attempt_started", kw_only=True):
    """One request to one backend, written before the request leaves."""

    call_id: str
    attempt: int
    backend: str
    model: str | None = None
    params: dict[str, Any] = {}


class AttemptFailed(Event, tag="attempt_failed", kw_only=True):
    """The request failed; ``retryable`` says whether a retry could help."""

    call_id: str
    attempt: int
    backend: str = ""
    error_type: str
    message: str = ""
    retryable: bool = False
    status_code: int | None = None
    latency_ms: float | None = None
    partial_text: str | None = None
    #: the provider's own error code (``invalid_api_key``) and type (``rate_limit_error``)
    error_code: str | None = None
    provider_error_type: str | None = None
    request_id: str | None = None
    #: kept response headers (request ids, rate limits, retry-after); never credentials
    headers: dict[str, str] = {}
    retry_after_s: float | None = None
    #: what a broken stream had delivered besides text
    partial_tool_calls: list[ToolCallPart] = []
    partial_reasoning: list[ReasoningPart] = []


class RetryScheduled(Event, tag="retry_scheduled", kw_only=True):
    """``with_retry`` will call again after ``delay_s`` seconds."""

    call_id: str
    attempt: int
    delay_s: float
    error_type: str = ""


class FallbackTaken(Event, tag="fallback_taken", kw_only=True):
    """Switching from one backend to another after a failure."""

    call_id: str
    from_backend: str
    to_backend: str
    reason: str = ""


class AttemptSucceeded(Event, tag="attempt_succeeded", kw_only=True):
    """An answer came back.  ``tokens_estimated`` marks counts we estimated ourselves."""

    call_id: str
    attempt: int
    backend: str = ""
    model: str | None = None
    text: str = ""
    parsed: Any = None
    raw: Any = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: cache-read input tokens (the neutral Usage.cache_read_tokens)
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    tokens_estimated: bool = False
    cost: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    finish_reason: str | None = None
    tool_calls: list[ToolCallPart] = []
    refusal: str | None = None
    reasoning: list[ReasoningPart] = []
    #: the provider's stop details (Anthropic ``stop_sequence``, ``stop_details``, ...)
    stop_details: dict[str, Any] | None = None
    cache_write_tokens: int | None = None
    response_id: str | None = None
    #: the model as the server named it in its answer
    response_model: str | None = None
    request_id: str | None = None
    #: kept response headers (request ids, rate limits, retry-after); never credentials
    headers: dict[str, str] = {}
    logprobs: Any = None


class CallFinished(Event, tag="call_finished", kw_only=True):
    """The logical call ends with status ``ok`` or ``error``."""

    call_id: str
    status: str
    attempts: int = 0
    backend: str | None = None
    model: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    latency_ms: float | None = None


class ReplayStarted(Event, tag="replay_started", kw_only=True):
    """A replay run begins (or is resumed).

    ``host``, ``pid`` and ``process`` name the process running it, as on ``call_started``:
    a run whose process ended without ``replay_finished`` is closed as ``interrupted``.
    """

    replay_id: str
    against: str = ""
    compare: str = ""
    selection: dict[str, Any] = {}
    total: int | None = None
    compare_spec: str = ""
    threshold: float | None = None
    resumed: bool = False
    host: str | None = None
    pid: int | None = None
    process: str | None = None


class ReplayCompared(Event, tag="replay_compared", kw_only=True):
    """One recorded call was re-run and compared; verdict is same / changed / error."""

    replay_id: str
    source_call_id: str
    replay_call_id: str | None = None
    verdict: str
    score: float | None = None
    diff: str = ""
    reason: str = ""
    compare: str = ""
    latency_delta_ms: float | None = None
    input_tokens_delta: int | None = None
    output_tokens_delta: int | None = None
    cost_delta: float | None = None


class ReplayFinished(Event, tag="replay_finished", kw_only=True):
    """A replay run ends (``status`` completed or interrupted) with counts per verdict."""

    replay_id: str
    status: str = "completed"
    counts: dict[str, int] = {}
    total: int = 0


class UnknownEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event whose type this version does not know (written by a newer version)."""

    type: str
    id: str
    ts: str
    payload: dict[str, Any] = {}

    @property
    def key(self) -> str | None:
        return self.payload.get("call_id") or self.payload.get("replay_id")


EVENT_TYPES: tuple[type[Event], ...] = (
    PromptBuilt,
    CallStarted,
    RouteChosen,
    AttemptStarted,
    AttemptFailed,
    RetryScheduled,
    FallbackTaken,
    AttemptSucceeded,
    CallFinished,
    ReplayStarted,
    ReplayCompared,
    ReplayFinished,
)

#: tag -> struct class, for the types this version knows.
EVENT_CLASSES: dict[str, type[Event]] = {cls.__struct_config__.tag: cls for cls in EVENT_TYPES}
for _tag, _cls in EVENT_CLASSES.items():
    _cls.type_name = _tag

AnyEvent = (
    PromptBuilt
    | CallStarted
    | RouteChosen
    | AttemptStarted
    | AttemptFailed
    | RetryScheduled
    | FallbackTaken
    | AttemptSucceeded
    | CallFinished
    | ReplayStarted
    | ReplayCompared
    | ReplayFinished
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)
_loose_decoder = msgspec.json.Decoder(dict[str, Any])


def encode(event: Event) -> bytes:
    """Encode an event (with its ``type`` tag) to JSON bytes."""
    return _encoder.encode(event)


def decode(data: bytes | str, type_: str | None = None) -> Event | UnknownEvent:
    """Decode JSON into its event struct; an unknown ``type`` gives an :class:`UnknownEvent`."""
    if type_ is not None and type_ not in EVENT_CLASSES:
        return _unknown(data)
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as error:
        loose = _loose_decoder.decode(data)
        cls = EVENT_CLASSES.get(loose.get("type")) if isinstance(loose, dict) else None
        # a stored event that does not match its schema is read, not fatal (see salvage)
        repaired = None if cls is None else salvage(loose, cls, error)
        return repaired if repaired is not None else _unknown(data)


def _unknown(data: bytes | str) -> UnknownEvent:
    loose = _loose_decoder.decode(data)
    if not isinstance(loose, dict):
        loose = {"value": loose}
    return UnknownEvent(
        type=str(loose.get("type", "")),
        id=str(loose.get("id", "")),
        ts=str(loose.get("ts", "")),
        payload=loose,
    )


def answered_call_events(
    *,
    prompt_id: str,
    ts: str,
    client: str,
    backend: str,
    model: str | None,
    success: dict[str, Any],
    call_id: str | None = None,
) -> list[Event]:
    """The events of a call answered at once, with no request of ours to record
    (``PromptDB.log``, imported histories): started, one attempt that succeeded, finished.

    ``success`` holds the :class:`AttemptSucceeded` fields (text, parsed,
    raw, tokens, cost, latency_ms), already cleaned.
    """
    call_id = call_id or new_id()
    common = {"ts": ts, "call_id": call_id}
    return [
        CallStarted(id=new_id(), prompt_id=prompt_id, client=client, model=model, **common),
        AttemptStarted(id=new_id(), attempt=1, backend=backend, model=model, **common),
        AttemptSucceeded(id=new_id(), attempt=1, backend=backend, model=model, **success, **common),
        CallFinished(
            id=new_id(),
            status="ok",
            attempts=1,
            backend=backend,
            model=model,
            latency_ms=success.get("latency_ms"),
            **common,
        ),
    ]


# --- ids and timestamps -------------------------------------------------------------------

_id_lock = threading.Lock()
_last_ms = 0
_counter = 0
#: The random part of ids: seeded from os.urandom, and again in a forked child (two
#: processes must not share a sequence).  Ids need uniqueness, not secrecy, and one
#: ``getrandbits`` costs a tenth of an ``os.urandom`` system call.
_rng = random.Random()
os.register_at_fork(after_in_child=_rng.seed)


def new_id() -> str:
    """A UUIDv7 string: time-ordered (millisecond prefix, then a per-process counter)."""
    global _last_ms, _counter
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:
                ms += 1
                _counter = 0
        else:
            _counter = _rng.getrandbits(10)
        _last_ms = ms
        counter = _counter
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | _rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: (whole second, its formatted date and time): events come many to a second.
_second_cache: tuple[int, str] = (-1, "")


def now_iso(t: float | None = None) -> str:
    """ISO-8601 UTC with microseconds and a ``Z``: sorts as text, reads in Datasette."""
    global _second_cache
    if t is None:
        t = time.time()
    secs = int(t)
    micros = int(round((t - secs) * 1_000_000))
    if micros >= 1_000_000:
        secs, micros = secs + 1, micros - 1_000_000
    cached_secs, prefix = _second_cache
    if cached_secs != secs:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _second_cache = (secs, prefix)
    return f"{prefix}.{micros:06d}Z"


def parse_iso(ts: str) -> float:
    """Seconds since the epoch for a timestamp written by :func:`now_iso` (or any ISO form)."""
    from datetime import datetime

    dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()

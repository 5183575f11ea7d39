"""Checking events that come in from outside (JSONL ``import``, ``import --from-llm``).

What an import writes is as permanent as what the recorder writes, so it passes the same
gate: secrets masked (the configured redactor), values JSON can hold and read back (depth,
NaN, lone surrogates refused), every field of the type its schema says (strictly: a
``"12"`` token count is refused, not guessed), and what projections read in range (a
non-empty ``id``, an ISO-8601 ``ts``, a known ``status``, counts in 0..2**63-1).

Fields this version does not know (an event of a newer schema, ``v`` above ours) are kept:
the stored payload is the incoming JSON, cleaned, not a re-encoding of our struct.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..log import events as ev
from ..log.redaction import MASK, Redactor, UnstorableValueError, clean

#: Values of the fields that projections group and count by.
STATUSES = frozenset({"ok", "error", "interrupted"})
VERDICTS = frozenset({"same", "changed", "error"})
RUN_STATUSES = frozenset({"completed", "interrupted"})
_INT_MAX = 2**63 - 1
#: Integer fields that may be negative (differences between two calls).
_SIGNED = frozenset({"input_tokens_delta", "output_tokens_delta", "v", "pid"})

_encoder = msgspec.json.Encoder()


class Rejected(ValueError):
    """An incoming event cannot be stored; the message says why."""


def parse_line(line: str | bytes) -> Any:
    """One JSON value, or :class:`Rejected` (bad JSON, nesting too deep to read)."""
    try:
        return msgspec.json.decode(line)
    except msgspec.DecodeError as e:
        raise Rejected(f"not JSON ({e})") from None
    except RecursionError:
        raise Rejected("nested too deeply to be read") from None


def check(loose: Any, redactor: Redactor) -> tuple[ev.Event, bytes]:
    """``(event, payload)`` for an incoming event dict, or :class:`Rejected`."""
    if not isinstance(loose, dict):
        raise Rejected(f"not an event object but a JSON {type(loose).__name__}")
    type_ = loose.get("type")
    cls = ev.EVENT_CLASSES.get(type_) if isinstance(type_, str) else None
    if cls is None:
        raise Rejected(
            f"unknown event type {type_!r} (written by a newer llm-events? upgrade to import it)"
        )
    event_id = loose.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise Rejected(f"its id is {event_id!r}: every event needs a non-empty id")
    ts = loose.get("ts")
    try:
        if not isinstance(ts, str):
            raise ValueError
        ev.parse_iso(ts)
    except (ValueError, OverflowError):
        raise Rejected(f"event {event_id}: ts {ts!r} is not an ISO-8601 timestamp") from None
    try:
        # field by field, as the recorder cleans them: the same depth limit applies
        cleaned = {
            k: MASK
            if isinstance(v, str) and redactor.sensitive_keys and redactor.sensitive_keys.match(k)
            else clean(v, redactor, f"event {event_id}: {k}")
            for k, v in loose.items()
        }
    except UnstorableValueError as e:
        raise Rejected(str(e)) from None
    except RecursionError:
        raise Rejected(f"event {event_id} is nested too deeply to be stored") from None
    try:
        event = msgspec.convert(cleaned, cls)
    except msgspec.ValidationError as e:
        raise Rejected(f"event {event_id} ({type_}): {e}") from None
    _check_values(event)
    return event, _encoder.encode(cleaned)


def check_event(event: ev.Event, redactor: Redactor) -> tuple[ev.Event, bytes]:
    """:func:`check` for an event we built (the ``llm`` importer): redacted, validated."""
    return check(msgspec.to_builtins(event), redactor)


def _check_values(event: ev.Event) -> None:
    """What projections read must be in range: counts, statuses, verdicts."""
    for name in event.__struct_fields__:
        value = getattr(event, name)
        if type(value) is int and not (
            (-_INT_MAX - 1 if name in _SIGNED else 0) <= value <= _INT_MAX
        ):
            raise Rejected(f"event {event.id}: {name} is {value}, out of range")
    if isinstance(event, ev.CallFinished) and event.status not in STATUSES:
        raise Rejected(
            f"event {event.id}: status {event.status!r} is not one of {', '.join(sorted(STATUSES))}"
        )
    if isinstance(event, ev.ReplayCompared) and event.verdict not in VERDICTS:
        raise Rejected(f"event {event.id}: verdict {event.verdict!r} is not known")
    if isinstance(event, ev.ReplayFinished):
        if event.status not in RUN_STATUSES:
            raise Rejected(f"event {event.id}: status {event.status!r} is not known")
        for k, n in event.counts.items():
            if not 0 <= n <= _INT_MAX:
                raise Rejected(f"event {event.id}: counts[{k!r}] is {n}, out of range")
    attempt = getattr(event, "attempt", None)
    if isinstance(attempt, int) and attempt < 1 and not isinstance(event, ev.RetryScheduled):
        raise Rejected(f"event {event.id}: attempt {attempt} (attempts count from 1)")


def same_content(stored: str | bytes, incoming: bytes) -> bool:
    """Whether a stored payload and an incoming one say the same (as JSON values)."""
    try:
        return msgspec.json.decode(stored) == msgspec.json.decode(incoming)
    except (msgspec.DecodeError, RecursionError):
        return False

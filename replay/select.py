"""Selection: which recorded calls a replay re-runs, streamed from the ``calls`` projection.

The filters become one SQL query over ``calls`` read in keyset-paged chunks (ordered by
``started_at, call_id``), so memory stays bounded however large the store.  A seeded
``sample`` keeps only a reservoir of ``sample`` light rows.  ``max_seq`` pins the selection
to the events that existed when a replay started, so ``--resume`` sees the same calls (and
never the replay's own calls, which are excluded unless asked for).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

from llm_events import EventStore
from llm_events.log.queries import CallFilter, QueryError, parse_time


class SelectionError(ValueError):
    """The selection cannot be run as given (a bad time, an unknown call id)."""


#: The statuses a call ends (or is left) in; ``None`` selects them all.
STATUSES = (None, "ok", "error", "running")


@dataclass(frozen=True)
class Selection:
    """Filters over recorded calls.  Every field left at its default matches everything but
    ``status``: by default only the calls that were answered (``ok``) are replayed, since a
    call that failed when recorded has no answer to compare with (it would count as changed
    whenever the candidate answers).  ``status=None`` selects every call."""

    model: str | None = None
    backend: str | None = None
    tags: tuple[str, ...] = ()
    status: str | None = "ok"
    since: str | None = None
    until: str | None = None
    ids: tuple[str, ...] = ()
    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    include_replays: bool = False
    max_seq: int | None = None
    chunk: int = field(default=2000, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "since", normalize_time(self.since, "since"))
        object.__setattr__(self, "until", normalize_time(self.until, "until"))
        if self.status == "all":  # the CLI's spelling of every status
            object.__setattr__(self, "status", None)
        if self.status not in STATUSES:
            raise SelectionError(
                f"status must be one of ok, error, running or all (or None), not {self.status!r}"
            )
        for name in ("limit", "sample"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SelectionError(f"{name} must be 0 or more, not {value}")

    def to_dict(self) -> dict[str, Any]:
        """The non-default filters, as recorded on ``replay_started`` (for ``--resume``)."""
        out = {}
        for f in fields(self):
            if f.name == "chunk":
                continue
            value = getattr(self, f.name)
            if f.name == "status":
                out["status"] = value  # always: see from_dict
            elif value != f.default and value not in ((), None):
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        """The selection a ``replay_started`` recorded.  ``status`` is always recorded since
        its default became ``ok``; a run recorded before that, without it, selected every
        status, and a resumed one still does."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("status", None)
        return cls(**values)

    def pinned(self, max_seq: int) -> Selection:
        return self if self.max_seq is not None else replace(self, max_seq=max_seq)

    def describe(self) -> str:
        """One line for messages: ``model=x, tag=y`` or ``all recorded calls``."""
        parts = [
            f"{k}={v}"
            for k, v in self.to_dict().items()
            if k not in ("max_seq", "seed") and v is not None
        ]
        return ", ".join(parts) or "all recorded calls"


@dataclass(frozen=True, slots=True)
class SourceCall:
    """One selected call: just what the runner needs before loading its prompt."""

    call_id: str
    prompt_id: str | None
    status: str | None
    backend: str | None
    model: str | None
    started_at: str | None
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None


_COLUMNS = (
    "call_id, prompt_id, status, backend, model, started_at, latency_ms, "
    "input_tokens, output_tokens, cost"
)


def normalize_time(value: str | None, name: str = "time") -> str | None:
    """An ISO-8601 UTC string comparable with recorded ``ts`` values.

    The same reading as ``llm-events calls --since``: ISO dates and times (local time unless
    they carry ``Z`` or an offset) and durations back from now (``30m``, ``2h``, ``7d``, ``1w``).
    """
    if value is None or value == "":
        return None
    try:
        return parse_time(str(value))
    except QueryError as e:
        raise SelectionError(f"bad --{name}: {e}") from None  # as `llm-events calls` says


def _where(sel: Selection, exclude_replay_id: str | None) -> tuple[list[str], list[Any]]:
    """SQL conditions over ``calls``: the listing filters ``llm-events calls`` applies, then
    the replay's own (pinned ``max_seq``, explicit ids, replays' calls left out)."""
    listing = CallFilter(
        since=sel.since,
        until=sel.until,
        model=sel.model,
        backend=sel.backend,
        # calls named by id are replayed whatever their status (the default ok is for
        # selections by filter)
        status=None if sel.ids else sel.status,
        tags=list(sel.tags),
    )
    base, args = listing.where("calls")
    where = [base]
    if sel.max_seq is not None:
        where.append("first_seq <= ?")
        args.append(sel.max_seq)
    if sel.ids:
        where.append(f"call_id IN ({','.join('?' * len(sel.ids))})")
        args.extend(sel.ids)
    elif not sel.include_replays:
        # calls a replay made carry the tag "replay:<id>"; replaying them again is noise
        where.append("(tags IS NULL OR tags NOT LIKE '%\"replay:%')")
    if exclude_replay_id is not None:
        where.append(
            "NOT EXISTS (SELECT 1 FROM replay_results r "
            "WHERE r.replay_id = ? AND r.source_call_id = calls.call_id)"
        )
        args.append(exclude_replay_id)
    return where, args


def check_ids(store: EventStore, sel: Selection) -> None:
    """Refuse explicit ids that name no recorded call (a typo must not pass a CI gate)."""
    store.catch_up()  # ``calls`` follows the log: select from what was just recorded
    conn = store.conn()
    for call_id in sel.ids:
        if conn.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone() is None:
            raise SelectionError(f"no recorded call {call_id!r} in {store.path or 'the store'}")


def _stream(
    store: EventStore, sel: Selection, exclude_replay_id: str | None
) -> Iterator[SourceCall]:
    where, args = _where(sel, exclude_replay_id)
    store.catch_up()  # ``calls`` follows the log: select from what was just recorded
    conn = store.conn()
    base = " AND ".join(where) if where else "1"
    # calls with no call_started event have no start time: take them first, they get skipped
    for row in conn.execute(
        f"SELECT {_COLUMNS} FROM calls WHERE started_at IS NULL AND {base} ORDER BY call_id", args
    ).fetchall():
        yield SourceCall(*row)
    sql = (
        f"SELECT {_COLUMNS} FROM calls WHERE {base} AND (started_at, call_id) > (?, ?) "
        "ORDER BY started_at, call_id LIMIT ?"
    )
    last: tuple[str, str] = ("", "")
    while True:
        rows = conn.execute(sql, (*args, *last, sel.chunk)).fetchall()
        for row in rows:
            yield SourceCall(*row)
        if len(rows) < sel.chunk:
            return
        last = (rows[-1][5], rows[-1][0])


def select_calls(
    store: EventStore, sel: Selection | None = None, *, exclude_replay_id: str | None = None
) -> Iterator[SourceCall]:
    """The selected calls in recorded order (a seeded sample keeps that order too).

    ``exclude_replay_id`` drops calls already compared in that replay (``--resume``); the
    sample and the limit are taken before that, so a resumed run works on the same calls.
    """
    sel = sel or Selection()
    if sel.sample is None and sel.limit is None:
        yield from _stream(store, sel, exclude_replay_id)
        return
    picked: Iterator[SourceCall] = _stream(store, sel, None)
    if sel.sample is not None:
        picked = iter(_reservoir(picked, sel.sample, sel.seed))
    if sel.limit is not None:
        picked = (c for i, c in zip(range(sel.limit), picked, strict=False))
    if exclude_replay_id is None:
        yield from picked
        return
    conn = store.conn()
    for call in picked:
        done = conn.execute(
            "SELECT 1 FROM replay_results WHERE replay_id = ? AND source_call_id = ?",
            (exclude_replay_id, call.call_id),
        ).fetchone()
        if done is None:
            yield call


def count_calls(
    store: EventStore, sel: Selection | None = None, *, exclude_replay_id: str | None = None
) -> int:
    """How many calls :func:`select_calls` yields (for ``replay_started.total``, the bar)."""
    sel = sel or Selection()
    if sel.sample is not None or (sel.limit is not None and exclude_replay_id is not None):
        return sum(1 for _ in select_calls(store, sel, exclude_replay_id=exclude_replay_id))
    where, args = _where(sel, exclude_replay_id)
    base = " AND ".join(where) if where else "1"
    store.catch_up()
    n = store.conn().execute(f"SELECT count(*) FROM calls WHERE {base}", args).fetchone()[0]
    return n if sel.limit is None else min(n, sel.limit)


def _reservoir(items: Iterator[SourceCall], k: int, seed: int) -> list[SourceCall]:
    """A uniform seeded sample of ``k`` items (Algorithm R), returned in stream order."""
    rng = random.Random(seed)
    kept: list[tuple[int, SourceCall]] = []
    for i, item in enumerate(items):
        if i < k:
            kept.append((i, item))
        else:
            j = rng.randint(0, i)
            if j < k:
                kept[j] = (i, item)
    kept.sort(key=lambda p: p[0])
    return [item for _, item in kept]


def selection_from(value: Selection | dict[str, Any] | None) -> Selection:
    """Accept a :class:`Selection`, a dict of its fields, or ``None`` (everything)."""
    if value is None:
        return Selection()
    if isinstance(value, Selection):
        return value
    if isinstance(value, dict):
        known = {f.name for f in fields(Selection)}
        unknown = set(value) - known
        if unknown:
            raise SelectionError(
                f"unknown selection key {', '.join(sorted(unknown))}; known: "
                f"{', '.join(sorted(known - {'chunk'}))}"
            )
        return Selection(**value)
    raise SelectionError(f"select must be a Selection or a dict, not {type(value).__name__}")


__all__ = [
    "Selection",
    "SelectionError",
    "SourceCall",
    "check_ids",
    "count_calls",
    "normalize_time",
    "select_calls",
    "selection_from",
]

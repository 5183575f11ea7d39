"""What every projection shares: the base class, batched writes, small caches, previews."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from .. import binding as _binding  # noqa: F401 - registers the NULL adapter
from .. import events as ev
from .. import salvage

_json = msgspec.json.Encoder()

PREVIEW_CHARS = 200
_CACHE_MAX = 20_000


class PromptFields(
    msgspec.Struct, frozen=True, kw_only=True, tag="prompt_built", tag_field="type", gc=False
):
    """The fields of a ``prompt_built`` event that projections read, typed as there.

    Catching up decodes prompts into this instead of :class:`~..events.PromptBuilt`: a
    prompt's context, messages and tools are most of its bytes and no table holds them, so
    skipping them (msgspec does not build what a struct does not name) halves the cost of
    decoding the largest event of every call.
    """

    id: str
    ts: str
    prompt_id: str
    system: str = ""
    user: str = ""
    examples: list[str] = []
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    vector_confidence: float | None = None
    builder: str = ""


#: The event types that belong to a call (each has a ``call_id``).
CALL_TYPES = frozenset(
    cls.type_name for cls in ev.EVENT_TYPES if "call_id" in cls.__struct_fields__
)

#: What a projection may be given for a ``prompt_built`` event.
PROMPT_TYPES = (ev.PromptBuilt, PromptFields)


def dumps(value: Any) -> str:
    return _json.encode(value).decode()


def _preview(text: str | None) -> str | None:
    if text is None:
        return None
    if len(text) > PREVIEW_CHARS + 1:
        # A long text whose first PREVIEW_CHARS + 1 characters need no change and do not end
        # in a space: collapsing the whitespace after them keeps them, and the preview is
        # their first PREVIEW_CHARS - 1 and an ellipsis (without scanning 800 characters).
        head = text[: PREVIEW_CHARS + 1]
        if head[-1] != " " and head[0] != " " and "  " not in head and head.isprintable():
            return head[: PREVIEW_CHARS - 1] + "…"
    text = text[: 4 * PREVIEW_CHARS]
    # whitespace runs become one space; a text with none (no newline, tab or other
    # non-printable space, no double or edge space) is already what that gives
    if not text.isprintable() or "  " in text or text[:1] == " " or text[-1:] == " ":
        text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


class _Cache(dict):
    """A small insertion-ordered cache: bounded memory during rebuilds of huge stores."""

    def put(self, key: str, value: Any) -> None:
        if len(self) >= _CACHE_MAX:
            for old in list(self)[: _CACHE_MAX // 4]:
                del self[old]
        self[key] = value


class Projection:
    name: str = ""
    version: int = 1
    tables: tuple[str, ...] = ()
    #: the event types :meth:`apply` reads (``None``: every type); catching up decodes and
    #: passes a projection only these
    types: frozenset[str] | None = None
    #: the checkpoint this process last left the projection at (``None``: unknown); its
    #: caches are valid only while the stored checkpoint is still this (see ``catchup``)
    applied_upto: int | None = None

    def create(self, conn: sqlite3.Connection) -> None:
        raise NotImplementedError

    def drop(self, conn: sqlite3.Connection) -> None:
        for table in self.tables:
            conn.execute(f"DROP TABLE IF EXISTS [{table}]")

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        raise NotImplementedError

    def reset_caches(self) -> None:
        """Forget cached state (called before a rebuild)."""

    def pending(self) -> bool:
        """True when :meth:`apply` left work for later (see :meth:`settle`)."""
        return False

    def settle(self, conn: sqlite3.Connection, limit: int | None = None) -> bool:
        """Do the work :meth:`apply` left for later (at most ``limit`` rows of it), inside
        the caller's write transaction; returns True when some is left.

        The store calls it at flush, close and exit, once appends pause, and at the end of
        a rebuild (in transactions of ``limit`` rows, so writers wait little).
        """
        return False

    def bulk(self, on: bool) -> None:
        """A rebuild begins (``on``) or ends: leave to :meth:`settle` what batches it best."""


_INT_RANGE = range(-(2**63), 2**63)


def executemany(
    conn: sqlite3.Connection, sql: str, rows: Sequence[tuple], report: bool = True
) -> bool:
    """``conn.executemany``; a count past SQLite's 64-bit integers (an event written with
    ``2**70`` tokens) is stored as NULL instead of stopping the projection.  Returns True
    when one was (reported unless ``report`` is False: the caller reports it)."""
    try:
        conn.executemany(sql, rows)
        return False
    except OverflowError:
        if report:
            report_clipped()
        conn.executemany(sql, [clip(row) for row in rows])
        return True


def report_clipped() -> None:
    salvage.report("", "a count past 2**63-1 was projected as NULL")


def clip(row: tuple) -> tuple:
    """``row`` with each integer SQLite cannot hold as NULL."""
    return tuple(None if type(v) is int and v not in _INT_RANGE else v for v in row)  # noqa: E721


def _load_prompt(
    conn: sqlite3.Connection, cache: _Cache, prompt_id: str | None, before_seq: int
) -> Any:
    """The ``prompt_built`` event ``prompt_id`` if the log has it before ``before_seq``.

    Never one written later: a fold reads only the log up to the event it folds, so catching
    up between two appends gives what a rebuild gives (a prompt recorded after its call is
    in neither row).  The cache holds only events already folded, all earlier.
    """
    if not prompt_id:
        return None
    hit = cache.get(prompt_id)
    if hit is not None:
        return hit
    row = conn.execute(
        "SELECT payload FROM events WHERE id = ? AND type = 'prompt_built' AND seq < ?",
        (prompt_id, before_seq),
    ).fetchone()
    if row is None:
        return None
    prompt = ev.decode(row[0], "prompt_built")
    cache.put(prompt_id, prompt)
    return prompt

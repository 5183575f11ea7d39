"""The hash chain: each event's ``hash`` covers its content and the previous row's hash.

:func:`verify` recomputes it from one consistent snapshot of the file (a read transaction),
so appends made while it runs are neither half-seen nor mistaken for removed events.  It
names the first altered, removed or reordered row, checks that ``_meta.head`` matches the
last row, that the append-only triggers are there, and (``expect_head``) that the log still
extends a head recorded earlier elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Callable
from typing import NamedTuple

from .schema import GENESIS, TRIGGERS


class VerifyResult(NamedTuple):
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str
    #: ``seq:hash`` of the last event checked (keep it elsewhere; ``--expect-head`` checks it)
    head: str = ""
    #: append-only triggers that are not in the file
    missing_triggers: tuple[str, ...] = ()


def row_hash(
    prev_hash: str, seq: int, id_: str, type_: str, key: str | None, ts: str, payload: str | bytes
) -> str:
    """The chain hash of one row: its content plus the previous row's hash.

    ``payload`` may be the stored text or its UTF-8 bytes (appends pass the bytes the
    encoder made, sparing a re-encode): both give the same hash.
    """
    if isinstance(payload, bytes):
        return hashlib.sha256(
            f"{prev_hash}\x1f{seq}\x1f{id_}\x1f{type_}\x1f{key or ''}\x1f{ts}\x1f".encode()
            + payload
        ).hexdigest()
    h = hashlib.sha256(
        f"{prev_hash}\x1f{seq}\x1f{id_}\x1f{type_}\x1f{key or ''}\x1f{ts}\x1f".encode()
    )
    h.update(payload.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def parse_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` -> ``(seq, hash)``; ValueError with a clear message otherwise."""
    seq, sep, h = text.strip().partition(":")
    if not sep or not seq.isdigit() or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise ValueError(f"expected head as SEQ:HASH (e.g. 25:3fa9...), got {text!r}")
    return int(seq), h


def verify(
    conn: sqlite3.Connection,
    progress: Callable[[int], None] | None = None,
    expect_head: str | None = None,
) -> VerifyResult:
    """Recompute the chain in one read transaction; see the module docstring."""
    expected = parse_head(expect_head) if expect_head else None
    conn.execute("BEGIN")  # one snapshot for the rows, the head and the triggers
    try:
        result = _verify(conn, progress, expected)
        return result if not result.ok else _check_pages(conn, result)
    except sqlite3.DatabaseError as e:  # a page of the events table that does not read
        if not is_damage(e):
            raise
        return VerifyResult(
            False, 0, None, f"the file is damaged: {e} (SQLite could not read the events)"
        )
    finally:
        try:
            conn.execute("COMMIT")  # a read transaction: nothing to lose
        except sqlite3.DatabaseError:  # on a damaged file, COMMIT says so again
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.DatabaseError):
                    conn.execute("ROLLBACK")


def is_damage(e: sqlite3.DatabaseError) -> bool:
    """SQLite's own words for a file whose pages do not read as a database."""
    return "malformed" in str(e) or "not a database" in str(e)


def _check_pages(conn: sqlite3.Connection, chained: VerifyResult) -> VerifyResult:
    """``PRAGMA quick_check`` over the whole file: a chain that verifies says nothing of
    the indexes and projections beside it, and a damaged page there fails the next append
    (about a third more than verifying the chain costs)."""
    try:
        problems = [r[0] for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as e:
        if not is_damage(e):
            raise
        problems = [str(e)]
    if problems == ["ok"]:
        return chained
    first = problems[0].replace("*** in database main ***", "").strip().splitlines()[0]
    return VerifyResult(
        False,
        chained.checked,
        None,
        f"the file is damaged: {first} (SQLite's quick_check; the events themselves verified)",
        chained.head,
    )


def _verify(
    conn: sqlite3.Connection,
    progress: Callable[[int], None] | None,
    expected: tuple[int, str] | None,
) -> VerifyResult:
    prev = GENESIS
    expected_seq = 1
    checked = 0
    last = 0
    extends = expected is None or expected[0] == 0
    while True:
        rows = conn.execute(
            "SELECT seq, id, type, call_id, ts, payload, prev_hash, hash FROM events "
            "WHERE seq > ? ORDER BY seq LIMIT 5000",
            (last,),
        ).fetchall()
        for seq, id_, type_, key, ts, payload, prev_hash, h in rows:
            head = f"{checked}:{prev}" if checked else ""
            if seq != expected_seq:
                return VerifyResult(
                    False, checked, expected_seq, f"event seq {expected_seq} is missing", head
                )
            if prev_hash != prev:
                return VerifyResult(
                    False,
                    checked,
                    seq,
                    f"event seq {seq} does not follow seq {seq - 1} "
                    "(an event before it was removed, reordered or altered)",
                    head,
                )
            if row_hash(prev, seq, id_, type_, key, ts, payload) != h:
                return VerifyResult(
                    False, checked, seq, f"event seq {seq} was altered after it was written", head
                )
            prev = h
            expected_seq += 1
            checked += 1
            if expected is not None and seq == expected[0]:
                extends = h == expected[1]
        if progress is not None and rows:
            progress(len(rows))
        if len(rows) < 5000:
            break
        last = rows[-1][0]
    head = f"{checked}:{prev}"
    stored = conn.execute("SELECT value FROM _meta WHERE key = 'head'").fetchone()
    if stored is not None:
        head_seq, _, head_hash = stored[0].partition(":")
        if int(head_seq) != checked or head_hash != prev:
            first = checked + 1 if int(head_seq) > checked else int(head_seq)
            return VerifyResult(
                False,
                checked,
                first,
                f"the last event written was seq {head_seq}, but the log ends at seq {checked}"
                " (events were removed from the end)"
                if int(head_seq) > checked
                else f"the chain head does not match event seq {checked}",
                head,
            )
    if expected is not None and not extends:
        seq, h = expected
        why = (
            f"the log ends at seq {checked}"
            if seq > checked
            else f"event seq {seq} has hash {_event_hash(conn, seq)}"
        )
        return VerifyResult(
            False,
            checked,
            min(seq, checked + 1),
            f"the log does not extend the expected head {seq}:{h} ({why}): "
            "it was rewritten or truncated since that head was taken",
            head,
        )
    have = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
        )
    }
    missing = tuple(name for name in TRIGGERS if name not in have)
    if missing:
        return VerifyResult(
            False,
            checked,
            None,
            f"the append-only trigger{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} missing: the log is no longer protected "
            "against UPDATE/DELETE",
            head,
            missing,
        )
    return VerifyResult(True, checked, None, "ok", head)


def _event_hash(conn: sqlite3.Connection, seq: int) -> str:
    row = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
    return row[0] if row else "(none)"

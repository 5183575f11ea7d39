"""Import an ``llm`` logs.db (the ``llm`` package's log) as events, so its history can be
browsed and replayed here.

Both layouts are read: the legacy ``responses`` table (llm before 0.36, and kept by later
versions for old rows) and the newer ``turns`` / ``messages`` / ``parts`` tables.  Each
logged response becomes one ordinary call: ``prompt_built``, ``call_started``,
``attempt_started``, ``attempt_succeeded``, ``call_finished``, with backend ``llm`` and the
model llm used.  Event ids are derived from llm's row id and time, so importing the same
file again (or a file that holds the same row in both layouts) adds nothing.

What does not map: earlier turns of a conversation are not part of our Prompt (system, user,
examples); they are kept in the prompt's ``metadata["llm_history"]``, so a replay re-sends
the last user message alone.  Tool calls and attachments are not imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..interface.tokens import estimate_prompt_tokens, estimate_tokens
from ..log import events as ev
from ..log.redaction import MAX_DEPTH, UnstorableValueError
from ..log.store import EventStore
from ..recording.values import amount, count
from .incoming import Rejected, check_event
from .llm_usage import detail_tokens

#: Events appended per transaction.
CHUNK = 5_000
#: Tag on imported calls (replay can select them with it).
IMPORT_TAG = "llm-import"


def stable_id(llm_id: str, kind: str, ms: int) -> str:
    """A UUIDv7-shaped id: ``ms`` as its time prefix, the rest from llm's row id and ``kind``.

    Time-ordered like the ids we mint, and the same on every import of the same row.
    """
    digest = int.from_bytes(hashlib.sha256(f"llm:{llm_id}:{kind}".encode()).digest()[:10], "big")
    counter = digest >> 68 & 0xFFF
    rand = digest & 0x3FFF_FFFF_FFFF_FFFF
    value = (max(ms, 0) << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _epoch(ts: str | None) -> float:
    if not ts:
        return 0.0
    try:
        return ev.parse_iso(ts.replace(" ", "T"))
    except ValueError:
        return 0.0


def _json(text: Any) -> Any:
    """A JSON column's value; its text when it is not JSON or too deep to store."""
    if isinstance(text, bytes):
        text = _text(text, [], "json")
    if not isinstance(text, str) or not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return value if _shallow(value) else text


def _shallow(value: Any, limit: int = MAX_DEPTH - 2) -> bool:
    """Whether ``value`` nests lists and dicts at most ``limit`` deep (no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth >= limit:
                return False
            stack.extend((v, depth + 1) for v in item)
    return True


def _text(value: Any, notes: list[str], name: str) -> str:
    """A text column: BLOBs decoded as UTF-8 (undecodable bytes escaped, and noted)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            notes.append(f"{name} was a BLOB that is not UTF-8: undecodable bytes escaped")
            return value.decode("utf-8", "backslashreplace")
    return value if isinstance(value, str) else str(value)


def _number(value: Any, notes: list[str], name: str, parse: Any) -> Any:
    """A numeric column through :mod:`llm_events.recording.values`; ``None`` (noted) when
    it holds what no conversion makes a number of (``'many'`` tokens)."""
    if value is None:
        return None
    try:
        return parse(value, name)
    except UnstorableValueError:
        notes.append(f"{name} {str(value)[:40]!r} is not a valid number: left out")
        return None


class _Row:
    """One logged llm response, whichever table it came from."""

    def __init__(self, **fields: Any) -> None:
        # llm's columns are loosely typed (SQLite): each is read as what it should hold,
        # and what cannot be is noted in the prompt's metadata (llm_import_notes)
        self.notes: list[str] = []
        notes = self.notes
        self.llm_id: str = _text(fields["llm_id"], notes, "id")
        self.table: str = fields["table"]
        self.model: str = _text(fields.get("model"), notes, "model") or "unknown"
        resolved = fields.get("resolved_model")
        self.resolved_model: str | None = _text(resolved, notes, "resolved_model") or None
        self.system: str = _text(fields.get("system"), notes, "system")
        self.user: str = _text(fields.get("user"), notes, "prompt")
        self.history: list[dict[str, str]] = fields.get("history") or []
        self.response: str = _text(fields.get("response"), notes, "response")
        self.options: Any = _json(fields.get("options_json")) or {}
        self.raw: Any = _json(fields.get("response_json"))
        conversation = fields.get("conversation")
        self.conversation: str | None = _text(conversation, notes, "conversation") or None
        self.input_tokens = _number(fields.get("input_tokens"), notes, "input_tokens", count)
        self.output_tokens = _number(fields.get("output_tokens"), notes, "output_tokens", count)
        self.details: Any = _json(fields.get("token_details"))
        self.duration_ms = _number(fields.get("duration_ms"), notes, "duration_ms", amount)
        when = fields.get("datetime_utc")
        self.started: float = _epoch(when if isinstance(when, str) else None)

    def events(self) -> list[ev.Event]:
        ms = int(self.started * 1000)
        ts = ev.now_iso(self.started)
        end = self.started + (self.duration_ms or 0) / 1000
        done_ts = ev.now_iso(end)
        call_id = stable_id(self.llm_id, "call", ms)
        prompt_id = stable_id(self.llm_id, "prompt", ms)
        model = self.resolved_model or self.model
        metadata: dict[str, Any] = {"llm_id": self.llm_id, "llm_table": self.table}
        if self.conversation:
            metadata["llm_conversation_id"] = self.conversation
        if self.history:
            metadata["llm_history"] = self.history
        if self.notes:
            metadata["llm_import_notes"] = list(self.notes)
        input_tokens, output_tokens, estimated = self.input_tokens, self.output_tokens, False
        if input_tokens is None:
            input_tokens, estimated = estimate_prompt_tokens(self.system, self.user), True
        if output_tokens is None:
            output_tokens, estimated = estimate_tokens(self.response), True
        params = self.options if isinstance(self.options, dict) else {"options": self.options}
        latency = float(self.duration_ms) if self.duration_ms is not None else None
        return [
            ev.PromptBuilt(
                id=prompt_id,
                ts=ts,
                prompt_id=prompt_id,
                system=self.system,
                user=self.user,
                metadata=metadata,
                origin="llm",
                builder="llm_import",
            ),
            ev.CallStarted(
                id=stable_id(self.llm_id, "call_started", ms),
                ts=ts,
                call_id=call_id,
                prompt_id=prompt_id,
                client=f"llm:{self.model}",
                model=self.model,
                tags=[IMPORT_TAG],
                metadata={"llm_id": self.llm_id},
            ),
            ev.AttemptStarted(
                id=stable_id(self.llm_id, "attempt_started", ms),
                ts=ts,
                call_id=call_id,
                attempt=1,
                backend="llm",
                model=self.model,
                params=params,
            ),
            ev.AttemptSucceeded(
                id=stable_id(self.llm_id, "attempt_succeeded", ms),
                ts=done_ts,
                call_id=call_id,
                attempt=1,
                backend="llm",
                model=model,
                text=self.response,
                raw=self.raw,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                **{
                    k: _number(v, self.notes, k, count)
                    for k, v in detail_tokens(self.details).items()
                },
                tokens_estimated=estimated,
                latency_ms=latency,
            ),
            ev.CallFinished(
                id=stable_id(self.llm_id, "call_finished", ms),
                ts=done_ts,
                call_id=call_id,
                status="ok",
                attempts=1,
                backend="llm",
                model=model,
                latency_ms=latency,
            ),
        ]


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The columns of one of ``llm``'s tables (none if it is missing): ``llm`` writes its
    logs with sqlite-utils, so its introspection reads them the way they were made."""
    import sqlite_utils

    return set(sqlite_utils.Database(conn)[table].columns_dict)


def _legacy_rows(conn: sqlite3.Connection) -> Iterator[_Row]:
    cols = _columns(conn, "responses")
    if not cols:
        return
    wanted = [
        "id",
        "model",
        "resolved_model",
        "prompt",
        "system",
        "options_json",
        "response",
        "response_json",
        "conversation_id",
        "duration_ms",
        "datetime_utc",
        "input_tokens",
        "output_tokens",
        "token_details",
    ]
    select = ", ".join(c if c in cols else f"NULL AS {c}" for c in wanted)
    for r in conn.execute(f"SELECT {select} FROM responses ORDER BY datetime_utc, id"):
        row = dict(zip(wanted, r, strict=True))
        yield _Row(
            llm_id=row["id"],
            table="responses",
            model=row["model"],
            resolved_model=row["resolved_model"],
            system=row["system"],
            user=row["prompt"],
            response=row["response"],
            options_json=row["options_json"],
            response_json=row["response_json"],
            conversation=row["conversation_id"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            token_details=row["token_details"],
            duration_ms=row["duration_ms"],
            datetime_utc=row["datetime_utc"],
        )


class _Messages:
    """Reads llm's content-addressed message tree (``messages`` + ``parts``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.has_fragments = bool(_columns(conn, "part_fragments")) and bool(
            _columns(conn, "fragments")
        )

    def message(self, hash_: str | None) -> tuple[str, str | None] | None:
        """``(role, parent_hash)`` of a message."""
        if not hash_:
            return None
        row = self.conn.execute(
            "SELECT role, parent_hash FROM messages WHERE hash = ?", (hash_,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def text(self, hash_: str) -> str:
        """The message's text parts, in order (text borrowed from fragments included)."""
        pieces = []
        for part_id, type_, text in self.conn.execute(
            "SELECT id, type, text FROM parts WHERE message_hash = ? ORDER BY position", (hash_,)
        ):
            if type_ != "text":
                continue
            if text is None and self.has_fragments:
                text = "".join(
                    r[0] or ""
                    for r in self.conn.execute(
                        "SELECT f.content FROM part_fragments pf JOIN fragments f "
                        'ON f.id = pf.fragment_id WHERE pf.part_id = ? ORDER BY pf."order"',
                        (part_id,),
                    )
                )
            pieces.append(text or "")
        return "".join(pieces)

    def chain(self, tip: str | None, stop: str | None = None) -> list[tuple[str, str]]:
        """``[(role, text)]`` from the root (or just after ``stop``) down to ``tip``."""
        out = []
        seen = set()
        current = tip
        while current and current != stop and current not in seen:
            seen.add(current)
            found = self.message(current)
            if found is None:
                break
            role, parent = found
            out.append((role, self.text(current)))
            current = parent
        out.reverse()
        return out


def _turn_rows(conn: sqlite3.Connection) -> Iterator[_Row]:
    cols = _columns(conn, "turns")
    if not cols or not _columns(conn, "messages") or not _columns(conn, "parts"):
        return
    wanted = [
        "id",
        "thread_id",
        "parent_message_hash",
        "tip_message_hash",
        "model",
        "resolved_model",
        "options_json",
        "input_tokens",
        "output_tokens",
        "token_details",
        "duration_ms",
        "datetime_utc",
        "response_json",
    ]
    select = ", ".join(c if c in cols else f"NULL AS {c}" for c in wanted)
    messages = _Messages(conn)
    for r in conn.execute(f"SELECT {select} FROM turns ORDER BY datetime_utc, id"):
        row = dict(zip(wanted, r, strict=True))
        request = messages.chain(row["parent_message_hash"])
        answer = messages.chain(row["tip_message_hash"], stop=row["parent_message_hash"])
        system = "\n\n".join(text for role, text in request if role == "system")
        conversation = [(role, text) for role, text in request if role != "system"]
        user = ""
        if conversation and conversation[-1][0] == "user":
            user = conversation.pop()[1]
        yield _Row(
            llm_id=row["id"],
            table="turns",
            model=row["model"],
            resolved_model=row["resolved_model"],
            system=system,
            user=user,
            history=[{"role": role, "text": text} for role, text in conversation],
            response="".join(text for role, text in answer if role == "assistant"),
            options_json=row["options_json"],
            response_json=row["response_json"],
            conversation=row["thread_id"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            token_details=row["token_details"],
            duration_ms=row["duration_ms"],
            datetime_utc=row["datetime_utc"],
        )


def _open(path: str | os.PathLike[str]) -> sqlite3.Connection:
    target = Path(path)
    if not target.is_file():
        raise ValueError(f"no llm logs.db at {target}")
    try:
        conn = sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True)
        import sqlite_utils

        tables = set(sqlite_utils.Database(conn).table_names())
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{target} is not an SQLite file: {e}") from None
    if "responses" not in tables and "turns" not in tables:
        conn.close()
        raise ValueError(f"{target} is not an llm logs.db (no responses or turns table)")
    return conn


def _new_calls(store: EventStore, batch: list[ev.Event]) -> int:
    ids = list(dict.fromkeys(e.id for e in batch if isinstance(e, ev.CallStarted)))
    if not ids:
        return 0
    found = 0
    conn = store.conn()
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        found += conn.execute(
            f"SELECT count(*) FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk
        ).fetchone()[0]
    return len(ids) - found


def import_llm_logs(
    store: EventStore, path: str | os.PathLike[str], problems: list[str] | None = None
) -> int:
    """Import every response in the llm logs.db at ``path``; returns how many calls were new.

    Idempotent: rows imported before (by id) are skipped.  Every event is redacted and
    checked as a JSONL import's are (:mod:`.incoming`); a row that cannot be stored is
    skipped and described in ``problems``.  Raises ValueError if ``path`` is not an llm
    logs.db.
    """
    from ..recording.config import settings

    redactor = settings().redactor
    conn = _open(path)
    imported = 0
    try:
        batch: list[tuple[ev.Event, bytes]] = []
        for source in (_legacy_rows(conn), _turn_rows(conn)):
            for row in source:
                try:
                    batch.extend(check_event(e, redactor) for e in row.events())
                except Rejected as e:
                    if problems is not None:
                        problems.append(f"llm row {row.llm_id}: {e}")
                    continue
                if len(batch) >= CHUNK:
                    imported += _new_calls(store, [e for e, _ in batch])
                    store.append_encoded(batch, ignore_existing=True)
                    batch = []
        if batch:
            imported += _new_calls(store, [e for e, _ in batch])
            store.append_encoded(batch, ignore_existing=True)
        store.flush()
    finally:
        conn.close()
    return imported

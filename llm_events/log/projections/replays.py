"""``replay_results`` and ``replays``: what replay runs compared, and each run's status."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .. import events as ev
from .. import salvage
from ..versions import VERSIONS
from .base import Projection, dumps, executemany

REPLAY_COLUMNS = (
    "replay_id",
    "source_call_id",
    "replay_call_id",
    "verdict",
    "score",
    "diff",
    "reason",
    "compare",
    "latency_delta_ms",
    "input_tokens_delta",
    "output_tokens_delta",
    "cost_delta",
    "ts",
)


class ReplayResultsProjection(Projection):
    """``replay_results``: one row per compared call of a replay run."""

    name = "replay_results"
    version = VERSIONS["replay_results"]
    tables = ("replay_results",)
    types = frozenset({"replay_compared"})

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS replay_results (
                id INTEGER PRIMARY KEY,
                replay_id TEXT NOT NULL,
                source_call_id TEXT NOT NULL,
                replay_call_id TEXT,
                verdict TEXT NOT NULL,
                score REAL,
                diff TEXT,
                reason TEXT,
                compare TEXT,
                latency_delta_ms REAL,
                input_tokens_delta INTEGER,
                output_tokens_delta INTEGER,
                cost_delta REAL,
                ts TEXT,
                UNIQUE (replay_id, source_call_id)
            )"""
        )
        conn.execute(
            "CREATE INDEX IF NOT EXISTS replay_results_verdict ON replay_results(replay_id, verdict)"
        )

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        rows = [
            tuple(getattr(e, c) for c in REPLAY_COLUMNS)
            for _seq, e in batch
            if isinstance(e, ev.ReplayCompared)
        ]
        if rows:
            executemany(
                conn,
                f"INSERT OR REPLACE INTO replay_results ({','.join(REPLAY_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(REPLAY_COLUMNS))})",
                rows,
            )


class ReplaysProjection(Projection):
    """``replays``: one row per replay run, its status and counts per verdict.

    A resumed run keeps its first ``started_at`` and ``total``; ``status`` is ``running``
    until a ``replay_finished`` (a run killed mid-way stays ``running``).
    """

    name = "replays"
    version = VERSIONS["replays"]
    tables = ("replays",)
    types = frozenset({"replay_started", "replay_finished"})

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS replays (
                replay_id TEXT PRIMARY KEY,
                started_at TEXT,
                finished_at TEXT,
                status TEXT,
                against TEXT,
                compare TEXT,
                selection TEXT,
                total INTEGER,
                same INTEGER,
                changed INTEGER,
                error INTEGER,
                skipped INTEGER,
                resumes INTEGER NOT NULL DEFAULT 0
            )"""
        )
        conn.execute("CREATE INDEX IF NOT EXISTS replays_started ON replays(started_at)")

    def apply(self, conn: sqlite3.Connection, batch: Sequence[tuple[int, Any]]) -> None:
        for _seq, e in batch:
            try:
                self._apply_one(conn, e)
            except (OverflowError, TypeError, ValueError) as err:  # one bad event never stops it
                salvage.report(e.id, f"not projected into replays: {err!r}")

    @staticmethod
    def _apply_one(conn: sqlite3.Connection, e: Any) -> None:
        if isinstance(e, ev.ReplayStarted):
            conn.execute(
                "INSERT INTO replays (replay_id, started_at, status, against, compare, "
                "selection, total) VALUES (?,?,?,?,?,?,?) ON CONFLICT(replay_id) DO UPDATE "
                "SET status = 'running', finished_at = NULL, resumes = resumes + 1",
                (
                    e.replay_id,
                    e.ts,
                    "running",
                    e.against,
                    e.compare,
                    dumps(e.selection),
                    e.total,
                ),
            )
        elif isinstance(e, ev.ReplayFinished):
            c = e.counts
            conn.execute(
                "UPDATE replays SET finished_at = ?, status = ?, same = ?, changed = ?, "
                "error = ?, skipped = ? WHERE replay_id = ?",
                (
                    e.ts,
                    e.status,
                    c.get("same"),
                    c.get("changed"),
                    c.get("error"),
                    c.get("skipped"),
                    e.replay_id,
                ),
            )

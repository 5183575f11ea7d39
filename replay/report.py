"""The report of a replay run, and its three renderings: terminal table, JSON, Markdown.

Outcomes are written to the store as ``replay_compared`` events as they arrive; the report
keeps only the skipped calls in memory and reads counts, deltas, the worst diffs and the
per-call results back from the ``replay_results`` projection.  So a report covers the whole
replay (a resumed one included) and memory stays bounded however many calls ran.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from llm_events import EventStore
from llm_events.log import events as ev

from .rerun import Outcome, fill_deltas
from .select import Selection

VERDICTS = ("same", "changed", "error")
#: Skipped calls kept with their reason (more are counted, not listed).
SKIPPED_LISTED = 1000
WORST_SHOWN = 10


@dataclass(frozen=True)
class CallResult:
    """One compared call, as recorded in ``replay_results``."""

    source_call_id: str
    replay_call_id: str | None
    verdict: str
    score: float | None
    diff: str
    reason: str
    latency_delta_ms: float | None
    input_tokens_delta: int | None
    output_tokens_delta: int | None
    cost_delta: float | None


_RESULT_COLUMNS = (
    "source_call_id, replay_call_id, verdict, score, diff, reason, latency_delta_ms, "
    "input_tokens_delta, output_tokens_delta, cost_delta"
)


@dataclass
class ReplayReport:
    """What a replay did.  ``counts`` has keys same / changed / error; ``skipped`` lists
    ``(call_id, reason)`` for calls that could not be replayed.  ``status`` is ``completed``,
    ``interrupted``, ``failed`` or ``empty`` (nothing matched; no events were written)."""

    store: EventStore = field(repr=False)
    replay_id: str
    against: str
    compare: str
    selection: Selection
    #: calls the replay selected; ``planned``: those this run set out to do (less on resume)
    total: int
    planned: int = 0
    resumed: bool = False
    status: str = "running"
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    totals: dict[str, float | None] = field(default_factory=dict)

    # --- recording -------------------------------------------------------------------------

    def record(self, outcomes: list[Outcome]) -> None:
        """Append a ``replay_compared`` per compared outcome (one transaction); note skips.

        The store is flushed first so that the replayed calls are projected and their
        deltas are measured as the recorded ones were.
        """
        self.store.flush()
        events = []
        for o in outcomes:
            if o.skipped is not None:
                self.skipped_count += 1
                if len(self.skipped) < SKIPPED_LISTED:
                    self.skipped.append((o.source_call_id, o.skipped))
                continue
            fill_deltas(self.store, o)
            events.append(
                ev.ReplayCompared(
                    id=ev.new_id(),
                    ts=ev.now_iso(),
                    replay_id=self.replay_id,
                    source_call_id=o.source_call_id,
                    replay_call_id=o.replay_call_id,
                    verdict=o.verdict or "error",
                    score=o.score,
                    diff=o.diff,
                    reason=o.reason,
                    compare=self.compare,
                    latency_delta_ms=o.latency_delta_ms,
                    input_tokens_delta=o.input_tokens_delta,
                    output_tokens_delta=o.output_tokens_delta,
                    cost_delta=o.cost_delta,
                )
            )
        self.store.append(events)

    def finish(self, status: str) -> None:
        """Read the totals back and record ``replay_finished`` with the counts."""
        self.status = status
        self.store.flush()
        self.refresh()
        self.store.append(
            [
                ev.ReplayFinished(
                    id=ev.new_id(),
                    ts=ev.now_iso(),
                    replay_id=self.replay_id,
                    status=status,
                    counts={**self.counts, "skipped": self.skipped_count},
                    total=self.total,
                )
            ]
        )
        self.store.flush()

    def refresh(self) -> None:
        """Counts and delta totals of this replay, from ``replay_results``."""
        conn = self.store.conn()
        self.counts = dict.fromkeys(VERDICTS, 0)
        for verdict, n in conn.execute(
            "SELECT verdict, count(*) FROM replay_results WHERE replay_id = ? GROUP BY verdict",
            (self.replay_id,),
        ):
            self.counts[verdict] = n
        row = conn.execute(
            "SELECT sum(latency_delta_ms), avg(latency_delta_ms), sum(input_tokens_delta), "
            "sum(output_tokens_delta), sum(cost_delta) FROM replay_results WHERE replay_id = ?",
            (self.replay_id,),
        ).fetchone()
        keys = ("latency_ms", "latency_ms_avg", "input_tokens", "output_tokens", "cost")
        self.totals = {
            k: (round(v, 6) if isinstance(v, float) else v) for k, v in zip(keys, row, strict=True)
        }

    # --- reading ---------------------------------------------------------------------------

    @property
    def compared(self) -> int:
        return sum(self.counts.values())

    @property
    def failing(self) -> int:
        """Answers that count against ``--max-changed``: changed plus error."""
        return self.counts["changed"] + self.counts["error"]

    def exit_code(self, max_changed: int = 0) -> int:
        """0 when changed + error answers are within ``max_changed``, else 1."""
        return 0 if self.failing <= max_changed else 1

    def iter_results(self) -> Iterator[CallResult]:
        """Every compared call of this replay, in the order they were compared (streamed)."""
        if self.status == "empty":
            return
        last = 0
        conn = self.store.conn()
        while True:
            rows = conn.execute(
                f"SELECT id, {_RESULT_COLUMNS} FROM replay_results "
                "WHERE replay_id = ? AND id > ? ORDER BY id LIMIT 1000",
                (self.replay_id, last),
            ).fetchall()
            for row in rows:
                yield CallResult(*row[1:])
            if len(rows) < 1000:
                return
            last = rows[-1][0]

    @property
    def results(self) -> list[CallResult]:
        """Every compared call (see :meth:`iter_results` to stream a large replay)."""
        return list(self.iter_results())

    def result(self, source_call_id: str) -> CallResult | None:
        return next((r for r in self.iter_results() if r.source_call_id == source_call_id), None)

    def worst(self, n: int = WORST_SHOWN) -> list[CallResult]:
        """Errors first, then changed answers by lowest score."""
        if self.status == "empty":
            return []
        rows = self.store.conn().execute(
            f"SELECT {_RESULT_COLUMNS} FROM replay_results WHERE replay_id = ? "
            "AND verdict != 'same' ORDER BY verdict = 'error' DESC, coalesce(score, 0), id "
            "LIMIT ?",
            (self.replay_id, n),
        )
        return [CallResult(*row) for row in rows]

    # --- renderings ------------------------------------------------------------------------

    def to_dict(self, *, results: bool = True) -> dict[str, Any]:
        """The JSON report: counts under ``same`` / ``changed`` / ``error``, then details."""
        out: dict[str, Any] = {
            "replay_id": None if self.status == "empty" else self.replay_id,
            "status": self.status,
            "against": self.against,
            "compare": self.compare,
            "selection": self.selection.to_dict(),
            "total": self.total,
            **self.counts,
            "skipped": self.skipped_count,
            "deltas": self.totals,
            "skipped_calls": [{"call_id": c, "reason": r} for c, r in self.skipped],
        }
        if results:
            out["results"] = [asdict(r) for r in self.iter_results()]
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def headline(self) -> str:
        c = self.counts
        return (
            f"replay {self.replay_id}: {c['same']} same, {c['changed']} changed, "
            f"{c['error']} error, {self.skipped_count} skipped (against {self.against}, "
            f"compare {self.compare})"
        )

    def to_text(self, width: int = 100, *, full: bool = False) -> str:
        """The terminal summary: counts, deltas, the worst differences (each with the
        recorded and the new answer, cut to ``width`` columns unless ``full``), the skips."""
        if self.status == "empty":
            return f"no recorded calls match the selection ({self.selection.describe()})"
        lines = [self.headline(), f"selection: {self.selection.describe()}", ""]
        rows = [("verdict", "calls")] + [(v, str(self.counts[v])) for v in VERDICTS]
        rows.append(("skipped", str(self.skipped_count)))
        lines += [f"  {a:<10} {b:>7}" for a, b in rows]
        lines += ["", *("  " + line for line in self._delta_lines())]
        worst = self.worst()
        if worst:
            lines += ["", "Worst differences:"]
            for r in worst:
                lines += self._difference_lines(r, width, full)
        if self.skipped:
            lines += ["", "Skipped:"]
            lines += [f"  {c}  {reason}" for c, reason in self.skipped[:WORST_SHOWN]]
            if self.skipped_count > WORST_SHOWN:
                lines.append(f"  ... and {self.skipped_count - WORST_SHOWN} more")
        return "\n".join(lines)

    def _difference_lines(self, r: CallResult, width: int, full: bool) -> list[str]:
        score = "-" if r.score is None else f"{r.score:.2f}"
        new = r.replay_call_id or "-"
        head = f"  {r.verdict:<7} {score:>5}  {r.source_call_id} -> {new}"
        out = [head]
        recorded, answer = self._answers(r)
        for label, text in (("reason", r.reason), ("recorded", recorded), ("new", answer)):
            if not text:
                continue
            prefix = f"    {label + ':':<10}"
            one = " ".join(text.split()) if not full else text
            if full:
                body = one.splitlines() or [""]
                out.append(prefix + body[0])
                out += [" " * len(prefix) + line for line in body[1:]]
            else:
                room = max(20, width - len(prefix))
                out.append(prefix + (one if len(one) <= room else one[: room - 1] + "…"))
        return out

    def _answers(self, r: CallResult) -> tuple[str, str]:
        """The recorded answer and the new one (or the new call's error), from the store."""
        conn = self.store.conn()

        def answer(call_id: str | None) -> str:
            if not call_id:
                return ""
            row = conn.execute(
                "SELECT response_text FROM prompts WHERE call_id = ?", (call_id,)
            ).fetchone()
            if row is not None and row[0] is not None:
                return row[0]
            row = conn.execute(
                "SELECT error_type, error_message FROM calls WHERE call_id = ?", (call_id,)
            ).fetchone()
            if row is not None and row[0]:
                return f"{row[0]}: {row[1] or ''}".strip()
            return ""

        return answer(r.source_call_id), answer(r.replay_call_id)

    def _delta_lines(self) -> list[str]:
        t = self.totals

        def fmt(value: float | None, spec: str) -> str:
            return "n/a" if value is None else format(value, spec)

        return [
            f"latency delta: {fmt(t.get('latency_ms_avg'), '+.1f')} ms per call "
            f"({fmt(t.get('latency_ms'), '+.1f')} ms in total)",
            f"token delta: {fmt(t.get('input_tokens'), '+d')} input, "
            f"{fmt(t.get('output_tokens'), '+d')} output",
            "cost delta: "
            + ("n/a (no price known)" if t.get("cost") is None else f"{t['cost']:+.6f} USD"),
        ]

    def to_markdown(self) -> str:
        """A pull-request comment: a verdict table, deltas and the worst diffs."""
        if self.status == "empty":
            return f"### Replay\n\nNo recorded calls match the selection ({self.selection.describe()}).\n"
        c = self.counts
        icon = "✅" if self.failing == 0 else "⚠️"
        out = [
            f"### {icon} Replay `{self.replay_id}`",
            "",
            f"Against `{self.against}`, compared with `{self.compare}`"
            f"{' (interrupted)' if self.status == 'interrupted' else ''}.",
            "",
            "| verdict | calls |",
            "|---|---:|",
            *(f"| {v} | {c[v]} |" for v in VERDICTS),
            f"| skipped | {self.skipped_count} |",
            "",
            *(f"- {line}" for line in self._delta_lines()),
        ]
        worst = self.worst()
        if worst:
            out += ["", "<details><summary>Worst differences</summary>", ""]
            for r in worst:
                score = "" if r.score is None else f" (score {r.score:.2f})"
                out.append(f"**{r.verdict}**{score} `{r.source_call_id}`")
                out.append("")
                out += ["```diff", (r.reason or r.diff).replace("```", "ʼʼʼ"), "```", ""]
            out.append("</details>")
        if self.skipped:
            out += ["", "Skipped:", ""]
            out += [f"- `{cid}`: {reason}" for cid, reason in self.skipped[:WORST_SHOWN]]
        return "\n".join(out) + "\n"

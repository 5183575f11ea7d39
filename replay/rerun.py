"""Re-running one recorded call: rebuild its Prompt, send it, compare the answers.

The Prompt is rebuilt exactly from the call's ``prompt_built`` event (system, user,
examples, vector confidence, tags, metadata, and the whole conversation: messages with their
inline bytes from the ``blobs`` table, tools, options) with origin ``replay``, and sent through the
candidate client's ordinary ``generate`` inside :func:`llm_events.recording.recorder.call_options`, so
the new call is recorded like any other, with ``parent_call_id`` = the recorded call and the
replay id in its tags.  Everything here runs in a worker thread and returns an
:class:`Outcome`; it never raises for a failing client or comparator (that is a verdict).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm_events import EventStore, LLMClient, Prompt, StoreError
from llm_events.interface.messages import message_text, normalize_tool_calls, to_neutral
from llm_events.log import blobs
from llm_events.log import events as ev
from llm_events.recording.recorder import call_options

from .compare import Answer, Comparator, Comparison
from .select import SourceCall


@dataclass(slots=True)
class Outcome:
    """What happened to one selected call: a comparison, or a reason it was skipped."""

    source_call_id: str
    verdict: str | None = None
    replay_call_id: str | None = None
    score: float | None = None
    diff: str = ""
    reason: str = ""
    skipped: str | None = None
    latency_delta_ms: float | None = None
    input_tokens_delta: int | None = None
    output_tokens_delta: int | None = None
    cost_delta: float | None = None
    source: SourceCall | None = None
    #: what the client reported (latency, tokens in, out, cost): used if calls has no row yet
    measured: tuple[Any, ...] | None = None


def replay_tags(replay_id: str) -> list[str]:
    """Tags every call made by replay ``replay_id`` carries (how selections exclude them)."""
    return ["replay", f"replay:{replay_id}"]


class MissingBlobs(LookupError):
    """A recorded prompt's inline bytes are not in the store (``store_blobs=False``)."""


def prompt_from_event(built: ev.PromptBuilt, store: EventStore | None = None) -> Prompt:
    """The Prompt a ``prompt_built`` event describes, marked as made by the replay harness.

    The whole request is rebuilt: messages, tools and options as recorded, with the bytes
    of inline images and files read back from the store's ``blobs`` table (given
    ``store``); :class:`MissingBlobs` if the store does not hold them.
    """
    messages = to_neutral(built.messages)
    if store is not None and messages:
        messages, missing = blobs.with_content(store.conn(), messages)
        if missing:
            raise MissingBlobs(
                f"its inline content sha256 {', '.join(m[:12] + '…' for m in missing)} is "
                "not in the store (recorded with store_blobs=False?)"
            )
    return Prompt(
        system=_own_system(built, messages),
        user=built.user,
        examples=list(built.examples),
        vector_confidence=built.vector_confidence,
        tags=list(built.tags),
        metadata=dict(built.metadata),
        origin="replay",
        messages=messages,
        tools=to_neutral(built.tools),
        options=_own_options(built),
    )


#: Origins of prompts parsed from captured traffic (``llm_events.capture``).
CAPTURED = ("proxy", "transport")


def _own_system(built: ev.PromptBuilt, messages: list[dict[str, Any]]) -> str:
    """The system text the prompt had beside its messages.

    A captured request (proxy, httpx transport) names its system messages' text in
    ``system`` too, for the ``prompts`` table; sent again beside those messages it would
    be said twice, so it is left out when it is only their text.
    """
    systems = [m for m in messages if m.get("role") == "system"]
    if built.origin not in CAPTURED or not built.system or not systems or built.examples:
        return built.system
    said = "\n\n".join(message_text(m) for m in systems)
    return "" if built.system == said else built.system


#: Request fields of a captured request that say how it was sent, not what it asked: the
#: client replaying it chooses them (a streamed capture replayed by ``generate``).
TRANSPORT_OPTIONS = ("stream", "stream_options")


def _own_options(built: ev.PromptBuilt) -> dict[str, Any]:
    if built.origin not in CAPTURED:
        return dict(built.options)
    return {k: v for k, v in built.options.items() if k not in TRANSPORT_OPTIONS}


def recorded_answer(store: EventStore, call_id: str) -> Answer | None:
    """The last answer recorded for a call (``None`` if it never succeeded)."""
    last = None
    for stored in store.iter_events(call_id=call_id, types=["attempt_succeeded"]):
        last = stored.event
    if last is None:
        return None
    return Answer(text=last.text, parsed=last.parsed, tool_calls=to_neutral(last.tool_calls))


def _delta(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else round(new - old, 6)


def _metrics(store: EventStore, call_id: str) -> tuple[Any, ...] | None:
    store.catch_up()  # ``calls`` follows the log: read the call just made
    return (
        store.conn()
        .execute(
            "SELECT latency_ms, input_tokens, output_tokens, cost FROM calls WHERE call_id = ?",
            (call_id,),
        )
        .fetchone()
    )


def _error_text(exc: BaseException) -> str:
    text = " ".join((str(exc) or repr(exc)).split())
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 300 else text[:299] + "…"


class CallRunner:
    """Runs one source call against the candidate client (thread-safe; one per replay)."""

    def __init__(
        self, store: EventStore, client: LLMClient, compare: Comparator, replay_id: str
    ) -> None:
        self.store = store
        self.client = client
        self.compare = compare
        self.replay_id = replay_id

    def skip_reason(self, source: SourceCall) -> str | None:
        if source.status not in ("ok", "error"):
            return f"the recorded call never finished (status {source.status or 'unknown'})"
        if not source.prompt_id:
            return "no prompt_built recorded for this call (recorded before prompts were logged)"
        return None

    def load(self, source: SourceCall) -> tuple[Prompt | None, str | None]:
        """The rebuilt prompt, or ``None`` and why the call cannot be replayed."""
        reason = self.skip_reason(source)
        if reason is not None:
            return None, reason
        stored = self.store.get_event(source.prompt_id or "")
        if stored is None or not isinstance(stored.event, ev.PromptBuilt):
            return None, f"its prompt_built event {source.prompt_id} is missing from the store"
        try:
            return prompt_from_event(stored.event, self.store), None
        except MissingBlobs as e:
            return None, str(e)

    def run(self, source: SourceCall, job: Any = None) -> Outcome:
        """Replay ``source``; ``job.call_ids`` is pointed at the ids the new call records."""
        out = Outcome(source.call_id)
        try:
            prompt, reason = self.load(source)
        except StoreError:
            raise
        except Exception as e:  # an unreadable old event: skipped, never a crash
            prompt, reason = None, f"its prompt cannot be read: {_error_text(e)}"
        if prompt is None:
            out.skipped = reason
            return out
        old = recorded_answer(self.store, source.call_id) if source.status == "ok" else None
        with call_options(
            store=self.store,
            parent_call_id=source.call_id,
            tags=replay_tags(self.replay_id),
            metadata={"replay_id": self.replay_id},
            source="replay",
        ) as opts:
            if job is not None:
                job.call_ids = opts.call_ids
            try:
                result = self.client.generate(prompt, context_builder=None)
            except StoreError:
                raise
            except Exception as e:
                out.replay_call_id = opts.call_ids[0] if opts.call_ids else None
                out.verdict, out.reason = "error", _error_text(e)
                return out
        out.replay_call_id = result.call_id or (opts.call_ids[0] if opts.call_ids else None)
        new = Answer(
            text=result.text if isinstance(result.text, str) else str(result.text),
            parsed=result.parsed,
            tool_calls=normalize_tool_calls(result.tool_calls or []),
        )
        if old is None:
            out.verdict = "changed"
            out.reason = "the recorded call failed; the replay answered"
            out.diff = "+ " + new.text[:300]
        else:
            try:
                cmp = self.compare(old, new)
            except Exception as e:
                cmp = Comparison("error", None, "", f"comparator failed: {_error_text(e)}")
            out.verdict, out.score, out.diff, out.reason = (
                cmp.verdict,
                cmp.score,
                cmp.diff,
                cmp.reason,
            )
        out.source = source
        out.measured = (result.latency_ms, result.input_tokens, result.output_tokens, result.cost)
        return out


def fill_deltas(store: EventStore, out: Outcome) -> None:
    """Latency, token and cost deltas of an answered replay against its recorded call.

    Both sides are read from the ``calls`` projection (the same measure: call latency, the
    priced cost), so the replay's events must be committed first (the runner flushes).
    """
    source = out.source
    if source is None or out.measured is None:
        return
    row = _metrics(store, out.replay_call_id) if out.replay_call_id else None
    latency, tin, tout, cost = row if row is not None else out.measured
    out.latency_delta_ms = _delta(latency, source.latency_ms)
    d_in, d_out = _delta(tin, source.input_tokens), _delta(tout, source.output_tokens)
    out.input_tokens_delta = None if d_in is None else int(d_in)
    out.output_tokens_delta = None if d_out is None else int(d_out)
    out.cost_delta = _delta(cost, source.cost)


def timed_out(source: SourceCall, seconds: float, call_ids: list[str] | None) -> Outcome:
    """The outcome of a call that did not answer within ``--timeout``."""
    return Outcome(
        source.call_id,
        verdict="error",
        replay_call_id=call_ids[0] if call_ids else None,
        reason=f"TimeoutError: no answer within {seconds:g}s (--timeout)",
    )

"""Cassette mode: answer prompts from a recorded store, offline and deterministically.

``RecordedClient(path)`` (client spec ``recorded:PATH``) answers a Prompt with the answer
recorded for the same prompt: matched on a canonical hash of system, user and examples, plus
the model and parameters when the client is given them.  An unseen prompt raises
:class:`CassetteMiss` naming the nearest recorded prompt, so a test fails with a clue.

``RecordingClient(real, path, mode=...)`` wraps a real client like vcrpy wraps HTTP:
``once`` records everything while the cassette is empty and only replays once it holds
calls; ``new`` replays what it has and records what it lacks; ``none`` only replays;
``all`` always records through the real client.  Recordings are ordinary calls in the
cassette store (it is an llm-events store: ``verify``, ``calls`` and Datasette work on it).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from llm_events import EventStore, LLMClient, LLMResult, Prompt, StoreError
from llm_events.interface.messages import to_neutral
from llm_events.log import events as ev
from llm_events.log.blobs import split_blobs
from llm_events.recording.recorder import call_options

MODES = ("once", "new", "none", "all")

_canonical = msgspec.json.Encoder(order="sorted")


def cassette_key(
    system: str,
    user: str,
    examples: list[str],
    model: str | None = None,
    params: Any = None,
    conversation: Any = None,
) -> str:
    """The canonical hash a recorded answer is found by.

    ``model`` and ``params`` both ``None`` gives the prompt-only key (any model's answer);
    otherwise the key also covers the model and its parameters (see :func:`full_key`).
    ``conversation`` (:func:`conversation_of`) adds a chat request's messages, tools and
    options; a prompt without them keeps the key it always had.
    """
    fields: list[Any] = [system or "", user or "", list(examples or [])]
    if conversation:
        fields.append(conversation)
    base = hashlib.sha256(_canonical.encode(fields))
    key = base.hexdigest()
    return key if model is None and params is None else full_key(key, model, params)


def full_key(prompt_only: str, model: str | None, params: Any) -> str:
    """A prompt-only key narrowed to one model and its parameters."""
    return hashlib.sha256(_canonical.encode([prompt_only, model or "", params or {}])).hexdigest()


def conversation_of(messages: Any, tools: Any, options: Any) -> list[Any] | None:
    """What of a chat request a cassette key covers: messages (inline bytes by digest),
    tools and options in neutral form; ``None`` for a prompt without them."""
    if not (messages or tools or options):
        return None
    digests, _ = split_blobs(to_neutral(list(messages)), keep=False)
    return [digests, to_neutral(list(tools)), dict(options or {})]


def event_key(e: ev.PromptBuilt) -> str:
    return cassette_key(
        e.system, e.user, e.examples, conversation=conversation_of(e.messages, e.tools, e.options)
    )


def prompt_key(prompt: Prompt, model: str | None = None, params: Any = None) -> str:
    return cassette_key(
        prompt.system,
        prompt.user,
        prompt.examples,
        model,
        params,
        conversation_of(prompt.messages, prompt.tools, prompt.options),
    )


class CassetteMiss(LookupError):
    """No recorded answer for this prompt (the message names the nearest recorded one)."""


@dataclass(frozen=True, slots=True)
class _Recorded:
    call_id: str
    prompt_id: str


class Cassette:
    """An index from prompt keys to recorded calls in one store, built once, then kept fresh.

    The index holds only keys and ids; answers are read from the store on a hit.
    """

    def __init__(self, path: str | os.PathLike[str] | EventStore, *, create: bool = False) -> None:
        if isinstance(path, EventStore):
            self.store = path
        else:
            target = Path(path)
            if not create and not target.exists():
                raise StoreError(f"no cassette at {target} (record one first with RecordingClient)")
            self.store = EventStore(target)
        self.path = self.store.path or "cassette"
        self._index: dict[str, _Recorded] = {}
        self._last_seq = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        self.refresh()
        return len({r.call_id for r in self._index.values()})

    def refresh(self) -> None:
        """Index calls answered since the last look: prompt-only and model+params keys."""
        with self._lock:
            self.store.flush()
            prompts: dict[str, str] = {}
            started: dict[str, tuple[str | None, str | None, Any]] = {}
            params: dict[str, tuple[str | None, Any]] = {}
            for stored in self.store.iter_events(
                after_seq=self._last_seq,
                types=["prompt_built", "call_started", "attempt_started", "call_finished"],
            ):
                e = stored.event
                self._last_seq = stored.seq
                if isinstance(e, ev.PromptBuilt):
                    prompts[e.prompt_id] = event_key(e)
                elif isinstance(e, ev.CallStarted):
                    started[e.call_id] = (e.prompt_id, e.model, e.metadata.get("cassette_key"))
                elif isinstance(e, ev.AttemptStarted):
                    params.setdefault(e.call_id, (e.model, e.params))
                elif isinstance(e, ev.CallFinished):
                    info = started.pop(e.call_id, None)
                    attempt = params.pop(e.call_id, None)
                    if e.status != "ok" or info is None or not info[0]:
                        continue
                    prompt_id, model, stamped = info
                    base = prompts.get(prompt_id) or self._prompt_key(prompt_id)
                    if base is None:
                        continue
                    rec = _Recorded(e.call_id, prompt_id)
                    self._index[base] = rec
                    a_model, a_params = attempt or (None, {})
                    self._index[full_key(base, model or a_model, a_params)] = rec
                    if isinstance(stamped, str):
                        self._index[stamped] = rec

    def _prompt_key(self, prompt_id: str) -> str | None:
        stored = self.store.get_event(prompt_id)
        if stored is None or not isinstance(stored.event, ev.PromptBuilt):
            return None
        return event_key(stored.event)

    def lookup(self, key: str) -> _Recorded | None:
        hit = self._index.get(key)
        if hit is None:
            self.refresh()
            hit = self._index.get(key)
        return hit

    def answer(self, recorded: _Recorded) -> LLMResult:
        """The recorded answer of a call, as an :class:`LLMResult`."""
        last: ev.AttemptSucceeded | None = None
        for stored in self.store.iter_events(call_id=recorded.call_id, types=["attempt_succeeded"]):
            last = stored.event  # type: ignore[assignment]
        if last is None:
            raise CassetteMiss(f"recorded call {recorded.call_id} in {self.path} has no answer")
        raw = dict(last.raw) if isinstance(last.raw, dict) else {"raw": last.raw}
        raw.update(backend="recorded", model=last.model, recorded_call_id=recorded.call_id)
        return LLMResult(
            raw=raw,
            text=last.text,
            parsed=last.parsed,
            input_tokens=last.input_tokens,
            output_tokens=last.output_tokens,
            tool_calls=to_neutral(last.tool_calls),
            refusal=last.refusal,
            reasoning=to_neutral(last.reasoning),
            finish_reason=last.finish_reason,
            stop_details=last.stop_details,
            cache_read_tokens=last.cached_tokens,
            cache_write_tokens=last.cache_write_tokens,
            reasoning_tokens=last.reasoning_tokens,
            response_id=last.response_id,
            response_model=last.response_model,
            logprobs=last.logprobs,
        )

    def nearest(self, prompt: Prompt, limit: int = 20_000) -> tuple[ev.PromptBuilt, float] | None:
        """The recorded prompt most like ``prompt`` (system and user text), and its similarity."""
        best: tuple[ev.PromptBuilt, float] | None = None
        target = f"{prompt.system}\n{prompt.user}"
        seen = 0
        for stored in self.store.iter_events(types=["prompt_built"]):
            e = stored.event
            if not isinstance(e, ev.PromptBuilt):
                continue
            seen += 1
            if seen > limit:
                break
            m = difflib.SequenceMatcher(None, target, f"{e.system}\n{e.user}", autojunk=False)
            if best is not None and m.real_quick_ratio() <= best[1]:
                continue
            if best is not None and m.quick_ratio() <= best[1]:
                continue
            r = m.ratio()
            if best is None or r > best[1]:
                best = (e, r)
        return best

    def miss(self, prompt: Prompt, detail: str = "") -> CassetteMiss:
        shown = _short(prompt.user)
        near = self.nearest(prompt)
        if near is None:
            hint = "; the cassette holds no prompts"
        else:
            recorded, ratio = near
            hint = (
                f"; nearest recorded prompt: {_short(recorded.user)} (similarity {ratio:.2f}"
                f"{_differences(recorded, prompt)})"
            )
        return CassetteMiss(f"no recorded answer in {self.path} for prompt {shown}{detail}{hint}")


def _differences(recorded: ev.PromptBuilt, prompt: Prompt) -> str:
    """What tells the nearest recorded prompt from this one, when its user text looks alike:
    a similarity below 1 for the same words is the system prompt or the context."""
    diffs = []
    if recorded.system != prompt.system:
        diffs.append(
            f"the system prompt differs: {_short(recorded.system, 40)} recorded, "
            f"{_short(prompt.system, 40)} now"
        )
    if list(recorded.examples) != list(prompt.examples):
        diffs.append(
            f"the examples/context differ: {len(recorded.examples)} recorded, "
            f"{len(prompt.examples)} now"
        )
    if not diffs:
        return (
            "; the same system, user text and examples: the model or parameters differ"
            if recorded.user == prompt.user
            else ""
        )
    same = "same user text, but " if recorded.user == prompt.user else ""
    return f"; {same}{' and '.join(diffs)}"

    def close(self) -> None:
        self.store.close()


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= n else text[: n - 1] + "…")


class RecordedClient(LLMClient):
    """Answers from a cassette store (``recorded:PATH``); unseen prompts raise CassetteMiss.

    With ``model`` / ``params`` given (a :class:`RecordingClient` passes its real client's),
    only answers recorded with the same model and parameters match; otherwise any answer
    recorded for the same system, user and examples does (the latest one).
    """

    backend_name = "recorded"

    def __init__(
        self,
        path: str | os.PathLike[str] | Cassette | None = None,
        *,
        match_model: str | None = None,
        match_params: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if path is None:
            raise ValueError("recorded needs a store path: recorded:PATH")
        self.cassette = path if isinstance(path, Cassette) else Cassette(path)
        super().__init__(str(self.cassette.path), **options)
        self.match_model = match_model
        self.match_params = match_params

    def key(self, prompt: Prompt) -> str:
        if self.match_model is None and self.match_params is None:
            return prompt_key(prompt)
        return prompt_key(prompt, self.match_model or "", self.match_params or {})

    def find(self, prompt: Prompt) -> _Recorded | None:
        return self.cassette.lookup(self.key(prompt))

    def _generate(self, prompt: Prompt, *, context_builder: Any) -> LLMResult:
        hit = self.find(prompt)
        if hit is None:
            detail = "" if self.match_model is None else f" with model {self.match_model!r}"
            raise self.cassette.miss(prompt, detail)
        return self.cassette.answer(hit)


def recorded_backend(model: str | None = None, **options: Any) -> RecordedClient:
    """The ``recorded`` backend factory: ``recorded:PATH``."""
    return RecordedClient(model, **options)


class RecordingClient(LLMClient):
    """Records through a real client into a cassette, and replays from it (vcrpy modes).

    A replayed answer is recorded in the current store like any call (backend ``recorded``);
    a recorded one goes into the cassette store only.
    """

    _records_itself: ClassVar[bool] = True
    backend_name = "recording"

    def __init__(
        self,
        client: LLMClient,
        cassette: str | os.PathLike[str],
        *,
        mode: str = "once",
        **options: Any,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown record mode {mode!r}; use one of {', '.join(MODES)}")
        super().__init__(client.model_label() or client.name, **options)
        self.client = client
        self.mode = mode
        existed = Path(cassette).exists()
        self._cassette = Cassette(cassette, create=True)
        #: ``once`` records only into a cassette that held nothing when it was opened
        self.recording_allowed = mode in ("new", "all") or (
            mode == "once" and (not existed or len(self._cassette) == 0)
        )
        self._replayer = RecordedClient(
            self._cassette,
            match_model=client.model_label() or "",
            match_params=dict(client.params),
            store=options.get("store"),
            on_store_error=options.get("on_store_error"),
        )

    @property
    def name(self) -> str:
        return f"recording({self.client.name})"

    @property
    def cassette(self) -> Cassette:
        return self._cassette

    def generate(
        self,
        prompt: Prompt,
        *,
        context_builder: Any,
        parse_fn: Any = None,
        backend: str | None = None,
    ) -> LLMResult:
        if self.mode != "all" and self._replayer.find(prompt) is not None:
            return self._replayer.generate(
                prompt, context_builder=context_builder, parse_fn=parse_fn
            )
        if not self.recording_allowed:
            raise self._cassette.miss(
                prompt, f" (record mode {self.mode!r} does not record new prompts)"
            )
        key = self._replayer.key(prompt)
        with call_options(store=self._cassette.store, metadata={"cassette_key": key}):
            return self.client.generate(
                prompt, context_builder=context_builder, parse_fn=parse_fn, backend=backend
            )

    def close(self) -> None:
        self._cassette.close()

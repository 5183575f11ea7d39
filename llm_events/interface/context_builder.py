"""``ContextBuilder``: the one sanctioned way to make a Prompt, recorded as ``prompt_built``.

Retrievers are pluggable (anything with ``retrieve(query, top_k)``); the builder merges
their snippets, drops duplicates, ranks them by score, packs them into ``examples`` within a
token budget and sets ``vector_confidence`` to the mean score of what it used.  The snippets
used, with their scores and sources, are recorded on the ``prompt_built`` event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..log import blobs
from ..log.blobs import Blob
from ..log.events import ContextItem
from ..recording.config import settings
from ..recording.prompt_events import mark_recorded, prompt_built_event
from ..recording.store_access import StoreSpec, emit, resolve_store
from .messages import user_message
from .prompt import Prompt
from .tokens import estimate_tokens

_WORD = re.compile(r"[A-Za-z0-9_]+")


@runtime_checkable
class Retriever(Protocol):
    """Finds context for a query: returns items, ``(text, score)`` pairs or strings."""

    def retrieve(
        self, query: str, top_k: int
    ) -> Sequence[ContextItem | tuple[str, float] | str]: ...


_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "our",
        "the",
        "this",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


def _words(text: str) -> set[str]:
    """Lower-cased content words, with a plural ``s`` dropped (refunds ~ refund)."""
    out = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOPWORDS:
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


class KeywordRetriever:
    """A small built-in retriever: scores documents by the share of query words they hold."""

    def __init__(self, documents: Iterable[str] | Mapping[str, str], name: str = "keywords"):
        if isinstance(documents, Mapping):
            self.documents = [(str(k), str(v)) for k, v in documents.items()]
        else:
            self.documents = [(f"{name}:{i}", str(d)) for i, d in enumerate(documents)]
        self._index = [(source, text, _words(text)) for source, text in self.documents]

    def retrieve(self, query: str, top_k: int) -> list[ContextItem]:
        q = _words(query)
        if not q:
            return []
        scored = []
        for source, text, words in self._index:
            overlap = len(q & words)
            if overlap:
                scored.append(
                    ContextItem(text=text, score=round(overlap / len(q), 4), source=source)
                )
        scored.sort(key=lambda c: -(c.score or 0.0))
        return scored[:top_k]


def _as_item(value: Any, source: str) -> ContextItem:
    if isinstance(value, ContextItem):
        return value
    if isinstance(value, str):
        return ContextItem(text=value, score=None, source=source)
    if isinstance(value, tuple) and len(value) == 2:
        return ContextItem(text=str(value[0]), score=float(value[1]), source=source)
    raise TypeError(f"retriever {source} returned {type(value).__name__}; expected ContextItem")


class ContextBuilder:
    """Builds prompts from a query plus retrieved context; records each one it builds."""

    origin = "context_builder"

    def __init__(
        self,
        retrievers: Iterable[Retriever] = (),
        *,
        token_budget: int = 1500,
        system: str = "",
        store: StoreSpec = None,
        on_store_error: str | None = None,
    ) -> None:
        self.retrievers = list(retrievers)
        self.token_budget = token_budget
        self.system = system
        self.store = store
        self.on_store_error = on_store_error

    def retrieve(self, query: str, top_k: int) -> list[ContextItem]:
        """Merged, de-duplicated, ranked snippets from every retriever."""
        best: dict[str, ContextItem] = {}
        for retriever in self.retrievers:
            source = type(retriever).__name__
            for raw in retriever.retrieve(query, top_k):
                item = _as_item(raw, source)
                key = " ".join(item.text.split()).lower()
                if not key:
                    continue
                kept = best.get(key)
                if kept is None or (item.score or 0.0) > (kept.score or 0.0):
                    best[key] = item
        ranked = sorted(best.values(), key=lambda c: -(c.score if c.score is not None else 0.0))
        return ranked[:top_k]

    def pack(self, items: Sequence[ContextItem], budget: int) -> list[ContextItem]:
        """The highest-ranked items that fit within ``budget`` tokens."""
        used, spent = [], 0
        for item in items:
            cost = estimate_tokens(item.text)
            if spent + cost > budget:
                continue
            used.append(item)
            spent += cost
        return used

    def build_prompt(
        self,
        query: str,
        *,
        intent: Any = None,
        error_log: str | None = None,
        top_k: int = 5,
        system: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        history: Sequence[Any] | None = None,
        tools: Sequence[Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> Prompt:
        """Make a Prompt for ``query`` (refused if empty) and record it as ``prompt_built``.

        ``history``: the earlier turns of a conversation (messages as
        ``docs/conversations.md`` describes, any roles, tool calls and results, images);
        the query becomes the last user message after them.  ``tools``: tool definitions
        offered to the model.  ``options``: provider request fields (``response_format``,
        ``tool_choice``, ...).  The retrieved context still goes into ``examples``.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("build_prompt needs a non-empty query")
        budget = self.token_budget - estimate_tokens(query)
        items = self.pack(self.retrieve(query, top_k), max(0, budget)) if top_k > 0 else []
        scores = [c.score for c in items if c.score is not None]
        meta: dict[str, Any] = dict(metadata or {})
        meta.update(extra)
        if intent is not None:
            meta["intent"] = intent
        if error_log:
            meta["error_log"] = error_log
        if scores:
            meta["vector_confidences"] = scores
        prompt = Prompt(
            system=self.system if system is None else system,
            user=query,
            examples=[c.text for c in items],
            vector_confidence=(sum(scores) / len(scores)) if scores else None,
            tags=list(tags or []),
            metadata=meta,
            origin=self.origin,
            messages=[*history, user_message(query)] if history else None,
            tools=tools,
            options=options,
        )
        self.record(prompt, items)
        return prompt

    def record(self, prompt: Prompt, items: Sequence[ContextItem] = ()) -> None:
        """Record ``prompt_built`` for ``prompt`` (refuses unstorable values before writing).

        The event is committed with the first write of the call that sends the prompt (one
        commit fewer per call), or at flush, close or exit if no call sends it.
        """
        policy = self.on_store_error or settings().on_store_error
        found: list[Blob] = []
        event = prompt_built_event(
            prompt, settings().redactor, builder=type(self).__name__, context=items, blobs_out=found
        )
        if not settings().enabled:
            return
        store = resolve_store(self.store, policy)
        if store is None:
            return
        blobs.attach(event.id, found)
        if emit(store, [event], policy, what="prompt_built", defer=True):
            mark_recorded(prompt, event, store)
        else:
            blobs.forget([event.id])

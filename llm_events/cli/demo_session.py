"""A small, realistic, offline session to record: what ``llm-events demo`` runs.

A ContextBuilder over a few product notes; a router over a simulated remote model that
fails now and then (HTTP 503, retryable) and a local model; ``with_retry`` around the calls.
The failure pattern is deterministic, so every run records at least one retry, one fallback
and one failed call.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from ..interface.client import LLMClient
from ..interface.context_builder import ContextBuilder, KeywordRetriever
from ..interface.prompt import LLMResult, Prompt
from ..interface.retry import with_retry
from ..interface.router import LLMRouter
from ..log.store import EventStore
from ..recording.recorder import call_options

NOTES = {
    "notes:billing": "Invoices are issued on the first business day of each month in EUR or USD.",
    "notes:refunds": "Refunds are possible within 30 days; annual plans are refunded pro rata.",
    "notes:sso": "Single sign-on supports SAML 2.0 and OIDC on the Business and Enterprise plans.",
    "notes:limits": "The API allows 600 requests per minute per key; bursts above that get HTTP 429.",
    "notes:export": "Data export produces JSON Lines; large workspaces are exported in parts.",
    "notes:regions": "Customer data lives in one region, the EU (Frankfurt) or the US (Oregon).",
}

QUESTIONS: list[tuple[str, list[str]]] = [
    ("When are invoices issued and in which currency?", []),
    ("Can I get a refund on an annual plan?", ["high_roi"]),
    ("Which single sign-on protocols are supported?", []),
    ("What happens when I exceed the API rate limit per minute?", ["high_roi"]),
    ("How does data export work for large workspaces?", ["low_roi"]),
    ("Where is customer data stored?", []),
    (
        "Summarise our refund and billing policy for the sales team in three bullet points.",
        ["high_roi"],
    ),
    (
        "Translate the SSO note into legal language for a contract appendix.",
        ["high_roi", "blocked"],
    ),
]


class ServiceUnavailable(Exception):
    """What an overloaded HTTP backend raises: 503, worth retrying."""

    status_code = 503
    retryable = True


class ContentRefused(Exception):
    """A non-retryable refusal (as a 400 from a provider would be)."""

    status_code = 400
    retryable = False


def _answer(prompt: Prompt, style: str) -> str:
    context = prompt.examples[0] if prompt.examples else "I have no notes on that."
    return f"[{style}] {context}"


class SimulatedRemote(LLMClient):
    """A remote model whose every third request fails with 503; refuses 'blocked' prompts."""

    backend_name = "remote-sim"

    def __init__(self) -> None:
        super().__init__("large-2025", params={"temperature": 0.2, "max_tokens": 256})
        self.requests = 0

    def _generate(self, prompt: Prompt, *, context_builder: Any) -> LLMResult:
        self.requests += 1
        if "blocked" in prompt.tags:
            raise ContentRefused("request refused by the provider's content policy")
        if self.requests % 3 == 2:
            raise ServiceUnavailable("503 Service Unavailable: the model is overloaded")
        text = _answer(prompt, "large")
        return LLMResult(
            text=text,
            raw={"model": self.model, "finish_reason": "stop"},
            input_tokens=40 + len(prompt.user) // 4,
            output_tokens=len(text) // 4,
            cost=0.00012,
        )


class SimulatedLocal(LLMClient):
    """A local model: always up, shorter answers; refuses 'blocked' prompts too."""

    backend_name = "local-sim"

    def __init__(self) -> None:
        super().__init__("small-q4")

    def _generate(self, prompt: Prompt, *, context_builder: Any) -> LLMResult:
        if "blocked" in prompt.tags:
            raise ContentRefused("the local model refuses this request as well")
        return LLMResult(text=_answer(prompt, "small"))


@dataclass
class DemoReport:
    call_ids: list[str]
    ok: int
    errors: int
    attempts: int
    retries: int
    fallbacks: int
    events: int
    failed_call_id: str | None
    fallback_call_id: str | None
    retry_call_id: str | None


def run_demo(store: EventStore, *, retry_delay: float = 0.05) -> DemoReport:
    """Record the demo session into ``store`` and summarise what was recorded."""
    builder = ContextBuilder(
        [KeywordRetriever(NOTES)], store=store, system="Answer from the notes."
    )
    remote, local = SimulatedRemote(), SimulatedLocal()
    router = LLMRouter(remote, local, size_threshold=60, failure_cooldown=0.0, store=store)
    events_before = store.last_seq()
    with call_options(store=store, tags=["demo"]) as opts:
        for question, tags in QUESTIONS:
            prompt = builder.build_prompt(question, tags=tags, intent="support-answer")
            with contextlib.suppress(ContentRefused):  # the failed call stays recorded
                with_retry(
                    lambda p=prompt: router.generate(p, context_builder=builder),
                    attempts=3,
                    delay=retry_delay,
                    exc=ServiceUnavailable,
                )
        # A direct call to the remote, retried on its 503 (no router to fall back on).
        prompt = builder.build_prompt("Which regions can customer data live in?")
        remote.requests = 1  # its next request is one that fails with 503
        with_retry(
            lambda p=prompt: remote.generate(p, context_builder=builder),
            attempts=3,
            delay=retry_delay,
            exc=ServiceUnavailable,
        )
    placeholders = ",".join("?" * len(opts.call_ids))
    store.catch_up()  # read what was just recorded (projections follow the log)
    rows = (
        store.conn()
        .execute(
            f"SELECT call_id, status, attempts, retries, fallbacks FROM calls "
            f"WHERE call_id IN ({placeholders}) ORDER BY first_seq",
            opts.call_ids,
        )
        .fetchall()
    )

    def first(pred: Any) -> str | None:
        return next((r[0] for r in rows if pred(r)), None)

    return DemoReport(
        call_ids=[r[0] for r in rows],
        ok=sum(1 for r in rows if r[1] == "ok"),
        errors=sum(1 for r in rows if r[1] == "error"),
        attempts=sum(r[2] for r in rows),
        retries=sum(r[3] for r in rows),
        fallbacks=sum(r[4] for r in rows),
        events=store.last_seq() - events_before,
        failed_call_id=first(lambda r: r[1] == "error"),
        fallback_call_id=first(lambda r: r[4] > 0),
        retry_call_id=first(lambda r: r[3] > 0),
    )

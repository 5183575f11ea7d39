"""Credentials a request carries: found in its headers, never recorded, and masked wherever
they come back (an error body quoting the key); and the exchange's redactor that applies
that masking after the recorder's own redaction, remembering what it redacted."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..log.redaction import MASK, Redactor
from .request_head import CREDENTIAL_HEADERS


def secret_scrubber(values: Sequence[str]) -> Any:
    """A ``str -> str`` masking these exact secrets and the masked echo providers send
    back (OpenAI's 401 quotes a key as its first 8 and last 4 characters)."""
    secrets = [v for v in values if len(v) >= 6]
    if not secrets:
        return None
    patterns = []
    for s in secrets:
        patterns.append(re.escape(s))
        if len(s) > 12:
            patterns.append(re.escape(s[:8]) + r"[*.\u2022x]{3,}" + re.escape(s[-4:]))
    rx = re.compile("|".join(patterns))
    # a secret holding another ("Bearer sk-...") is found by the inner one's head
    inner = [s for s in secrets if not any(o != s and o in s for o in secrets)]
    heads = tuple({s[:6] for s in inner})
    if len(heads) == 1:  # the common case (one client key): one substring test per string
        (head,) = heads

        def scrub(text: str) -> str:
            return rx.sub(MASK, text) if head in text else text

        return scrub

    def scrub_any(text: str) -> str:
        for head in heads:
            if head in text:
                return rx.sub(MASK, text)
        return text

    return scrub_any


#: Strings up to this long are remembered with what redaction made of them, across exchanges
#: (model names, roles, JSON keys, system prompts and tool schemas recur in every call)...
MEMO_CHARS = 1024
MEMO_ENTRIES = 4096


class ExchangeRedactor(Redactor):
    """The recorder's redactor, then this request's credential scrubber, each string
    redacted once per exchange: a request's texts appear twice (the conversation in
    ``prompt_built``, the wire body in ``params.body``), and short ones in every call.
    ``memo`` (shared by the recorder's exchanges) remembers the base redactor's answer for
    short strings; longer ones are remembered for this exchange only."""

    def __init__(self, base: Redactor, memo: dict[str, str], scrub: Any = None) -> None:
        self.sensitive_keys = base.sensitive_keys
        self.finder, self.patterns, self.callables = None, [], [base]
        self.base, self.memo, self.scrub = base, memo, scrub
        self.long: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        memo = self.memo if len(text) <= MEMO_CHARS else self.long
        done = memo.get(text)
        if done is None:
            done = self.base(text)
            if len(memo) >= MEMO_ENTRIES:
                memo.clear()
            memo[text] = done
        scrub = self.scrub
        return done if scrub is None else scrub(done)


def credential_values(headers: dict[str, str]) -> list[str]:
    out = []
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value:
            out.append(value)
            scheme, _, rest = value.partition(" ")
            if rest and scheme.lower() in ("bearer", "basic", "token"):
                out.append(rest.strip())
    return out

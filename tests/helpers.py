"""Small clients and functions that tests name as ``tests.helpers:attr`` specs."""

from __future__ import annotations

from llm_events import LLMResult, Prompt


def reverse(prompt: Prompt) -> str:
    return prompt.user[::-1]


def upper_result(prompt: Prompt) -> LLMResult:
    return LLMResult(text=prompt.user.upper())


def read_db(path):  # type: ignore[no-untyped-def]
    """A plain connection for reading a store's tables once every store this process has
    open has brought its projections up to date (they follow the log: llm_events.flush())."""
    import sqlite3

    import llm_events

    llm_events.flush()
    return sqlite3.connect(path)

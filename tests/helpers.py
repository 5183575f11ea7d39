"""Small clients and functions that tests name as ``tests.helpers:attr`` specs."""

from __future__ import annotations

from llm_events import LLMResult, Prompt


def reverse(prompt: Prompt) -> str:
    return prompt.user[::-1]


def upper_result(prompt: Prompt) -> LLMResult:
    return LLMResult(text=prompt.user.upper())

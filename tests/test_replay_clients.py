"""Candidate clients and comparators for the replay tests (importable as module:attr specs).

No tests here: subprocess tests name these as ``tests.test_replay_clients:NAME``.
"""

from __future__ import annotations

import json
import os
import re
import time

from llm_events import LLMResult, Prompt

_NUMBER = re.compile(r"#(\d+)")


def number(prompt: Prompt) -> int:
    """The N of a prompt like 'question #N ...' (recorded by the tests' record_calls)."""
    match = _NUMBER.search(prompt.user)
    return int(match.group(1)) if match else -1


def differs_for_multiples_of_five(prompt: Prompt) -> str:
    """Echo, except for questions #0, #5, #10 ... which get another answer."""
    if number(prompt) % 5 == 0:
        return f"a different answer to {prompt.user}"
    return prompt.user


def faulty(prompt: Prompt) -> object:
    """#1 raises, #2 hangs for 3 s, #3 answers with an int (malformed); others echo."""
    n = number(prompt)
    if n == 1:
        raise RuntimeError("backend exploded")
    if n == 2:
        time.sleep(3)
    if n == 3:
        return 42
    return prompt.user


def json_answers(prompt: Prompt) -> str:
    """JSON with the keys in another order; #4 answers with prose (not JSON)."""
    if number(prompt) == 4:
        return "Sure! Here is the JSON you asked for."
    return json.dumps({"b": 2, "a": number(prompt)})


def slow(prompt: Prompt) -> str:
    """Echo after a pause (REPLAY_TEST_DELAY seconds, default 0.05): for kill tests."""
    time.sleep(float(os.environ.get("REPLAY_TEST_DELAY", "0.05")))
    return prompt.user


def with_tokens(prompt: Prompt) -> LLMResult:
    """Echo with explicit token counts and a cost, for delta tests."""
    return LLMResult(text=prompt.user, input_tokens=10, output_tokens=20, cost=0.5)


def same_length(recorded: str, replayed: str) -> tuple[str, float]:
    """A user comparator: same when the lengths match, score = length ratio."""
    a, b = len(recorded), len(replayed)
    return ("same" if a == b else "changed", min(a, b) / max(a, b, 1))


def broken_comparator(recorded: str, replayed: str) -> object:
    return ["not", "a", "verdict"]


def record_calls(n: int, *, start: int = 0, tags_for=None, client=None) -> list[str]:
    """Record ``n`` answered calls ('question #i ...') with echo; returns their call ids."""
    from llm_events import ContextBuilder, KeywordRetriever, client_from_spec

    builder = ContextBuilder(
        [KeywordRetriever(["notes about every question", "billing notes"])],
        system="You answer briefly.",
    )
    client = client or client_from_spec("echo")
    ids = []
    for i in range(start, start + n):
        prompt = builder.build_prompt(
            f"question #{i} about billing",
            tags=tags_for(i) if tags_for else [],
            metadata={"i": i},
        )
        ids.append(client.generate(prompt, context_builder=builder).call_id)
    return ids


def json_recorded(prompt: Prompt) -> str:
    """What the tests record for the json comparator: keys a, b in that order."""
    return json.dumps({"a": number(prompt), "b": 2})

"""Seed-style clients inside the router, retries and fallback chains (issue 12, item 10)."""

from __future__ import annotations

import json

import pytest

from llm_events import LLMClient, LLMResult, LLMRouter, with_retry
from tests.helpers import read_db


class SeedEcho(LLMClient):
    """The seed's EchoClient: its own ``generate`` with the seed's exact signature."""

    def __init__(self, model: str, fail: bool = False) -> None:
        super().__init__(model)
        self.fail = fail

    def generate(self, prompt, *, context_builder):
        if self.fail:
            raise ConnectionError(f"{self.model} unreachable")
        return LLMResult(text=json.dumps({"echo": prompt.text, "by": self.model}))


def _calls(db):
    conn = read_db(db)
    try:
        return conn.execute("SELECT status, attempts, fallbacks FROM calls").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("role", ["remote", "local"])
def test_seed_style_client_as_remote_or_local(builder, db_path, role):
    seed = SeedEcho(role)
    other = SeedEcho("other")
    router = LLMRouter(seed, other) if role == "remote" else LLMRouter(other, seed)
    tags = ["high_roi"] if role == "remote" else ["low_roi"]
    result = router.generate(
        builder.build_prompt("hi", tags=tags), context_builder=builder, parse_fn=json.loads
    )
    assert result.parsed == {"echo": "hi", "by": role}
    assert _calls(db_path) == [("ok", 1, 0)]


def test_seed_style_clients_fall_back_and_retry(builder, db_path):
    router = LLMRouter(SeedEcho("remote", fail=True), SeedEcho("local"))
    prompt = builder.build_prompt("hi", tags=["high_roi"])
    result = with_retry(
        lambda: router.generate(prompt, context_builder=builder, parse_fn=json.loads),
        attempts=2,
        delay=0,
    )
    assert result.parsed["by"] == "local"
    assert _calls(db_path) == [("ok", 2, 1)]
    chain = LLMClient("chain", backends=[SeedEcho("a", fail=True), SeedEcho("b")])
    assert chain.generate(prompt, context_builder=builder, backend="b").text.endswith('"b"}')


def test_duck_typed_client_gets_only_what_it_takes(builder):
    class Plain:
        name = "plain"

        def generate(self, prompt, *, context_builder):
            return LLMResult(text='{"x": 1}')

    router = LLMRouter(Plain(), Plain())
    out = router.generate(builder.build_prompt("q"), context_builder=builder, parse_fn=json.loads)
    assert out.parsed == {"x": 1}

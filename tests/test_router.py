"""LLMRouter's choice rules, cooldown and single fallback, as recorded."""

from __future__ import annotations

import pytest

from llm_events import LLMClient, LLMResult, LLMRouter

from .helpers import read_db


class Named(LLMClient):
    def __init__(self, model, fail=False):
        super().__init__(model)
        self.fail = fail
        self.asked = 0

    def _generate(self, prompt, *, context_builder):
        self.asked += 1
        if self.fail:
            raise ConnectionError(f"{self.model} unreachable")
        return LLMResult(text=self.model)


@pytest.fixture
def pair():
    return Named("remote"), Named("local")


@pytest.mark.parametrize(
    ("query", "kwargs", "expected", "reason"),
    [
        ("short", {"tags": ["low_roi"]}, "local", "tags"),
        ("x " * 3000, {"tags": ["low_roi"]}, "local", "tags"),
        ("short", {"tags": ["high_roi"]}, "remote", "tags"),
        ("x " * 3000, {}, "remote", "size"),
        ("short", {}, "local", "size"),
        ("short", {"metadata": {"vector_confidence": 0.9}}, "remote", "confidence"),
        ("x " * 3000, {"metadata": {"vector_confidence": 0.1}}, "local", "confidence"),
    ],
)
def test_choice_rules(pair, builder, db_path, query, kwargs, expected, reason):
    remote, local = pair
    router = LLMRouter(remote, local, size_threshold=1000)
    prompt = builder.build_prompt(query, **kwargs)
    if "metadata" in kwargs:
        prompt.vector_confidence = kwargs["metadata"]["vector_confidence"]
    assert router.generate(prompt, context_builder=builder).text == expected
    row = read_db(db_path).execute("SELECT route, route_reason, backend FROM calls").fetchone()
    assert row == (expected, reason, "Named")


def test_fallback_once_then_error_propagates(builder, db_path):
    remote, local = Named("remote", fail=True), Named("local", fail=True)
    router = LLMRouter(remote, local)
    with pytest.raises(ConnectionError, match="local unreachable"):
        router.generate(builder.build_prompt("q", tags=["high_roi"]), context_builder=builder)
    assert (remote.asked, local.asked) == (1, 1)
    row = (
        read_db(db_path)
        .execute("SELECT status, fallbacks, attempts, error_type FROM calls")
        .fetchone()
    )
    assert row == ("error", 1, 2, "ConnectionError")
    fb = (
        read_db(db_path)
        .execute(
            "SELECT json_extract(payload,'$.from_backend'), json_extract(payload,'$.to_backend') "
            "FROM events WHERE type='fallback_taken'"
        )
        .fetchone()
    )
    assert fb == ("Named:remote", "Named:local")


def test_cooldown_avoids_a_recently_failed_backend(builder, db_path):
    remote, local = Named("remote", fail=True), Named("local")
    router = LLMRouter(remote, local, failure_cooldown=60)
    first = router.generate(builder.build_prompt("q", tags=["high_roi"]), context_builder=builder)
    assert first.text == "local" and remote.asked == 1
    second = router.generate(builder.build_prompt("q2", tags=["high_roi"]), context_builder=builder)
    assert second.text == "local" and remote.asked == 1  # remote not retried while cooling
    rows = (
        read_db(db_path)
        .execute("SELECT route, route_reason, fallbacks FROM calls ORDER BY first_seq")
        .fetchall()
    )
    assert rows == [("remote", "tags", 1), ("local", "cooldown", 0)]


def test_no_cooldown_when_zero(builder):
    remote, local = Named("remote", fail=True), Named("local")
    router = LLMRouter(remote, local, failure_cooldown=0)
    router.generate(builder.build_prompt("q", tags=["high_roi"]), context_builder=builder)
    router.generate(builder.build_prompt("q", tags=["high_roi"]), context_builder=builder)
    assert remote.asked == 2

"""Comparators: exact, normalized, json, similarity, and users' own."""

from __future__ import annotations

import pytest

from replay.compare import Answer, Comparison, get_comparator


def verdict(name: str, old: str, new: str, **kw) -> Comparison:
    return get_comparator(name, **kw)(Answer(old), Answer(new))


def test_exact():
    assert verdict("exact", "a b", "a b") == Comparison("same", 1.0)
    changed = verdict("exact", "Paris", "paris")
    assert changed.verdict == "changed" and changed.diff == "-Paris\n+paris"


def test_normalized_ignores_whitespace_and_case():
    assert verdict("normalized", "The  answer\nis 42 ", "the answer is 42").verdict == "same"
    assert verdict("normalized", "the answer is 42", "the answer is 43").verdict == "changed"


def test_json_ignores_key_order_and_fences():
    assert (
        verdict("json", '{"a": 1, "b": [1, 2]}', '```json\n{"b": [1, 2], "a": 1}\n```').verdict
        == "same"
    )
    changed = verdict("json", '{"a": 1}', '{"a": 2}')
    assert changed.verdict == "changed" and '+{"a": 2}' in changed.diff
    assert verdict("json", "1", "true").verdict == "changed"
    bad = verdict("json", '{"a": 1}', "Sure! here it is")
    assert bad.verdict == "error"
    assert bad.reason.startswith("replayed answer is not JSON")
    parsed = get_comparator("json")(Answer("ignored", parsed={"x": 1}), Answer('{"x": 1}'))
    assert parsed.verdict == "same"


def test_similarity_threshold():
    old, new = "The invoice is issued monthly.", "The invoice is issued each month."
    loose = verdict("similarity", old, new, threshold=0.7)
    strict = verdict("similarity", old, new, threshold=0.95)
    assert loose.verdict == "same" and strict.verdict == "changed"
    assert loose.score == strict.score and 0.7 < loose.score < 0.95
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        get_comparator("similarity", threshold=2)


def test_user_comparators():
    cmp = get_comparator("tests.test_replay_clients:same_length")
    assert cmp(Answer("abc"), Answer("xyz")) == Comparison("same", 1.0)
    assert get_comparator(lambda a, b: a[0] == b[0])(Answer("ab"), Answer("ac")).verdict == "same"
    as_dict = get_comparator(lambda a, b: {"verdict": "changed", "score": 0.1})
    assert as_dict(Answer("a"), Answer("b")).diff == "-a\n+b"
    with pytest.raises(TypeError, match="comparator returned list"):
        get_comparator("tests.test_replay_clients:broken_comparator")(Answer("a"), Answer("b"))
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        get_comparator("tests.test_replay_clients:nope")
    with pytest.raises(ValueError, match="cannot import comparator module"):
        get_comparator("no_such_module_xyz:f")

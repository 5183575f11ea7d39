"""Values that cannot be recorded faithfully are refused before anything is written;
secrets are masked before the write; a failing store is loud by default."""

from __future__ import annotations

import os
import warnings

import pytest

import llm_events
from llm_events import (
    LLMResult,
    RecordingError,
    RecordingLostWarning,
    UnstorableValueError,
)

from .helpers import Returns, read_db


def count(db, table="events"):
    if not os.path.exists(db):
        return 0
    return read_db(db).execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"obj": object()}, "builtins.object object"),
        ({"score": float("nan")}, "nan"),
        ({"score": float("inf")}, "inf"),
        ({1: "int key"}, "keys must be strings"),
        ({"s": "lone \ud800 surrogate"}, "lone surrogate"),
    ],
)
def test_unstorable_prompt_metadata_is_refused_before_writing(db_path, builder, metadata, message):
    with pytest.raises(UnstorableValueError, match=message):
        builder.build_prompt("q", metadata=metadata)
    assert count(db_path) == 0


def test_lone_surrogate_in_query_is_refused(db_path, builder):
    with pytest.raises(UnstorableValueError, match="prompt.user"):
        builder.build_prompt("bad \udc80 text")
    assert count(db_path) == 0


def test_prompt_mutated_to_unstorable_is_refused_before_the_call(db_path, builder):
    prompt = builder.build_prompt("fine")
    before = count(db_path)
    prompt.metadata["handle"] = open(os.devnull)  # noqa: SIM115
    client = Returns(LLMResult(text="never sent"))
    with pytest.raises(UnstorableValueError, match="TextIOWrapper"):
        client.generate(prompt, context_builder=builder)
    assert count(db_path) == before
    assert count(db_path, "calls") == 0


@pytest.mark.parametrize(
    "result",
    [
        LLMResult(text="ok", parsed={"when": object()}),
        LLMResult(text="ok", raw={"x": float("nan")}),
        LLMResult(text="answer \ud83d broken"),
    ],
)
def test_unstorable_answer_closes_the_call_as_error(db_path, builder, result):
    with pytest.raises(UnstorableValueError):
        Returns(result).generate(builder.build_prompt("q"), context_builder=builder)
    row = read_db(db_path).execute("SELECT status, error_type FROM calls").fetchone()
    assert row == ("error", "UnstorableValueError")  # not a half-written call
    assert count(db_path, "prompts") == 0
    assert llm_events.open_store().verify().ok


def test_ten_megabyte_prompt_is_stored_faithfully(db_path, builder):
    big = ("lorem ipsum dolor sit amet " * 400_000)[:10_000_000]
    prompt = builder.build_prompt(big)
    result = llm_events.client_from_spec("echo").generate(prompt, context_builder=builder)
    assert len(result.text) == 10_000_000
    stored = read_db(db_path).execute("SELECT text, response_text FROM prompts").fetchone()
    assert stored == (big, big)


def test_unicode_and_nested_values_round_trip(db_path, builder):
    meta = {"emoji": "🦉", "nested": {"list": [1, 2.5, None, True, "ß"]}, "tuple": (1, 2)}
    prompt = builder.build_prompt("héllo wörld 日本", metadata=meta)
    parsed = {"answer": ["ok", {"n": 1}]}
    Returns(LLMResult(text="réponse", parsed=parsed)).generate(prompt, context_builder=builder)
    row = (
        read_db(db_path)
        .execute(
            "SELECT p.text, p.response_text, p.response_parsed, json_extract(e.payload, '$.metadata') "
            "FROM prompts p JOIN calls c USING (call_id) JOIN events e ON e.id = c.prompt_id"
        )
        .fetchone()
    )
    import json

    assert row[0] == "héllo wörld 日本" and row[1] == "réponse"
    assert json.loads(row[2]) == parsed
    assert json.loads(row[3])["nested"] == {"list": [1, 2.5, None, True, "ß"]}
    assert json.loads(row[3])["tuple"] == [1, 2]


def test_secrets_are_redacted_before_write(db_path, builder):
    prompt = builder.build_prompt(
        "use key sk-abcdefghijklmnop1234 and header Authorization: Bearer abc.def.ghijklmnop",
        metadata={"headers": {"x-api-key": "secret-value-123"}},
    )
    Returns(
        LLMResult(text="echo sk-proj-ZZZZZZZZZZZZZZZZ", raw={"api_key": "abcdef123456"})
    ).generate(prompt, context_builder=builder)
    dump = "\n".join(p for (p,) in read_db(db_path).execute("SELECT payload FROM events"))
    for secret in (
        "abcdefghijklmnop1234",
        "abc.def.ghijklmnop",
        "secret-value-123",
        "ZZZZZZZZZZZZZZZZ",
        "abcdef123456",
    ):
        assert secret not in dump
    assert "sk-[REDACTED]" in dump and "Bearer [REDACTED]" in dump
    # the caller still gets the real answer
    assert prompt.user.startswith("use key sk-abcdefghijklmnop1234")


def test_custom_redaction_patterns_and_callables(db_path, builder):
    llm_events.configure(redact=[r"\b\d{3}-\d{2}-\d{4}\b", lambda s: s.replace("Alice", "[NAME]")])
    builder.build_prompt("Alice's SSN is 123-45-6789, key sk-abcdefghijklmnop")
    llm_events.flush()
    (payload,) = read_db(db_path).execute("SELECT payload FROM events").fetchone()
    assert "123-45-6789" not in payload and "Alice" not in payload
    assert "[NAME]" in payload and "sk-[REDACTED]" in payload


def test_missing_directory_is_a_clear_error_by_default(tmp_path, builder):
    llm_events.configure(db=tmp_path / "no" / "such" / "dir" / "events.db")
    with pytest.raises(RecordingError, match="directory .* does not exist"):
        builder.build_prompt("q")


def test_missing_directory_with_warn_lets_the_answer_through(tmp_path):
    llm_events.configure(db=tmp_path / "nope" / "events.db", on_store_error="warn")
    b = llm_events.ContextBuilder()
    with pytest.warns(RecordingLostWarning, match="does not exist"):
        prompt = b.build_prompt("q")
    with pytest.warns(RecordingLostWarning):
        result = llm_events.client_from_spec("echo").generate(prompt, context_builder=b)
    assert result.text == "q"


def test_read_only_store_raises_by_default_and_warns_when_asked(tmp_path):
    path = tmp_path / "ro.db"
    llm_events.EventStore(path).close()
    llm_events.configure(db=llm_events.EventStore(path, readonly=True))
    b = llm_events.ContextBuilder()
    with pytest.raises(RecordingError, match="read-only"):
        b.build_prompt("q")
    llm_events.configure(on_store_error="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prompt = b.build_prompt("q")
        result = llm_events.client_from_spec("echo").generate(prompt, context_builder=b)
    assert result.text == "q"
    lost = [w for w in caught if issubclass(w.category, RecordingLostWarning)]
    assert len(lost) == 2 and "read-only" in str(lost[0].message)
    assert count(path) == 0


def test_read_only_file_on_disk(tmp_path, builder):
    """A file the process may not write (chmod 444 in a read-only directory)."""
    path = tmp_path / "locked" / "events.db"
    path.parent.mkdir()
    llm_events.EventStore(path).close()
    for f in path.parent.iterdir():
        f.chmod(0o444)
    path.parent.chmod(0o555)
    try:
        if os.access(path, os.W_OK):
            pytest.skip("running as root: file permissions do not stop writes")
        llm_events.configure(db=path)
        with pytest.raises(RecordingError):
            llm_events.ContextBuilder().build_prompt("q")
    finally:
        path.parent.chmod(0o755)

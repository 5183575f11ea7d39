"""Mistyped, huge and deep answers (issue 12, items 1 and 5): coerced when exact, otherwise
refused with the call closed; the store stays readable by ``rebuild``, ``export``, ``calls``
and ``show`` (real CLI processes on the real file)."""

from __future__ import annotations

import json
import subprocess

import pytest

from llm_events import LLMResult, UnstorableValueError
from tests.cli_support import console_script
from tests.helpers import Returns, read_db


def cli(db, *args):
    return subprocess.run(
        [console_script(), *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_store_readable(db):
    for args in (["rebuild"], ["export"], ["calls"], ["verify"]):
        out = cli(db, *args)
        assert out.returncode == 0, (args, out.stderr)
        assert "Traceback" not in out.stderr
    conn = read_db(db)
    try:
        running = conn.execute("SELECT count(*) FROM calls WHERE status = 'running'").fetchone()[0]
        starts = conn.execute("SELECT count(*) FROM events WHERE type='call_started'").fetchone()[0]
        ends = conn.execute("SELECT count(*) FROM events WHERE type='call_finished'").fetchone()[0]
        open_attempts = conn.execute(
            "SELECT count(*) FROM events s WHERE s.type = 'attempt_started' AND NOT EXISTS ("
            " SELECT 1 FROM events o WHERE o.call_id = s.call_id"
            " AND o.type IN ('attempt_failed', 'attempt_succeeded')"
            " AND json_extract(o.payload, '$.attempt') = json_extract(s.payload, '$.attempt'))"
        ).fetchone()[0]
    finally:
        conn.close()
    assert (running, open_attempts) == (0, 0) and starts == ends


@pytest.mark.parametrize(
    ("field", "given", "recorded"),
    [
        ("input_tokens", "12", 12),
        ("output_tokens", 3.0, 3),
        ("cost", "0.25", 0.25),
        ("latency_ms", 7, 7.0),
    ],
)
def test_exact_conversions_are_coerced(db_path, builder, field, given, recorded):
    result = Returns(LLMResult(text="ok", **{field: given})).generate(
        builder.build_prompt("q"), context_builder=builder
    )
    assert getattr(result, field) == recorded
    payload = (
        read_db(db_path)
        .execute("SELECT payload FROM events WHERE type = 'attempt_succeeded'")
        .fetchone()[0]
    )
    assert json.loads(payload)[field] == recorded
    assert_store_readable(db_path)


@pytest.mark.parametrize(
    ("field", "given", "message"),
    [
        ("input_tokens", "many", "result.input_tokens is 'many': expected a whole number"),
        ("output_tokens", 3.7, "result.output_tokens is 3.7"),
        ("input_tokens", 2**70, "expected 0 to 2\\*\\*63-1"),
        ("output_tokens", -5, "expected 0 to 2\\*\\*63-1"),
        ("cost", "free", "result.cost is 'free': expected a finite number"),
        ("latency_ms", "fast", "result.latency_ms is 'fast'"),
        ("text", ["a", "list"], "result.text is \\['a', 'list'\\]: expected a string"),
    ],
)
def test_mistyped_answers_are_refused_and_the_call_closed(db_path, builder, field, given, message):
    with pytest.raises(UnstorableValueError, match=message):
        Returns(LLMResult(**{"text": "ok", field: given})).generate(
            builder.build_prompt("q"), context_builder=builder
        )
    row = read_db(db_path).execute("SELECT status, error_type FROM calls").fetchone()
    assert row == ("error", "UnstorableValueError")
    assert_store_readable(db_path)


def test_ten_thousand_deep_parsed_is_refused_and_the_attempt_closed(db_path, builder):
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(UnstorableValueError, match="nested deeper than 200 levels"):
        Returns(LLMResult(text="ok", parsed=deep)).generate(
            builder.build_prompt("q"), context_builder=builder
        )
    assert_store_readable(db_path)


def test_mistyped_prompt_fields_are_refused_before_any_write(db_path, builder):
    prompt = builder.build_prompt("q")
    n = read_db(db_path).execute("SELECT count(*) FROM events").fetchone()[0]
    prompt.vector_confidence = "very"
    with pytest.raises(UnstorableValueError, match="prompt.vector_confidence is 'very'"):
        Returns(LLMResult(text="ok")).generate(prompt, context_builder=builder)
    assert read_db(db_path).execute("SELECT count(*) FROM events").fetchone()[0] == n
    prompt.vector_confidence = "0.5"
    prompt.tags = ["ok", 7]
    Returns(LLMResult(text="ok")).generate(prompt, context_builder=builder)
    assert (prompt.vector_confidence, prompt.tags) == (0.5, ["ok", "7"])
    assert_store_readable(db_path)


def test_a_stored_bad_event_never_stops_rebuild_export_or_listings(db_path, builder):
    """Item 1: events written with wrong types (by an older version, or by hand) are read
    leniently or skipped, and reported; nothing stops on them."""
    from llm_events import open_store
    from llm_events.log import events as ev

    Returns(LLMResult(text="fine")).generate(builder.build_prompt("q"), context_builder=builder)
    store = open_store(db_path)
    bad = [
        ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id="c-bad", client=7, tags="x"),
        ev.AttemptStarted(
            id=ev.new_id(), ts=ev.now_iso(), call_id="c-bad", attempt="1", backend="b"
        ),
        ev.AttemptSucceeded(
            id=ev.new_id(),
            ts=ev.now_iso(),
            call_id="c-bad",
            attempt=1,
            input_tokens="12",
            output_tokens=2**70,
            latency_ms="fast",
        ),
        ev.CallFinished(id=ev.new_id(), ts=ev.now_iso(), call_id="c-bad", status="ok", attempts=[]),
        ev.AttemptFailed(id=ev.new_id(), ts=ev.now_iso(), call_id=None, attempt=1, error_type=3),
    ]
    store.append(bad)  # the store writes what it is given: a simulated older writer
    store.close()
    rebuilt = cli(db_path, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "warning: event" in rebuilt.stderr and "Traceback" not in rebuilt.stderr
    row = (
        read_db(db_path)
        .execute(
            "SELECT status, input_tokens, output_tokens, latency_ms FROM calls WHERE call_id='c-bad'"
        )
        .fetchone()
    )
    assert row == ("ok", 12, None, None)
    for args in (["export"], ["calls"], ["show", "c-bad"], ["stats"], ["verify"]):
        out = cli(db_path, *args)
        assert out.returncode == 0 and "Traceback" not in out.stderr, (args, out.stderr)
    assert out.stdout  # verify said something

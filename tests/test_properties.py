"""Property tests (Hypothesis, issue 12): arbitrary JSON and Python values thrown at the
recording API (LLMResult fields, parsed, raw, prompt metadata and tags) and at ``import``
(JSONL lines); after each example the real store on disk must be

- verifiable (the hash chain holds),
- rebuildable (``rebuild`` succeeds and re-derives exactly the ``calls`` rows the appends
  projected),
- exportable (every exported line passes import's checks), and
- never half-written (every recorded call has its ``call_finished``, every attempt an
  outcome).
"""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llm_events
from llm_events import LLMResult, UnstorableValueError
from llm_events.cli import main
from llm_events.log.queries import export_payloads
from llm_events.transfer.incoming import Rejected, check
from tests.helpers import Returns

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _deep(n: int) -> object:
    value: object = "bottom"
    for i in range(n):
        value = [value] if i % 2 else {"k": value}
    return value


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["12", "3.7", "many", "free", "sk-learn", "AKIAZ7QW3ER5TY6UI2OP"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
python_values = (
    json_values
    | st.integers(min_value=150, max_value=400).map(_deep)
    | st.binary(max_size=8)
    | st.tuples(json_values, json_values)
    | st.builds(object)
    | st.dictionaries(st.integers(), json_values, max_size=2)
)
RESULT_FIELDS = (
    "text",
    "parsed",
    "raw",
    "input_tokens",
    "output_tokens",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_ms",
)
results = st.fixed_dictionaries({}, optional={name: python_values for name in RESULT_FIELDS})


def assert_store_sound(db) -> None:
    store = llm_events.open_store(db)
    store.flush()
    verified = store.verify()
    assert verified.ok, verified
    conn = sqlite3.connect(db)
    try:
        before = conn.execute("SELECT * FROM calls ORDER BY call_id").fetchall()
        store.rebuild()
        after = conn.execute("SELECT * FROM calls ORDER BY call_id").fetchall()
        assert after == before
        redactor = llm_events.recording.config.settings().redactor
        for payload in export_payloads(conn):
            try:
                check(json.loads(payload), redactor)
            except Rejected as e:  # what we wrote, import must take back
                raise AssertionError(f"export not importable: {e}: {payload[:300]}") from None
        unfinished = conn.execute(
            "SELECT count(*) FROM events s WHERE s.type = 'call_started' AND NOT EXISTS "
            "(SELECT 1 FROM events f WHERE f.call_id = s.call_id AND f.type = 'call_finished')"
        ).fetchone()[0]
        open_attempts = conn.execute(
            "SELECT count(*) FROM events s WHERE s.type = 'attempt_started' AND NOT EXISTS ("
            " SELECT 1 FROM events o WHERE o.call_id = s.call_id"
            " AND o.type IN ('attempt_failed', 'attempt_succeeded')"
            " AND json_extract(o.payload, '$.attempt') = json_extract(s.payload, '$.attempt'))"
        ).fetchone()[0]
        assert (unfinished, open_attempts) == (0, 0)
    finally:
        conn.close()


@SETTINGS
@given(
    fields=results,
    metadata=st.dictionaries(st.text(max_size=8), python_values, max_size=3),
    tags=st.lists(python_values, max_size=3),
)
def test_recording_arbitrary_values_keeps_the_store_sound(db_path, fields, metadata, tags):
    builder = llm_events.ContextBuilder()
    try:
        prompt = builder.build_prompt("question", metadata=metadata, tags=tags)
    except UnstorableValueError:
        prompt = builder.build_prompt("question")
    try:
        result = Returns(LLMResult(**fields)).generate(prompt, context_builder=builder)
    except UnstorableValueError:
        pass
    else:  # what the caller got is what was recorded: counts are ints, costs finite floats
        for name in ("input_tokens", "output_tokens"):
            value = getattr(result, name)
            assert value is None or (type(value) is int and 0 <= value < 2**63)
        assert result.cost is None or math.isfinite(result.cost)
    assert_store_sound(db_path)


event_types = st.sampled_from(
    ["call_started", "attempt_started", "attempt_succeeded", "attempt_failed", "call_finished"]
)


@st.composite
def jsonl_lines(draw):
    """An exported call, with fields replaced by arbitrary JSON, lines dropped or added."""
    call = "0190aaaa-0000-7000-8000-0000000000c1"
    events = [
        {"type": "call_started", "id": "e1", "ts": "2026-11-30T10:00:00Z", "call_id": call},
        {
            "type": "attempt_started",
            "id": "e2",
            "ts": "2026-11-30T10:00:00Z",
            "call_id": call,
            "attempt": 1,
            "backend": "b",
        },
        {
            "type": "attempt_succeeded",
            "id": "e3",
            "ts": "2026-11-30T10:00:01Z",
            "call_id": call,
            "attempt": 1,
            "text": "ok",
            "input_tokens": 3,
        },
        {
            "type": "call_finished",
            "id": "e4",
            "ts": "2026-11-30T10:00:01Z",
            "call_id": call,
            "status": "ok",
            "attempts": 1,
        },
    ]
    for event in events:
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.sampled_from([*event, "v", "extra", "ts", "id", "status", "attempt"]))
            event[key] = draw(json_values)
    lines = [json.dumps(e) for e in events]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), json.dumps(draw(json_values)))
    if draw(st.booleans()):
        lines.append("[" * draw(st.integers(1, 3000)))
    return "\n".join(lines) + "\n"


@SETTINGS
@given(content=jsonl_lines())
def test_importing_arbitrary_lines_keeps_the_store_sound(db_path, tmp_path, content):
    dump = tmp_path / "in.jsonl"
    dump.write_text(content)
    result = CliRunner().invoke(main, ["import", str(dump), "--db", str(db_path)])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert_store_sound_after_import(db_path)


def assert_store_sound_after_import(db) -> None:
    """Imported calls may be partial (their source was); the rest must hold."""
    store = llm_events.open_store(db)
    verified = store.verify()
    assert verified.ok, verified
    conn = sqlite3.connect(db)
    try:
        before = conn.execute("SELECT * FROM calls ORDER BY call_id").fetchall()
        store.rebuild()
        assert conn.execute("SELECT * FROM calls ORDER BY call_id").fetchall() == before
        statuses = {s for (s,) in conn.execute("SELECT status FROM calls")}
        assert statuses <= {"ok", "error", "running", "interrupted"}
        assert all(
            n is None or 0 <= n < 2**63 for (n,) in conn.execute("SELECT input_tokens FROM calls")
        )
        for payload in export_payloads(conn):
            check(json.loads(payload), llm_events.recording.config.settings().redactor)
    finally:
        conn.close()


@pytest.mark.parametrize("depth", [199, 200, 10_000])
def test_depth_limit_edges(db_path, depth):
    builder = llm_events.ContextBuilder()
    prompt = builder.build_prompt("q")
    try:
        Returns(LLMResult(text="x", parsed=_deep(depth))).generate(prompt, context_builder=builder)
    except UnstorableValueError as e:
        assert "nested deeper than 200 levels" in str(e)
    assert_store_sound(db_path)

"""The redaction walk's fast paths mask exactly what the plain scan masks (issue 14: the
recording hot path), and a key registered by a backend is masked even when no variable of
the environment holds a key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llm_events
from llm_events import ContextBuilder, LLMClient, LLMResult
from llm_events.log import secrets
from llm_events.log.redaction import MASK, Redactor, clean
from tests.helpers import read_db

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Pieces that make texts interesting to the rules: hints, assignments, token-like runs,
#: secrets in real formats, non-ASCII letters (some lower-case to ASCII), a lone surrogate.
FRAGMENTS = [
    " ",
    "\n",
    "the queue depth",
    "key",
    "api_key=",
    "password: ",
    "token",
    "Bearer ",
    "Authorization: Basic ",
    "?key=",
    "https://user:pw@example.com/x",
    "sk-",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c",
    "sk-proj-****abcd",
    "AKIAZ7QW3ER5TY6UI2OP",
    "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngXyZ12345678",
    "aws_secret_access_key = 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",
    "abcdefghijklmnop",
    "abcdefghijklmno",
    "a-b_c+d/e=f.g~h0123456789",
    "é",
    "\u212a",  # KELVIN SIGN: lower-cases to an ASCII "k"
    "\u0130",  # I WITH DOT: lower-cases to "i" + a combining dot
    "中文",
    "\ud800",
    "=",
    "***",
    "://",
]
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=14).map("".join)

_HINTS = re.compile(
    "|".join(
        re.escape(h)
        for h in sorted({h for _p, hs in secrets.TRAFFIC_RULES for h in hs}, key=len, reverse=True)
    )
)


def plain_scan(text: str, keys: tuple[str, ...]) -> str:
    """The finder as it was before the hot-path work: one regex for the hints, the token-run
    regex as the gate before gitleaks' rules."""
    for key in keys:
        if key in text:
            text = text.replace(key, MASK)
    if len(text) < 16:
        return text
    lowered = text.lower()
    if _HINTS.search(lowered) is not None:
        for pattern, hints in secrets._traffic():
            if any(h in lowered for h in hints):
                text = secrets._sub_labelled(pattern, text)
    if secrets._RUN.search(text) is None:
        return text
    for rule in secrets._candidates(text):
        text = secrets._sub_rule(rule, text)
    return text


@SETTINGS
@given(texts)
def test_the_token_run_test_without_a_regex_agrees_with_the_regex(text):
    assert secrets.has_run(text) == (secrets._RUN.search(text) is not None)


@SETTINGS
@given(texts, st.sampled_from([(), ("zzConfiguredKey0123",)]))
def test_the_finder_masks_what_the_plain_scan_masks(text, keys):
    assert secrets._find(text, keys) == plain_scan(text, keys)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts.filter(lambda t: "\ud800" not in t)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "api_key", "text", "Cookie", "n"]), inner, max_size=4
        )
    ),
    max_leaves=16,
)


def general(value):
    """The same value as types the walk's exact-type paths do not take (a read-only mapping,
    tuples, a float subclass)."""
    if isinstance(value, dict):
        return MappingProxyType({k: general(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(general(v) for v in value)
    if type(value) is float:
        return Float(value)
    return value


class Float(float):
    pass


def expected(value, redact: Redactor):
    """What cleaning means: strings redacted, credential-named scalars masked, keys redacted."""
    if isinstance(value, Mapping):
        return {
            redact(k) if not redact.sensitive_keys.match(k) else k: (
                MASK
                if redact.sensitive_keys.match(k)
                and isinstance(v, (str, int, float))
                and not isinstance(v, bool)
                else expected(v, redact)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [expected(v, redact) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


@SETTINGS
@given(values)
def test_cleaning_gives_the_same_on_every_path(value):
    redact = Redactor()
    fast = clean(value, redact, "x")
    assert fast == clean(general(value), redact, "x")
    assert fast == expected(value, redact)


class Docs:
    def __init__(self, texts):  # type: ignore[no-untyped-def]
        self.texts = texts

    def retrieve(self, query, top_k):  # type: ignore[no-untyped-def]
        return [(t, 1.0 - i / 10) for i, t in enumerate(self.texts)][:top_k]


class Answers(LLMClient):
    def _generate(self, prompt, *, context_builder):  # type: ignore[no-untyped-def]
        return LLMResult(text="ok")


def test_a_secret_in_retrieved_context_is_masked_in_the_examples_and_the_context(db_path):
    doc = "Deploy with api_key=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c and a long " * 6
    builder = ContextBuilder([Docs([doc, "plain runbook text"])])
    Answers().generate(builder.build_prompt("how to deploy?"), context_builder=builder)
    conn = read_db(db_path)
    (payload,) = conn.execute("SELECT payload FROM events WHERE type = 'prompt_built'").fetchone()
    assert "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c" not in payload
    event = llm_events.EventStore(db_path, readonly=True).iter_events().__next__().event
    assert event.examples == [c.text for c in event.context]
    assert MASK in event.examples[0] and event.examples[1] == "plain runbook text"


def test_a_redacting_callable_sees_every_context_text(db_path):
    seen = []

    def note(text: str) -> str:
        seen.append(text)
        return text.replace("internal", "[internal]")

    llm_events.configure(redact=[note])
    builder = ContextBuilder([Docs(["an internal runbook"])])
    Answers().generate(builder.build_prompt("runbook?"), context_builder=builder)
    assert seen.count("an internal runbook") == 2  # as an example, and as context
    event = next(llm_events.EventStore(db_path, readonly=True).iter_events()).event
    assert event.examples == ["an [internal] runbook"]
    assert event.context[0].text == "an [internal] runbook"


RECORD_WITH_A_REGISTERED_KEY = """
import sys
import llm_events
from llm_events import ContextBuilder, LLMClient, LLMResult
from llm_events.log.secrets import register_secret

KEY = "zz-Backend-Key-0123456789"
register_secret(KEY)  # what a backend given api_key=... does

class Echo(LLMClient):
    def _generate(self, prompt, *, context_builder):
        return LLMResult(text=f"the server said: key {KEY} is invalid")

llm_events.configure(db=sys.argv[1])
builder = ContextBuilder()
Echo().generate(builder.build_prompt(f"my key is {KEY}"), context_builder=builder)
llm_events.flush()
"""


def test_a_registered_key_is_masked_when_no_environment_variable_holds_a_key(tmp_path: Path):
    db = tmp_path / "events.db"
    env = {k: v for k, v in os.environ.items() if not secrets.SECRET_ENV.search(k)}
    subprocess.run(
        [sys.executable, "-c", RECORD_WITH_A_REGISTERED_KEY, str(db)], env=env, check=True
    )
    written = b"".join(p.read_bytes() for p in tmp_path.glob("events.db*"))
    assert b"events" in written
    assert b"zz-Backend-Key-0123456789" not in written
    assert b"zz-Backe" not in written  # nor its masked echo

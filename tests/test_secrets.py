"""Secrets never reach the store's bytes (issue 12 item 4, issue 10 item 4): every kind the
issues name, in realistic fake values of the real formats, through every path in
(recording, failures, JSONL import, import --from-llm), looked for in the db, -wal and -shm
files and in an export; and ordinary data that looks a little like a secret is kept."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

import llm_events
from llm_events import LLMClient, LLMResult
from llm_events.log.secrets import echo_form
from tests.cli_support import console_script

# Fake values in the real formats (none is a live key).
KEY_FIRST = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9oPq2rSt5uVw8x"
KEY_SHORT = "shortkey123"
SECRETS = {
    "google": "AIzaSyDq3Xk9fL2mN8pQ4rT6vW1yZ5bC7dE0gHj",
    "aws_access": "AKIAZ7QW3ER5TY6UI2OP",
    "aws_secret": "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",
    "github_classic": "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngXyZ12345678",
    "github_fine": "github_pat_11ABCDEFG0123456789abc_"
    + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVw",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "slack": "xoxb-2048103975-4096207951-Hk3Jd9Lm2Pq7Rs5Tv8Wx1Yz",
    "stripe": "sk_live_51HqLyjWDarjtT1zdp7dcXYZ0123abcdEFGH",
    "basic": "dXNlcjpjMHJyZWN0LWhvcnNlLWJhdHRlcnk=",
    "token_header": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
    "password": "hunter2-Correct",
    "access_token": "ya29.a0AfH6SMBx3kQ9pL2mN8",
    "url_key": "zzQueryKey0123456789",
    "anthropic": "sk-ant-api03-" + "Xy9" * 31 + "AA",
    "openai_legacy": "sk-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn" + "T3BlbkFJ" + "Op7Qr8St9Uv0Wx1Yz2Ab",
    "meta_openai": "proj-9f8e7d6c5b4a3f2e1d0c",
    "meta_client_secret": "s3cr3t-Client-Value-77",
    "meta_cookie": "session=ab12cd34ef56gh78",
    "meta_aws": "Qm9vbGVhblNlY3JldEtleTEyMzQ1Njc4OTBhYmNk",
    "private_key_body": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    "configured": KEY_FIRST,
    "configured_echo": echo_form(KEY_FIRST),
    "configured_short": KEY_SHORT,
    "import_jsonl": "ghp_ImP0rTeDT0k3nV4lu3F0rT3st1ngXyZ98765",
    "import_llm": "AKIAQ2W3E4R5T6Y7U2I3",
    "conn_url_key": "zzConnKey0123456789abc",
}
PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    + SECRETS["private_key_body"]
    + "\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1G\n"
    "-----END PRIVATE KEY-----"
)
PROSE = (
    f"Google {SECRETS['google']}; AWS {SECRETS['aws_access']} with "
    f"aws_secret_access_key = {SECRETS['aws_secret']}; GitHub {SECRETS['github_classic']} "
    f"and {SECRETS['github_fine']}; JWT {SECRETS['jwt']} ; Slack {SECRETS['slack']} ; "
    f"Stripe {SECRETS['stripe']} ; Authorization: Basic {SECRETS['basic']} ; "
    f"Authorization: Token {SECRETS['token_header']} ; password={SECRETS['password']} ; "
    f"access_token={SECRETS['access_token']} ; "
    f"https://generativelanguage.googleapis.com/v1beta/models?key={SECRETS['url_key']} ; "
    f"Anthropic {SECRETS['anthropic']} ; OpenAI {SECRETS['openai_legacy']} ;\n{PRIVATE_KEY}"
)
METADATA = {
    "openai_api_key": SECRETS["meta_openai"],
    "client_secret": SECRETS["meta_client_secret"],
    "Cookie": SECRETS["meta_cookie"],
    "aws_secret_access_key": SECRETS["meta_aws"],
    "private_key": PRIVATE_KEY,
}
LOGPROBS = {
    "content": [
        {
            "token": "Hello",
            "logprob": -0.01,
            "top_logprobs": [
                {"token": "Hello", "logprob": -0.01},
                {"token": "Hi", "logprob": -4.2},
            ],
        }
    ]
}
# Ordinary data that must be kept as it is.
KEPT = [
    "pip install sk-learn",
    "sk-learn-contrib-library",
    "the token budget was 512 tokens",
    "my password manager is great",
    "request 0190aaaa-0000-7000-8000-0000000000c1 done",
    "fixed in commit 3f2a9c1e8b7d6f5a4e3d2c1b0a9f8e7d6c5b4a39",
    "gpt-4o-mini-2024-07-18",
    "internationalization-and-localization",
    "see https://example.com/search?q=llm+events&page=2",
]


class Leaky(LLMClient):
    """Answers with every secret in text, raw and logprobs; metadata carry credentials."""

    def _generate(self, prompt, *, context_builder):
        return LLMResult(
            text=PROSE,
            raw={
                "echo": PROSE,
                "kept": KEPT,
                "headers": {"x-api-key": SECRETS["meta_openai"]},
                "choices": [{"logprobs": LOGPROBS}],
            },
            parsed={"note": PROSE, **METADATA},
            logprobs=LOGPROBS,
        )


class EchoesKey(LLMClient):
    def __init__(self, message):
        super().__init__("echoes")
        self.message = message

    def _generate(self, prompt, *, context_builder):
        raise PermissionError(self.message)


def cli(db, *args, stdin=None):
    return subprocess.run(
        [console_script(), *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def store_bytes(db: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A store that went through every path in with every secret (made once)."""
    from llm_events.recording import config

    tmp_path = tmp_path_factory.mktemp("secrets")
    db_path = tmp_path / "events.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_EVENTS_DB", str(db_path))
        mp.setenv("OPENAI_API_KEY", KEY_FIRST)
        mp.setenv("MY_SERVICE_TOKEN", KEY_SHORT)
        config.reset()
        try:
            return _record_everything(db_path, tmp_path)
        finally:
            config.reset()


def _record_everything(db_path, tmp_path):
    builder = llm_events.ContextBuilder()
    prompt = builder.build_prompt(PROSE, metadata=dict(METADATA), tags=["secrets"])
    Leaky("leaky").generate(prompt, context_builder=builder)
    for message in (
        f"Error code: 401 - Incorrect API key provided: {echo_form(KEY_FIRST)}. You can find "
        "your API key at https://platform.openai.com/account/api-keys.",
        f"Incorrect API key provided: {KEY_SHORT}. You can find your API key at ...",
        f"cannot connect to https://api.example.com/v1/chat?key={SECRETS['conn_url_key']}",
    ):
        with pytest.raises(PermissionError):
            EchoesKey(message).generate(builder.build_prompt("q"), context_builder=builder)
    llm_events.flush()
    dump = tmp_path / "in.jsonl"
    dump.write_text(
        json.dumps(
            {
                "type": "prompt_built",
                "id": "0190aaaa-0000-7000-8000-0000000000b1",
                "ts": "2026-11-30T10:00:00Z",
                "prompt_id": "0190aaaa-0000-7000-8000-0000000000b1",
                "user": f"imported {SECRETS['import_jsonl']}",
                "metadata": {"client_secret": SECRETS["meta_client_secret"]},
            }
        )
        + "\n"
    )
    assert cli(db_path, "import", str(dump)).returncode == 0
    logs = tmp_path / "logs.db"
    conn = sqlite3.connect(logs)
    conn.execute(
        "CREATE TABLE responses (id TEXT PRIMARY KEY, model TEXT, prompt TEXT, system TEXT, "
        "prompt_json TEXT, options_json TEXT, response TEXT, response_json TEXT, "
        "conversation_id TEXT, duration_ms INTEGER, datetime_utc TEXT, input_tokens INTEGER, "
        "output_tokens INTEGER, token_details TEXT)"
    )
    conn.execute(
        "INSERT INTO responses (id, model, prompt, response, options_json, datetime_utc) "
        "VALUES ('r1', 'gpt-x', ?, 'ok', ?, '2026-11-30T10:00:00')",
        (f"my key {SECRETS['import_llm']}", json.dumps({"api_key": SECRETS["meta_openai"]})),
    )
    conn.commit()
    conn.close()
    out = cli(db_path, "import", "--from-llm", str(logs))
    assert out.returncode == 0, out.stderr
    return db_path


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_no_secret_in_the_store_bytes_or_the_export(recorded, kind):
    secret = SECRETS[kind].encode()
    exported = cli(recorded, "export").stdout.encode()
    assert exported.count(b"\n") > 10
    assert secret not in store_bytes(recorded), kind
    assert secret not in exported, kind


def test_ordinary_data_and_logprob_tokens_are_kept(recorded):
    conn = sqlite3.connect(recorded)
    (raw, logprobs, text) = conn.execute(
        "SELECT json_extract(payload, '$.raw.kept'), "
        "json_extract(payload, '$.raw.choices[0].logprobs'), "
        "json_extract(payload, '$.text') FROM events WHERE type = 'attempt_succeeded'"
    ).fetchone()
    conn.close()
    assert json.loads(raw) == KEPT
    assert json.loads(logprobs) == LOGPROBS
    assert "[REDACTED]" in text and "Google [REDACTED]" in text
    assert "Authorization: Basic [REDACTED]" in text and "password=[REDACTED]" in text


@pytest.mark.parametrize("text", KEPT)
def test_false_positives_table(text):
    from llm_events.log.redaction import Redactor

    assert Redactor()(text) == text

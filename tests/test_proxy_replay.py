"""Captured calls replay: to any client spec, and byte for byte to another upstream."""

from __future__ import annotations

import json
import subprocess

import openai

import replay

from .cli_support import console_script
from .fake_upstream import FakeUpstream
from .proxy_support import OPENAI_KEY, call_events, finished_calls, proxy_to

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello"},
]


def capture_two(store) -> list[str]:
    with FakeUpstream() as up, proxy_to(up, store) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}], stream=True
        ).close()
    return finished_calls(store, 2)


def test_captured_calls_replay_against_a_client_spec(store):
    ids = capture_two(store)
    report = replay.run(store, "echo", select={"ids": ids})
    assert report.compared == 2
    for result in report.results:
        events = call_events(store, result.replay_call_id)
        assert events["call_started"][0].parent_call_id == result.source_call_id


def test_to_url_resends_the_exact_recorded_body(store, db_path):
    ids = capture_two(store)
    first = call_events(store, ids[0])["attempt_started"][0].params["body"]
    store.close()
    with FakeUpstream() as staging:
        r = subprocess.run(
            [
                console_script(),
                "replay",
                "--db",
                str(db_path),
                "--to-url",
                staging.url + "/v1",
                "--id",
                ids[0],
                "--json",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["same"] == 1 and report["against"].startswith("resend"), report
        (sent,) = staging.seen
    assert sent["path"] == "/v1/chat/completions"
    assert (
        json.loads(sent["body"])
        == first
        == {
            "model": "gpt-4o-mini",
            "messages": MESSAGES,
            "temperature": 0,
        }
    )


def test_to_url_with_against_is_a_usage_error(db_path):
    r = subprocess.run(
        [
            console_script(),
            "replay",
            "--db",
            str(db_path),
            "--to-url",
            "http://127.0.0.1:9/v1",
            "--against",
            "echo",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "give --against SPEC or --to-url URL, not both" in r.stderr

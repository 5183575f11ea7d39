"""What the proxy records of credentials a request carries beyond its own key."""

from __future__ import annotations

import json

import openai
import pytest

from .fake_upstream import FakeUpstream
from .proxy_support import OPENAI_KEY, call_events, finished_calls, proxy_to, store_bytes

SECRET = "hunter2-not-a-key-shape"


@pytest.mark.parametrize("inject", [False, True])
def test_credential_named_values_are_masked_whatever_key_the_client_sends(store, db_path, inject):
    """Values under credential names (``api_key``, ``password``...) are masked as the
    recorder masks them elsewhere, also when the client sends its own key (the request's
    scrubber is added to the redactor, not swapped in for it) or the proxy injects one."""
    settings = {"inject": {"openai": "sk-proj-injectedkey9876543210zyx"}} if inject else {}
    with FakeUpstream() as up, proxy_to(up, store, **settings) as proxy:
        client = openai.OpenAI(
            base_url=proxy.url + "/v1",
            api_key=OPENAI_KEY,
            default_headers={"X-LLM-Events-Metadata": json.dumps({"password": SECRET})},
        )
        for _ in range(2):  # the second one through the remembered redactions
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                extra_body={"metadata": {"api_key": SECRET, "team": "blue"}},
            )
        sent = json.loads(up.seen[-1]["body"])
    assert sent["metadata"] == {"api_key": SECRET, "team": "blue"}  # forwarded unchanged
    for call_id in finished_calls(store, 2):
        events = call_events(store, call_id)
        started = events["attempt_started"][0]
        assert started.params["body"]["metadata"] == {"api_key": "[REDACTED]", "team": "blue"}
        assert events["call_started"][0].metadata == {"password": "[REDACTED]"}
    store.flush()
    assert SECRET.encode() not in store_bytes(db_path)

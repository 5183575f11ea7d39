"""Cassette mode: a user's test suite records once, then runs offline from the store."""

from __future__ import annotations

import socket

import pytest

import replay
from llm_events import ContextBuilder, LLMClient, LLMResult, StoreError, client_from_spec
from replay import CassetteMiss, RecordedClient, RecordingClient

from .helpers import read_db
from .test_replay_clients import record_calls

QUESTIONS = ["What is the refund window?", "Which regions store data?", "How do I export data?"]


class Remote(LLMClient):
    """Stands in for a paid remote model: counts requests; ``offline`` makes it refuse."""

    backend_name = "remote"

    def __init__(self, offline: bool = False, temperature: float = 0.0) -> None:
        super().__init__("big-model", params={"temperature": temperature})
        self.requests = 0
        self.offline = offline

    def _generate(self, prompt, *, context_builder):
        if self.offline:
            raise ConnectionError("the network is not available in this test")
        self.requests += 1
        return LLMResult(text=f"answer {self.requests}: {prompt.user}", parsed={"n": self.requests})


def users_suite(client: LLMClient) -> list[str]:
    """What a user's own test suite does with the client it is handed."""
    builder = ContextBuilder(system="Be brief.")
    return [
        client.generate(builder.build_prompt(q), context_builder=builder).text for q in QUESTIONS
    ]


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_record_once_then_run_offline(tmp_path, db_path, no_network):
    cassette = tmp_path / "cassette.db"
    remote = Remote()
    first = users_suite(RecordingClient(remote, cassette, mode="once"))
    assert remote.requests == 3
    assert first[0] == "answer 1: What is the refund window?"

    offline = Remote(offline=True)
    second = users_suite(RecordingClient(offline, cassette, mode="once"))
    assert second == first
    assert offline.requests == 0

    # the recordings live in the cassette; the replays were recorded as ordinary calls
    cassette_calls = read_db(cassette).execute("SELECT backend FROM calls").fetchall()
    assert cassette_calls == [("remote",)] * 3
    here = read_db(db_path).execute("SELECT backend, status FROM calls").fetchall()
    assert here == [("recorded", "ok")] * 3


def test_a_recorded_answer_keeps_text_parsed_and_tokens(tmp_path):
    cassette = tmp_path / "c.db"
    builder = ContextBuilder()
    prompt = builder.build_prompt(QUESTIONS[0])
    live = RecordingClient(Remote(), cassette).generate(prompt, context_builder=builder)
    again = RecordingClient(Remote(offline=True), cassette).generate(
        prompt, context_builder=builder
    )
    assert (again.text, again.parsed) == (live.text, live.parsed)
    assert again.output_tokens == live.output_tokens
    assert again.raw["backend"] == "recorded"


def test_an_unseen_prompt_names_the_nearest_recorded_one(tmp_path):
    cassette = tmp_path / "c.db"
    users_suite(RecordingClient(Remote(), cassette))
    client = RecordingClient(Remote(offline=True), cassette, mode="once")
    builder = ContextBuilder(system="Be brief.")
    with pytest.raises(CassetteMiss) as info:
        client.generate(builder.build_prompt("What is the refund period?"), context_builder=builder)
    message = str(info.value)
    assert message.startswith(
        f"no recorded answer in {cassette} for prompt 'What is the refund period?'"
    )
    assert "record mode 'once' does not record new prompts" in message
    assert "nearest recorded prompt: 'What is the refund window?' (similarity 0.8" in message


def test_model_parameters_are_part_of_the_match(tmp_path):
    cassette = tmp_path / "c.db"
    users_suite(RecordingClient(Remote(temperature=0.0), cassette))
    warmer = RecordingClient(Remote(offline=True, temperature=0.7), cassette, mode="none")
    with pytest.raises(CassetteMiss, match="nearest recorded prompt: 'What is the refund window"):
        users_suite(warmer)


def test_record_modes(tmp_path):
    cassette = tmp_path / "c.db"
    builder = ContextBuilder(system="Be brief.")
    remote = Remote()
    RecordingClient(remote, cassette).generate(
        builder.build_prompt(QUESTIONS[0]), context_builder=builder
    )
    assert remote.requests == 1

    # new: replays what it has, records what it lacks
    new = RecordingClient(remote, cassette, mode="new")
    assert users_suite(new)[0] == "answer 1: What is the refund window?"
    assert remote.requests == 3
    # all: always records again through the real client
    users_suite(RecordingClient(remote, cassette, mode="all"))
    assert remote.requests == 6
    # none: only replays (the latest recording wins)
    assert users_suite(RecordingClient(Remote(offline=True), cassette, mode="none"))[0] == (
        "answer 4: What is the refund window?"
    )
    with pytest.raises(ValueError, match="unknown record mode 'sometimes'"):
        RecordingClient(remote, cassette, mode="sometimes")


def test_none_mode_on_an_empty_cassette(tmp_path):
    client = RecordingClient(Remote(offline=True), tmp_path / "empty.db", mode="none")
    with pytest.raises(CassetteMiss, match="the cassette holds no prompts"):
        users_suite(client)


def test_recorded_spec_answers_any_model_for_the_same_prompt(tmp_path):
    cassette = tmp_path / "c.db"
    users_suite(RecordingClient(Remote(), cassette))
    client = client_from_spec(f"recorded:{cassette}")
    assert isinstance(client, RecordedClient)
    assert users_suite(client)[2] == "answer 3: How do I export data?"
    with pytest.raises(StoreError, match="no cassette at .*missing.db"):
        client_from_spec(f"recorded:{tmp_path / 'missing.db'}")


def test_replay_against_a_cassette(tmp_path, store):
    """Replay this store's calls against answers recorded elsewhere (deterministic, offline)."""
    calls = record_calls(4)
    cassette = tmp_path / "c.db"
    from llm_events import EventStore, configure

    other = EventStore(cassette)
    configure(db=other)
    record_calls(3, client=client_from_spec("echo:upper"))  # the cassette knows #0..#2 only
    configure(db=store)
    report = replay.run(store, f"recorded:{cassette}", compare="normalized")
    assert report.counts == {"same": 3, "changed": 0, "error": 1}
    missing = report.result(calls[3])
    assert missing.reason.startswith("CassetteMiss: no recorded answer in")
    assert "nearest recorded prompt: 'question #" in missing.reason

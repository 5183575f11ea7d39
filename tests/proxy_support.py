"""What the proxy and transport tests share: a fake upstream and a proxy in this process,
and reading back what the store holds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llm_events.capture.server import ProxySettings, ProxyThread, build_app
from llm_events.log import events as ev
from llm_events.log.store import EventStore
from llm_events.providers import adapter_for_path

from .corpus import Case
from .fake_upstream import FakeUpstream

OPENAI_KEY = "sk-proj-testkey0123456789abcdefXYZ"
ANTHROPIC_KEY = "sk-ant-api03-testkey0123456789abcdefXYZ"


@contextmanager
def proxy_to(
    up: FakeUpstream, store: EventStore | None, **settings: object
) -> Iterator[ProxyThread]:
    """A proxy on 127.0.0.1 whose openai and anthropic upstreams are the fake one."""
    s = ProxySettings(
        upstreams={"openai": up.url + "/v1", "anthropic": up.url, "ollama": up.url},
        **settings,  # type: ignore[arg-type]
    )
    with ProxyThread(build_app(s, store)) as proxy:
        yield proxy


def finished_calls(store: EventStore, n: int, timeout: float = 20.0) -> list[str]:
    """Wait until ``n`` calls have their ``call_finished`` (the proxy commits the outcome
    once the answer has passed), and return their ids in order."""
    deadline = time.monotonic() + timeout
    while True:
        ids = [s.event.call_id for s in store.iter_events(types=["call_finished"])]
        if len(ids) >= n or time.monotonic() > deadline:
            return ids
        time.sleep(0.02)


def call_events(store: EventStore, call_id: str) -> dict[str, list[ev.Event]]:
    """The events of one call, by type."""
    out: dict[str, list[ev.Event]] = {}
    for s in store.call_events(call_id):
        out.setdefault(s.event.type_name, []).append(s.event)
    return out


def prompt_of(store: EventStore, call_id: str) -> ev.PromptBuilt:
    started = call_events(store, call_id)["call_started"][0]
    found = store.get_event(started.prompt_id)
    assert found is not None
    return found.event


def store_bytes(db: Path) -> bytes:
    """Every byte of the store: the database and its -wal and -shm files."""
    out = b""
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def parsed_answer(case: Case):
    """What the provider adapter (checked against the SDKs) makes of the case's answer."""
    adapter = adapter_for_path(case.path)
    if not case.stream:
        return adapter.parse_response(case.body, case.headers())
    parser = adapter.stream_parser(case.headers())
    parser.feed(case.body)
    parser.close()
    return parser.response()


def stream_reports_error(case: Case) -> bool:
    """Whether the case is a 200 stream that reports an error inside (a failed attempt)."""
    if not case.stream:
        return False
    parser = adapter_for_path(case.path).stream_parser(case.headers())
    parser.feed(case.body)
    parser.close()
    return parser.error is not None

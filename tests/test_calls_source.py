"""``calls.source``: where each call came from (application, replay, import, proxy, ...)."""

from __future__ import annotations

import sqlite3

import llm_events
from llm_events.log import events as ev
from llm_events.recording.recorder import call_options


def sources(db_path):
    llm_events.flush()
    conn = sqlite3.connect(db_path)
    try:
        return dict(conn.execute("SELECT call_id, source FROM calls").fetchall())
    finally:
        conn.close()


def test_recorded_calls_name_their_source(db_path, builder):
    client = llm_events.client_from_spec("echo")
    app = client.generate(builder.build_prompt("q"), context_builder=builder).call_id
    with call_options(parent_call_id=app, tags=["replay", "replay:r1"]):
        replayed = client.generate(builder.build_prompt("q"), context_builder=builder).call_id
    with call_options(source="proxy"):
        proxied = client.generate(builder.build_prompt("q"), context_builder=builder).call_id
    assert sources(db_path) == {app: "application", replayed: "replay", proxied: "proxy"}
    store = llm_events.open_store(db_path)
    started = [s.event for s in store.iter_events(types=["call_started"])]
    assert [e.source for e in started] == ["application", "replay", "proxy"]


def test_older_events_without_source_get_it_derived(db_path):
    store = llm_events.open_store(db_path)
    prompt = ev.PromptBuilt(id="p-imp", ts=ev.now_iso(), prompt_id="p-imp", builder="llm_import")

    def started(call_id, **kw):
        return ev.CallStarted(id=f"s-{call_id}", ts=ev.now_iso(), call_id=call_id, v=2, **kw)

    store.append(
        [
            prompt,
            started("app", client="echo"),
            started("child", parent_call_id="app"),
            started("tagged", tags=["replay"]),
            started("imported", prompt_id="p-imp"),
            started("legacy", client="legacy PromptDB"),
            started("llm", tags=["llm-import"]),
        ]
    )
    assert sources(db_path) == {
        "app": "application",
        "child": "replay",
        "tagged": "replay",
        "imported": "import",
        "legacy": "import",
        "llm": "import",
    }

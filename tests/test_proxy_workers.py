"""``llm-events proxy --workers N`` as real processes: N workers on one port, one store."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from llm_events.log.store import EventStore

from .fake_upstream import OPENAI_TEXT, FakeUpstream, Scripted
from .proxy_support import OPENAI_KEY, call_events, finished_calls
from .test_proxy_cli import ProxyProcess

STREAM = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}


def workers_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def gone(pid: int, timeout: float = 30.0) -> bool:
    """Wait until process ``pid`` no longer exists (or is a zombie nobody reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


def started_pid(store: EventStore, timeout: float = 20.0) -> tuple[str, int]:
    """The call id and worker pid of the one call whose write-ahead is committed."""
    deadline = time.monotonic() + timeout
    while True:
        started = [s.event for s in store.iter_events(types=["call_started"])]
        if started or time.monotonic() > deadline:
            (one,) = started
            return one.call_id, one.pid
        time.sleep(0.02)


def stream_in_flight(proxy: ProxyProcess, up: FakeUpstream) -> tuple[openai.OpenAI, object]:
    """A streamed call (prompt "killed") whose first chunk has arrived and whose upstream
    answers the rest half a second later: a worker holds it open."""
    up.script(Scripted(delay_s=0.5))
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "killed"}], stream=True
    )
    next(iter(stream))
    return client, stream


def test_two_workers_serve_and_record_every_request_then_stop_gracefully(db_path):
    with FakeUpstream() as up:
        proxy = ProxyProcess(db_path, up.url, "--workers", "2")
        assert "(2 worker processes)" in proxy.first_line
        assert f"recording to {db_path}" in proxy.first_line
        workers = workers_of(proxy.proc.pid)
        assert len(workers) == 2

        def one(i: int) -> str:
            # a client (and connection) each: the kernel spreads connections over workers
            client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
            with client:
                r = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
                )
            return r.choices[0].message.content

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(40)))
        assert answers == [OPENAI_TEXT] * 40
        # one in flight at SIGTERM: it finishes, in whichever worker has it
        up.script(Scripted(delay_s=0.15))
        with (
            httpx.Client() as client,
            client.stream("POST", proxy.url + "/v1/chat/completions", json=STREAM) as response,
        ):
            chunks = response.iter_raw()
            received = next(chunks)
            proxy.proc.send_signal(signal.SIGTERM)
            received += b"".join(chunks)
        assert received.endswith(b"data: [DONE]\n\n")
        code, err = proxy.stop()
    assert code == 0, err
    assert err.count("upstream=openai status=200") == 41
    assert "llm-events proxy stopped" in err and "Traceback" not in err
    assert all(gone(pid) for pid in workers)
    store = EventStore(db_path)
    ids = finished_calls(store, 41)
    assert len(set(ids)) == 41
    statuses = {call_events(store, c)["call_finished"][0].status for c in ids}
    assert statuses == {"ok"}
    users = sorted(
        s.event.user for s in store.iter_events(types=["prompt_built"]) if s.event.user != "x"
    )
    assert users == sorted(f"q{i}" for i in range(40))
    # recorded by the workers themselves, and the projections were caught up for them
    pids = {s.event.pid for s in store.iter_events(types=["call_started"])}
    assert pids <= set(workers)
    assert store.lag() == 0
    (n,) = store.conn().execute("SELECT count(*) FROM calls WHERE status = 'ok'").fetchone()
    assert n == 41


def test_a_killed_worker_is_replaced_and_its_call_closed_as_interrupted(db_path):
    with FakeUpstream() as up:
        proxy = ProxyProcess(db_path, up.url, "--workers", "2")
        client, stream = stream_in_flight(proxy, up)
        store = EventStore(db_path)
        call_id, pid = started_pid(store)
        assert pid in workers_of(proxy.proc.pid)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(Exception):  # noqa: B017 - the stream breaks as a direct one would
            for _ in stream:
                pass
        # the supervisor closes the call and starts another worker; the port still serves
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = call_events(store, call_id).get("call_finished")
            if found:
                break
            time.sleep(0.05)
        again = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "after"}]
        )
        assert again.choices[0].message.content == OPENAI_TEXT
        assert len(workers_of(proxy.proc.pid)) == 2 and pid not in workers_of(proxy.proc.pid)
        code, err = proxy.stop(signal.SIGINT)
    assert code == 0, err
    assert f"worker {pid} ended (status -9); restarting it" in err
    assert "closed 1 call(s) left running by an ended process as Interrupted" in err
    events = call_events(store, call_id)
    assert events["prompt_built"][0].user == "killed"
    assert events["attempt_failed"][0].error_type == "Interrupted"
    assert events["call_finished"][0].error_type == "Interrupted"
    assert len(finished_calls(store, 2)) == 2


def test_sigkill_of_the_supervisor_takes_its_workers_then_restart_closes_the_call(db_path):
    with FakeUpstream() as up:
        proxy = ProxyProcess(db_path, up.url, "--workers", "2")
        workers = workers_of(proxy.proc.pid)
        client, stream = stream_in_flight(proxy, up)
        store = EventStore(db_path)
        call_id, _ = started_pid(store)
        proxy.proc.kill()
        proxy.proc.wait(30)
        assert all(gone(pid) for pid in workers)  # the kernel killed them with it
        with pytest.raises(Exception):  # noqa: B017
            for _ in stream:
                pass
        assert "call_finished" not in call_events(store, call_id)
        store.close()
        again = ProxyProcess(db_path, up.url, "--workers", "2")
        code, err = again.stop(signal.SIGTERM)
    assert code == 0, err
    assert "closed 1 call(s) left running by an ended process as Interrupted" in err
    store = EventStore(db_path)
    assert call_events(store, call_id)["call_finished"][0].error_type == "Interrupted"


def test_token_is_required_of_every_worker(db_path):
    with FakeUpstream() as up:
        proxy = ProxyProcess(db_path, up.url, "--workers", "2", "--token", "s3cret-token")
        assert "clients must send X-LLM-Events-Token" in proxy.first_line
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "t"}]}
        with ThreadPoolExecutor(4) as pool:
            refused = list(
                pool.map(
                    lambda _: httpx.post(proxy.url + "/v1/chat/completions", json=body), range(8)
                )
            )
            allowed = list(
                pool.map(
                    lambda _: httpx.post(
                        proxy.url + "/v1/chat/completions",
                        json=body,
                        headers={"X-LLM-Events-Token": "s3cret-token"},
                    ),
                    range(8),
                )
            )
        code, err = proxy.stop()
    assert code == 0, err
    assert [r.status_code for r in refused] == [401] * 8
    assert [r.status_code for r in allowed] == [200] * 8
    assert len(up.app.seen) == 8 and all(
        "x-llm-events-token" not in seen["headers"] for seen in up.app.seen
    )


def test_a_zombie_process_counts_as_ended():
    """A killed worker stays a zombie where init does not reap orphans (containers): its
    calls must still be closed."""
    import subprocess

    from llm_events.log import processes

    proc = subprocess.Popen(["sleep", "30"])
    me = processes.current()
    key = None
    if me.process is not None:
        key = "/".join([*me.process.split("/")[:3], processes.start_time(proc.pid) or "?"])
    assert processes.state(me.host, proc.pid, key) == processes.ALIVE
    proc.kill()
    assert gone(proc.pid)  # a zombie: not reaped yet
    assert Path(f"/proc/{proc.pid}").exists()
    assert processes.state(me.host, proc.pid, key) == processes.ENDED
    proc.wait()

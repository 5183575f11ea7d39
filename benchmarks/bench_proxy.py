"""Proxy benchmarks (issue 11): what ``llm-events proxy`` adds to a call, and how many it carries.

Run ``python benchmarks/bench_proxy.py`` (``--quick`` for a shorter run); one JSON document
on stdout, progress on stderr.  Three processes on the machine: the fake upstream
(``tests/fake_upstream.py``: answers at once, as the OpenAI API reference shapes its bodies
and streams), the proxy (``llm-events proxy``, as a user runs it, access log on), and this
load generator, which speaks HTTP/1.1 over raw asyncio streams with keep-alive so that
measuring costs as little CPU as possible (the machine has 2 cores for all three).

* ``latency``: an open loop at a fixed rate (200 requests/s) for a few seconds, direct to the
  upstream and through the proxy (recording on), non-streamed and streamed; latency is from
  the request's scheduled time to the last byte; time to first chunk from sending to the
  first body byte.
  ``added_*`` = through the proxy minus direct, at the same percentile, in the same run.
* ``throughput``: closed loops of 1 and 64 concurrent clients, direct / proxy not recording
  (``--no-record``) / proxy recording, non-streamed and streamed; requests per second.
  ``recording_cost`` = 1 - recorded/unrecorded requests per second.  Each proxy figure is
  measured for ``--workers 1`` and ``--workers 2`` side by side (keys ending ``_w2``); a
  proxy's CPU per request sums the supervisor and its workers.
* ``litellm``: the same throughput loop through LiteLLM's proxy, when it is installed in
  ``.venv-litellm`` (the anchor the issue names); otherwise why not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-proj-benchmarkkey0123456789abcdefXYZ"
BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
).encode()
STREAM_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], "stream": True}
).encode()


#: Pause before each measured loop, and at least this long after it (see ``closed_loop``).
SETTLE_S = 0.5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- a minimal HTTP/1.1 client: cheap enough not to be what is measured --------------------


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def post(self, path: str, body: bytes) -> tuple[int, float, int]:
        """(status, seconds to the first body byte, body bytes); keeps the connection."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        t0 = time.perf_counter()
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), self.port, KEY.encode(), len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        first = None
        size = 0
        m = re.search(rb"content-length:\s*(\d+)", lower)
        if m:
            n = int(m.group(1))
            data = await self.reader.readexactly(n)
            first = time.perf_counter() - t0
            size = len(data)
        else:  # chunked
            while True:
                line = await self.reader.readuntil(b"\r\n")
                n = int(line.strip().split(b";")[0], 16)
                data = await self.reader.readexactly(n + 2)
                if first is None:
                    first = time.perf_counter() - t0
                if n == 0:
                    break
                size += n
        return status, first or 0.0, size


# --- processes ---------------------------------------------------------------------------


def start_upstream() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_upstream.py")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


def start_proxy(
    upstream_port: int, db: Path, record: bool, workers: int = 1
) -> tuple[subprocess.Popen, int]:
    script = Path(sys.executable).parent / "llm-events"
    args = [str(script), "proxy", "--port", "0", "--db", str(db), "--workers", str(workers)]
    args += ["--upstream", f"openai=http://127.0.0.1:{upstream_port}/v1"]
    if not record:
        args.append("--no-record")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"proxy did not start: {line!r}")
    return proc, int(m.group(1))


def start_litellm(upstream_port: int) -> tuple[subprocess.Popen | None, int, str]:
    venv = ROOT / ".venv-litellm"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        return None, 0, f"not installed ({exe} missing: pip install 'litellm[proxy]' there)"
    config = Path(tempfile.mkdtemp()) / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n      api_key: {KEY}\n"
        "litellm_settings:\n  telemetry: false\n"
    )
    port = _free_port()
    proc = subprocess.Popen(
        [str(exe), "--config", str(config), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # its clients authenticate with the master key; ours send KEY
        env=dict(os.environ, LITELLM_LOG="ERROR", NO_DOCS="True", LITELLM_MASTER_KEY=KEY),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            asyncio.run(_one("127.0.0.1", port, "/v1/chat/completions", BODY))
            return proc, port, ""
        except OSError:
            time.sleep(0.5)
        except Exception as e:  # started but answering wrongly
            proc.kill()
            return None, 0, f"started but failed a request: {e}"
    proc.kill()
    return None, 0, "did not start within 120 s"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _one(host: str, port: int, path: str, body: bytes) -> int:
    c = Conn(host, port)
    try:
        status, _, _ = await c.post(path, body)
        return status
    finally:
        c.close()


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


# --- loads -------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def open_loop(port: int, body: bytes, rate: float, seconds: float) -> dict[str, float]:
    """Requests scheduled at ``rate`` per second; latency from each scheduled time."""
    idle: list[Conn] = []
    lat: list[float] = []
    first: list[float] = []
    errors = 0
    n = int(rate * seconds)
    t0 = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        nonlocal errors
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = idle.pop() if idle else Conn("127.0.0.1", port)
        try:
            status, ttfb, _ = await conn.post("/v1/chat/completions", body)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            conn.close()
            return
        end = time.perf_counter()
        if status != 200:
            errors += 1
        lat.append(end - at)
        first.append(ttfb)
        idle.append(conn)

    # warm-up: connections and the proxy's upstream pool
    await asyncio.gather(*(_warm(idle, port, body) for _ in range(8)))
    await asyncio.gather(*(one(i) for i in range(n)))
    for c in idle:
        c.close()
    ms = [x * 1000 for x in lat]
    return {
        "requests": n,
        "errors": errors,
        "p50_ms": round(pct(ms, 50), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "ttfb_p50_ms": round(pct([x * 1000 for x in first], 50), 3),
        "ttfb_p99_ms": round(pct([x * 1000 for x in first], 99), 3),
    }


async def _warm(idle: list[Conn], port: int, body: bytes) -> None:
    c = Conn("127.0.0.1", port)
    for _ in range(5):
        await c.post("/v1/chat/completions", body)
    idle.append(c)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time so far of a process and its live children (the proxy's
    workers), from Linux /proc."""
    if pid is None:
        return 0.0
    total = 0
    for one in (pid, *children(pid)):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


async def idle_cpu(pid: int | None, most_s: float = 30.0) -> float:
    """The process tree's CPU seconds once it has stopped using any (deferred work done)."""
    last = cpu_seconds(pid)
    deadline = time.monotonic() + most_s
    await asyncio.sleep(SETTLE_S)
    while time.monotonic() < deadline:
        now = cpu_seconds(pid)
        if now - last < 0.02:  # under 2 clock ticks in the last interval: idle
            return now
        last = now
        await asyncio.sleep(0.5)
    return cpu_seconds(pid)


async def closed_loop(
    port: int, body: bytes, concurrency: int, seconds: float, pid: int | None = None
) -> dict[str, float]:
    """``concurrency`` clients back to back; with ``pid``, that server's CPU per request
    (a figure the machine's load distorts less than requests per second)."""
    done = 0
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        c = Conn("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                status, _, _ = await c.post("/v1/chat/completions", body)
                done += 1
                errors += status != 200
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            c.close()

    # warm-up
    await asyncio.gather(*(_warm([], port, body) for _ in range(min(concurrency, 8))))
    await asyncio.sleep(SETTLE_S)  # the warm-up's deferred work is done before we count
    t0, c0 = time.perf_counter(), cpu_seconds(pid)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    # the CPU the loop's requests cost includes work deferred while they came (the proxy's
    # supervisor catches projections up once requests pause): counted once it is idle
    used = await idle_cpu(pid) - c0
    out = {"requests": done, "errors": errors, "rps": round(done / elapsed, 1)}
    if pid is not None and done:
        out["server_cpu_ms_per_request"] = round(used * 1000 / done, 3)
        out["server_cpu_share"] = round(used / elapsed, 2)
    return out


def _loop_policy() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 2],
        help="proxy worker counts measured side by side (default 1,2)",
    )
    args = parser.parse_args()
    _loop_policy()
    secs = 3.0 if args.quick else 8.0
    tput_secs = 2.0 if args.quick else 5.0
    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    upstream, up_port = start_upstream()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg()[0],
        },
        "rate": args.rate,
    }
    procs = []
    try:
        # per worker count: (recording proxy, its port), (forwarding-only proxy, its port)
        proxies: dict[int, tuple[tuple[subprocess.Popen, int], tuple[subprocess.Popen, int]]] = {}
        for w in args.workers:
            rec = start_proxy(up_port, tmp / f"events-w{w}.db", record=True, workers=w)
            norec = start_proxy(up_port, tmp / f"unused-w{w}.db", record=False, workers=w)
            proxies[w] = (rec, norec)
            procs += [rec[0], norec[0]]
        latency: dict[str, Any] = {}
        for kind, body in (("plain", BODY), ("stream", STREAM_BODY)):
            log(f"latency {kind} at {args.rate}/s")
            d = asyncio.run(open_loop(up_port, body, args.rate, secs))
            row: dict[str, Any] = {"direct": d}
            for w, ((_, rec_port), _) in proxies.items():
                p = asyncio.run(open_loop(rec_port, body, args.rate, secs))
                suffix = "" if w == 1 else f"_w{w}"
                row[f"proxy{suffix}"] = p
                row[f"added_p50_ms{suffix}"] = round(p["p50_ms"] - d["p50_ms"], 3)
                row[f"added_p99_ms{suffix}"] = round(p["p99_ms"] - d["p99_ms"], 3)
                row[f"added_ttfb_p50_ms{suffix}"] = round(p["ttfb_p50_ms"] - d["ttfb_p50_ms"], 3)
            latency[kind] = row
        results["latency"] = latency
        tput: dict[str, Any] = {}
        for kind, body in (("plain", BODY), ("stream", STREAM_BODY)):
            for conc in (1, 64):
                log(f"throughput {kind} c={conc}")
                row = {
                    "direct": asyncio.run(closed_loop(up_port, body, conc, tput_secs, upstream.pid))
                }
                for w, ((rec, rec_port), (norec, norec_port)) in proxies.items():
                    suffix = "" if w == 1 else f"_w{w}"
                    row[f"proxy_no_record{suffix}"] = asyncio.run(
                        closed_loop(norec_port, body, conc, tput_secs, norec.pid)
                    )
                    row[f"proxy_record{suffix}"] = asyncio.run(
                        closed_loop(rec_port, body, conc, tput_secs, rec.pid)
                    )
                    row[f"recording_cost{suffix}"] = round(
                        1
                        - row[f"proxy_record{suffix}"]["rps"]
                        / row[f"proxy_no_record{suffix}"]["rps"],
                        3,
                    )
                tput[f"{kind}_c{conc}"] = row
        results["throughput"] = tput
        for p in procs:
            stop(p)
        procs.clear()
        import sqlite3

        results["recorded_calls"] = {}
        for w in args.workers:
            with sqlite3.connect(tmp / f"events-w{w}.db") as conn:
                results["recorded_calls"][f"workers_{w}"] = conn.execute(
                    "SELECT count(*) FROM events WHERE type = 'call_finished'"
                ).fetchone()[0]
        if not args.no_litellm:
            log("litellm")
            proc, port, why = start_litellm(up_port)
            if proc is None:
                results["litellm"] = {"skipped": why}
            else:
                procs.append(proc)
                lat = asyncio.run(open_loop(port, BODY, args.rate, secs))
                direct = results["latency"]["plain"]["direct"]
                results["litellm"] = {
                    "latency_plain": lat,
                    "added_p50_ms": round(lat["p50_ms"] - direct["p50_ms"], 3),
                    "added_p99_ms": round(lat["p99_ms"] - direct["p99_ms"], 3),
                    "plain_c1": asyncio.run(closed_loop(port, BODY, 1, tput_secs, proc.pid)),
                    "plain_c64": asyncio.run(closed_loop(port, BODY, 64, tput_secs, proc.pid)),
                }
        t = results["throughput"]["plain_c64"]
        lat = results["latency"]["plain"]
        results["targets"] = {}
        for w in args.workers:
            suffix = "" if w == 1 else f"_w{w}"
            results["targets"][f"workers_{w}"] = {
                "added_p50_le_2ms": lat[f"added_p50_ms{suffix}"] <= 2.0,
                "added_p99_le_10ms": lat[f"added_p99_ms{suffix}"] <= 10.0,
                "recorded_rps_c64_ge_1000": t[f"proxy_record{suffix}"]["rps"] >= 1000,
                "recording_cost_le_20pct": t[f"recording_cost{suffix}"] <= 0.20,
            }
        results["machine"]["load_average_at_end"] = os.getloadavg()[0]
    finally:
        for p in procs:
            stop(p)
        stop(upstream)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

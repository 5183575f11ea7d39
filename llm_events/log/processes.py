"""Which process made a call, and whether that process still runs.

``call_started`` names its process (``host``, ``pid`` and, on Linux, a ``process`` key), so
that :mod:`llm_events.interrupted` can tell a call whose process ended mid-call from one still
in flight.  The answer must never be "ended" for a process that may be alive: a pid is only
meaningful on its own machine, in its own pid namespace (a container), and until it is reused.
So the Linux key holds the machine id, the boot id (both as keyed digests), the pid namespace
and the process start time; anything this process cannot compare is ``UNKNOWN``, and unknown calls are left alone.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
from typing import NamedTuple

ALIVE = "alive"
ENDED = "ended"
UNKNOWN = "unknown"


class ProcessId(NamedTuple):
    """What ``call_started`` records of the process that made the call."""

    host: str
    pid: int
    process: str | None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), or None
    (no such process, or one that has ended: a zombie nobody reaped, as a killed proxy
    worker stays where the container's init does not reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; starttime is the
    # 22nd field, the 20th after the last ")"
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields and fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode() if len(fields) > 19 else None


def _private(value: str) -> str:
    """An application-specific digest of a machine or boot id: the ids themselves are not to
    be shown outside the machine (machine-id(5)); their digests compare all the same."""
    return hmac.new(b"llm-events process key", value.encode(), hashlib.sha256).hexdigest()[:32]


def _machine() -> tuple[str, str, str] | None:
    """(machine id, boot id, pid namespace) of this process, where Linux says; the ids as
    digests, and the machine id empty when there is none (some containers)."""
    machine_id = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id") or ""
    boot_id = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    if not boot_id:
        return None
    machine = _private(machine_id) if machine_id else ""
    return machine, _private(boot_id), namespace.removeprefix("pid:").strip("[]")


_current: ProcessId | None = None


def current() -> ProcessId:
    """This process (computed again after a fork)."""
    global _current
    pid = os.getpid()
    if _current is None or _current.pid != pid:
        machine, started = _machine(), start_time(pid)
        key = None if machine is None or started is None else "/".join((*machine, started))
        _current = ProcessId(socket.gethostname(), pid, key)
    return _current


def state(host: str | None, pid: int | None, process: str | None) -> str:
    """``ALIVE``, ``ENDED`` or ``UNKNOWN``: is the process a call names still running?"""
    me = current()
    if host is None or pid is None or host != me.host:
        return UNKNOWN
    if process is not None and me.process is not None:
        theirs, mine = process.split("/"), me.process.split("/")
        if len(theirs) != 4:
            return UNKNOWN
        if theirs[0] != mine[0]:
            return UNKNOWN  # another machine that goes by the same name
        if theirs[1] != mine[1]:
            # rebooted since, if the machine id says it is this machine
            return ENDED if theirs[0] else UNKNOWN
        if theirs[2] != mine[2]:
            return UNKNOWN  # another pid namespace (a container): its pids are not ours
        return ALIVE if start_time(pid) == theirs[3] else ENDED
    if process is not None or me.process is not None or os.name != "posix":
        return UNKNOWN  # one side cannot be keyed; on Windows, signal 0 would kill
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ENDED
    except OSError:  # PermissionError: it runs, as another user
        return ALIVE
    return ALIVE

"""One process per file follows the log for all: who it is, and whether it keeps up.

Every writing process's background thread used to catch the projections up after every
process's appends.  With 8 processes on one file each folded the others' events with its
caches emptied (another process had moved the checkpoints), held the write lock for those
folds while the others polled for it, and spent its CPU on it: per call 1.5-2.1 ms of CPU
across 8 processes against 1.0-1.6 ms with one process folding (``bench_core.py --only
processes``).  So the processes of a file elect one follower: the holder of an exclusive
``flock(2)`` on a file beside the store (``<store>-follower``), taken without waiting.  The
kernel releases it when its process ends, SIGKILL included, and the next process whose
background thread looks takes the role.

The others' background threads leave the projections to the follower, which also watches
for their commits (``PRAGMA data_version``).  Nothing else changes: flush, close, exit, an
open and every read the library makes still catch up themselves (read-your-writes), and
where ``flock`` fails (some network file systems) every process follows, as before.
A follower that lives but stops applying (stopped, stuck) is passed over: a process that
finds the projections no further than :data:`STALE_S` ago catches up itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import weakref

#: The file beside the store whose lock is the role (never removed: a lock file unlinked
#: while a process holds it would let the next opener lock a new file, electing two).
SUFFIX = "-follower"
#: A non-follower catches up itself once the projections have not passed, in this long,
#: the head of the log it saw.
STALE_S = 0.5


class FollowerRole:
    """Whether this process follows the log of a file (see the module docstring): taken
    without waiting, kept until :meth:`close` or the end of the process."""

    def __init__(self, db_path: str) -> None:
        self.path = os.path.realpath(db_path) + SUFFIX
        self._fd: int | None = None
        self._pid = 0  # the process whose descriptor ``_fd`` is (a fork inherits it)
        self._mine = False
        #: flock works here (False: every process follows, as before the role existed)
        self.elected = True
        self._seen: tuple[int, float] | None = None  # (head, when) last seen unapplied
        _roles.add(self)

    def mine(self) -> bool:
        """True if this process follows (taking the role if no live process holds it), or
        if flock fails here (then every process follows)."""
        if not self.elected:
            return True
        if self._pid != os.getpid():  # first look, or a fork: the parent's lock is its own
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)  # (closing keeps the parent's lock: it holds it too)
            self._fd, self._mine = None, False
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                self.elected = False
                return True
            self._pid = os.getpid()
        if self._mine:
            return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:
            self.elected = False
            return True
        self._mine = True
        return True

    def keeps_up(self, head: int, applied: int) -> bool:
        """For a process that does not follow: False once the projections (at ``applied``)
        have not reached, in :data:`STALE_S`, a head of the log it saw (``head``)."""
        now = time.monotonic()
        if applied >= head:
            self._seen = None
        elif self._seen is None or applied >= self._seen[0]:
            self._seen = (head, now)  # (the follower got past what was seen last)
        elif now - self._seen[1] > STALE_S:
            self._seen = None
            return False
        return True

    @property
    def watching(self) -> bool:
        """This process holds the role through a lock (it watches for others' commits)."""
        return self.elected and self._mine and self._pid == os.getpid()

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)  # (releases the lock)
        self._fd, self._pid, self._mine = None, 0, False


_roles: weakref.WeakSet[FollowerRole] = weakref.WeakSet()


def _forget_in_child() -> None:
    """A forked child closes the descriptors it inherited: one left open would keep its
    parent's role locked after the parent ends, and no process would take it."""
    for role in list(_roles):
        if role._fd is not None:
            with contextlib.suppress(OSError):
                os.close(role._fd)
        role._fd, role._pid, role._mine = None, 0, False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)

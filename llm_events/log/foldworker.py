"""The folding half of a pipelined rebuild, run as ``python -m llm_events.log.foldworker``.

A rebuild's two halves take about as long as each other on 1,000,000 events: reading,
decoding and folding the events (Python), and writing the rows (SQLite, one writer).  This
process does the first on a read connection of its own, so the rebuilding process only
writes: the two run on two CPUs.  It folds with the projections' own ``apply`` on a
:class:`Recorder` that stands for the write connection: reads of the log go to the file,
writes are recorded, in order, and sent (MessagePack, length-prefixed, on stdout) to the
rebuilding process, which runs them in its own transactions (``rebuilding.pipelined``).
So the rows are those the same code writes when it folds in the rebuilding process.

What the folds learn from the write connection, the recorder answers as if every row
written was new (the rebuild emptied the tables) and every statement succeeded.  Each read
of ``total_changes`` is recorded, and the rebuilding process checks it against what its
connection says; on any difference, or any error of a recorded statement (an integer too
large for SQLite, which the folds would have written again as NULL), it rolls the chunk
back, stops this process and folds the rest itself.

It exits when stdin closes (the rebuilding process is done, or gone).
"""

from __future__ import annotations

import os
import pickle
import queue
import sqlite3
import struct
import sys
import threading
from collections.abc import Sequence
from typing import Any

import msgspec

from . import catchup, salvage
from .projections import default_projections

#: Chunks folded ahead of the writer at most (memory: about 1 MB each).
AHEAD = 16
#: How much of the file the read connection maps (SQLite reads pages in place).
MMAP_BYTES = 1 << 40
_HEADER = struct.Struct("<Q")
#: Messages as MessagePack: SQLite's values (integers, floats, text, bytes, NULL) exactly,
#: in about half the time of ``pickle`` both ways; a value it cannot hold (an integer past
#: 64 bits) fails the chunk, which the rebuilding process then folds itself.
_encode = msgspec.msgpack.Encoder().encode


class _NoResult:
    """What a recorded write returns: nothing the folds read (using it fails the chunk)."""


class Recorder:
    """The write connection as the folds see it: ``SELECT`` on the file, writes recorded.

    ``ops``: ``("x", sql, params)``, ``("m", sql, rows)`` and ``("c", n)`` (a read of
    ``total_changes``, which counts every recorded row as one change).
    """

    def __init__(self, read: sqlite3.Connection) -> None:
        self.read = read
        self.ops: list[tuple] = []
        self._changes = 0

    @property
    def total_changes(self) -> int:
        self.ops.append(("c", self._changes))
        return self._changes

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if sql.lstrip()[:6].upper() == "SELECT":
            return self.read.execute(sql, params)
        self.ops.append(("x", sql, tuple(params)))
        self._changes += 1
        return _NoResult()

    def executemany(self, sql: str, rows: Any) -> Any:
        rows = list(rows)
        self.ops.append(("m", sql, rows))
        self._changes += len(rows)
        return _NoResult()


def fold(path: str, names: Sequence[str], chunk: int, put: Any) -> None:
    """Fold the whole log at ``path`` into fresh projections ``names`` from checkpoint 0,
    ``chunk`` events at a time, giving ``put`` ``(True, message)`` for each chunk (the
    message encoded), then ``(False, message)`` for ``("done",)``."""
    read = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    read.execute("PRAGMA query_only = 1")
    read.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")  # the log read with no copy per page
    by_name = {p.name: p for p in default_projections()}
    projections = [by_name[name] for name in names]  # in the rebuilding store's order
    for p in projections:
        p.bulk(True)
        p.applied_upto = 0
    marks = dict.fromkeys((p.name for p in projections), 0)
    recorder = Recorder(read)
    salvage.drain()
    while True:
        start = min(marks.values())  # (all equal: every projection starts at 0)
        rows = catchup.read_after(read, start, chunk)
        if not rows:
            put((False, _encode(("done",))))
            return
        recorder.ops = []
        recorder._changes = 0
        catchup.apply_rows(recorder, projections, marks, rows)  # type: ignore[arg-type]
        last = rows[-1][0]
        marks = dict.fromkeys(marks, last)
        message = ("chunk", len(rows), start, last, recorder.ops, salvage.drain())
        put((True, _encode(message)))


def main() -> int:
    args = pickle.load(sys.stdin.buffer)  # noqa: S301 - from the process that started us
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the messages
    ahead: queue.Queue = queue.Queue(AHEAD)

    def sender() -> None:
        try:
            while True:
                more, data = ahead.get()
                out.write(_HEADER.pack(len(data)))
                out.write(data)
                out.flush()
                if not more:
                    break
        except OSError:  # the rebuilding process is gone
            pass
        os._exit(0)

    def watch_stdin() -> None:
        sys.stdin.buffer.read()  # returns when the rebuilding process closes it, or dies
        os._exit(0)

    threading.Thread(target=sender, daemon=True).start()
    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        fold(args["path"], args["names"], args["chunk"], ahead.put)
    except BaseException as e:  # noqa: BLE001 - reported: the rebuilding process folds itself
        ahead.put((False, _encode(("error", repr(e)))))
    threading.Event().wait()  # the sender exits the process
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

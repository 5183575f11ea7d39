"""Worker for the crash test: append events in a loop, printing each id once committed.

Usage: python -m tests.workers.append_forever DB
"""

from __future__ import annotations

import sys

from llm_events import EventStore
from llm_events.log import events as ev


def main() -> None:
    store = EventStore(sys.argv[1])
    i = 0
    while True:
        i += 1
        call_id = ev.new_id()
        batch = [
            ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id=call_id, client="crash"),
            ev.AttemptStarted(
                id=ev.new_id(), ts=ev.now_iso(), call_id=call_id, attempt=1, backend="b"
            ),
            ev.AttemptSucceeded(
                id=ev.new_id(), ts=ev.now_iso(), call_id=call_id, attempt=1, text="x" * (i % 5000)
            ),
            ev.CallFinished(id=ev.new_id(), ts=ev.now_iso(), call_id=call_id, status="ok"),
        ]
        store.append(batch)
        sys.stdout.write("".join(f"{e.id}\n" for e in batch))
        sys.stdout.flush()


if __name__ == "__main__":
    main()

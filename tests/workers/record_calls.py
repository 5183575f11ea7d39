"""Worker for multi-process tests: N threads each record M calls into one store.

Usage: python -m tests.workers.record_calls DB THREADS CALLS TAG
Prints one line per finished call id; exits non-zero if any caller saw an error.
"""

from __future__ import annotations

import sys
import threading

import llm_events


def main() -> int:
    db, threads, calls, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    llm_events.configure(db=db)
    client = llm_events.client_from_spec("echo")
    builder = llm_events.ContextBuilder()
    errors: list[BaseException] = []
    done: list[str] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            for i in range(calls):
                prompt = builder.build_prompt(f"{tag} thread {t} call {i}")
                result = client.generate(prompt, context_builder=builder)
                with lock:
                    done.append(result.call_id)
        except BaseException as e:  # reported below: the test asserts none happened
            errors.append(e)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    sys.stdout.write("".join(f"{c}\n" for c in done))
    for e in errors:
        print(f"ERROR {type(e).__name__}: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

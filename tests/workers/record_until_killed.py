"""Worker for crash tests: THREADS threads record CALLS calls each, printing every call id
the moment ``generate`` returns it (the test may SIGKILL this process at any time).

Usage: python -m tests.workers.record_until_killed DB THREADS CALLS TAG
Every seventh call fails once and is retried (failures, retries), every eleventh fails.
"""

from __future__ import annotations

import sys
import threading

import llm_events


class Flaky(llm_events.LLMClient):
    backend_name = "flaky"

    def __init__(self) -> None:
        super().__init__("flaky-1")
        self.seen: set[str] = set()

    def _generate(self, prompt, *, context_builder):  # type: ignore[no-untyped-def]
        if prompt.user.endswith("fails") or prompt.user not in self.seen:
            self.seen.add(prompt.user)
            raise TimeoutError("slow upstream")
        return llm_events.LLMResult(text=prompt.user.upper(), input_tokens=3, output_tokens=2)


def main() -> int:
    db, threads, calls, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    llm_events.configure(db=db)
    echo = llm_events.client_from_spec("echo")
    flaky = Flaky()
    builder = llm_events.ContextBuilder()
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(calls):
            text = f"{tag} thread {t} call {i}" + (" fails" if i % 11 == 10 else "")
            prompt = builder.build_prompt(text)
            try:
                if i % 7 == 6 or i % 11 == 10:
                    result = llm_events.with_retry(
                        lambda p=prompt: flaky.generate(p, context_builder=builder),
                        attempts=2,
                        delay=0,
                    )
                else:
                    result = echo.generate(prompt, context_builder=builder)
                call_id = result.call_id
            except TimeoutError as e:
                call_id = e.llm_events_call_id  # type: ignore[attr-defined]
            with lock:
                sys.stdout.write(f"{call_id}\n")
                sys.stdout.flush()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())

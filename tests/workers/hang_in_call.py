"""Worker for the interrupted-call tests: start a recorded call that never returns.

The first attempt fails and is retried; the second one hangs after its ``attempt_started``
is committed.  Prints ``sent CALL_ID`` once the request is under way, then waits to be killed.

Usage: python -m tests.workers.hang_in_call DB
"""

from __future__ import annotations

import sys
import time

from llm_events import ContextBuilder, LLMClient, LLMResult, configure, current_call, with_retry


class Flaky(LLMClient):
    backend_name = "flaky"

    def _generate(self, prompt, *, context_builder):
        scope = current_call()
        if scope.attempt == 1:
            raise TimeoutError("first try times out")
        print(f"sent {scope.call_id}", flush=True)
        time.sleep(600)
        return LLMResult(text="never")


def main() -> None:
    configure(db=sys.argv[1])
    builder = ContextBuilder()
    client = Flaky("flaky-1")
    prompt = builder.build_prompt("Which runbook covers error E042?")
    with_retry(lambda: client.generate(prompt, context_builder=builder), attempts=3, delay=0.01)


if __name__ == "__main__":
    main()

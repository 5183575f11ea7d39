"""The replay harness: re-run recorded prompts against a new client, compare, report.

``replay.run(store, client, select=..., compare=..., concurrency=...)`` selects recorded
calls, rebuilds each Prompt from its ``prompt_built`` event, sends it to the candidate
client (recorded as an ordinary call linked to the original), compares the answers and
records a ``replay_compared`` event per call, bracketed by ``replay_started`` /
``replay_finished``.  ``llm-events replay`` is a thin CLI over it.  Cassette mode
(``recorded:PATH``, :class:`RecordingClient`) answers from a store, offline.

Built only on the public API of ``llm_events``.
"""

from .cassette import CassetteMiss, RecordedClient, RecordingClient, cassette_key
from .compare import Answer, Comparison, get_comparator
from .report import CallResult, ReplayReport
from .runner import ReplayInterrupted, run
from .select import Selection, SelectionError, select_calls

__all__ = [
    "Answer",
    "CallResult",
    "CassetteMiss",
    "Comparison",
    "RecordedClient",
    "RecordingClient",
    "ReplayInterrupted",
    "ReplayReport",
    "Selection",
    "SelectionError",
    "cassette_key",
    "get_comparator",
    "run",
    "select_calls",
]

"""The layout version of each projection, in one place that imports nothing.

A projection whose stored version differs from its version here is rebuilt (its rules or
columns changed).  Reading commands and ``browse`` compare these numbers with
``_projections`` on every start, so this module must stay free of imports: the projections
themselves (msgspec, the event vocabulary) cost tens of milliseconds to load.
"""

from __future__ import annotations

#: projection name -> version.  calls 4 and prompts 5: indexes for the backend and day facets.
VERSIONS: dict[str, int] = {
    "calls": 4,
    "prompts": 5,
    "tool_calls": 1,
    "replay_results": 1,
    "replays": 1,
}

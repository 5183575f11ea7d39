"""Projections: tables derived from events, subscribers that run a little behind the log.

Each projection folds a batch of ``(seq, event)`` pairs into its table(s).  They depend only
on the event vocabulary; :mod:`..catchup` decides when to run them (in batches after
appends, from each one's checkpoint in ``_projections``, and from seq 0 on ``rebuild``).  A
projection whose ``version`` changed is rebuilt when a store is opened, so a new column or a
fixed rule re-derives history.

Tables, one module each: ``calls`` (one row per logical call), ``prompts`` (the seed's
PromptDB: one row per answered call, plus ``call_id``; full-text index ``prompts_fts``),
``tool_calls`` (one row per tool call a model made), ``replay_results`` and ``replays``
(one row per replay run).
"""

from __future__ import annotations

from .base import PREVIEW_CHARS, Projection, dumps, executemany
from .calls import CALL_COLUMNS, CALL_SOURCES, CallsProjection, call_source
from .prompts import PROMPT_COLUMNS, PromptsProjection, tool_calls_text
from .replays import REPLAY_COLUMNS, ReplayResultsProjection, ReplaysProjection
from .tool_calls import TOOL_CALL_COLUMNS, ToolCallsProjection

__all__ = [
    "CALL_COLUMNS",
    "CALL_SOURCES",
    "PREVIEW_CHARS",
    "PROMPT_COLUMNS",
    "REPLAY_COLUMNS",
    "CallsProjection",
    "Projection",
    "PromptsProjection",
    "ReplayResultsProjection",
    "ReplaysProjection",
    "TOOL_CALL_COLUMNS",
    "ToolCallsProjection",
    "call_source",
    "default_projections",
    "dumps",
    "executemany",
    "tool_calls_text",
]


def default_projections() -> list[Projection]:
    """Fresh instances of the built-in projections, in the order they are applied."""
    return [
        CallsProjection(),
        PromptsProjection(),
        ToolCallsProjection(),
        ReplayResultsProjection(),
        ReplaysProjection(),
    ]

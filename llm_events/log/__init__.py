"""The log: the event vocabulary, the append-only hash-chained store, and its projections.

Nothing here imports the rest of the package: events import nothing of ours, the store
imports events, projections are pure folds of events.
"""

"""A word-level diff of two answers, for the replay page's side-by-side view.

Why words: a replay's answers differ by a few words far more often than by whole lines, and a
line diff of a one-paragraph answer marks the whole paragraph.  :mod:`difflib` (standard
library) does the matching; this module only splits into words and labels the pieces.
"""

from __future__ import annotations

import difflib
import re

_TOKEN = re.compile(r"\s+|[\w'-]+|[^\w\s]")
#: Longer texts are diffed on their first this-many characters (the rest shown plain): the
#: page must stay fast whatever the answers hold.
MAX_CHARS = 20_000

Piece = tuple[str, str]  # (kind, text): kind is "same", "del" (left only) or "ins" (right only)


def word_diff(old: str, new: str) -> tuple[list[Piece], list[Piece]]:
    """The two texts as pieces: the left side marks what was removed, the right what was added."""
    a = _TOKEN.findall(old[:MAX_CHARS])
    b = _TOKEN.findall(new[:MAX_CHARS])
    left: list[Piece] = []
    right: list[Piece] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            text = "".join(a[i1:i2])
            left.append(("same", text))
            right.append(("same", text))
            continue
        if i2 > i1:
            left.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            right.append(("ins", "".join(b[j1:j2])))
    if len(old) > MAX_CHARS:
        left.append(("same", old[MAX_CHARS:]))
    if len(new) > MAX_CHARS:
        right.append(("same", new[MAX_CHARS:]))
    return left, right

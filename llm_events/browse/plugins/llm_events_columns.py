"""Datasette plugin (loaded by ``llm-events browse``): column descriptions out of the way.

Why: Datasette 0.65 prints every column description above a table, so on ``calls`` (27
columns) the rows start a screen and a half down.  This folds the list into a closed
``<details>`` ("What the N columns mean") and puts each description on its column header as
a tooltip, so the rows are the first thing a person sees.  No user data is involved.
"""

from __future__ import annotations

from typing import Any

from datasette import hookimpl

SCRIPT = """
document.querySelectorAll("dl.column-descriptions").forEach(function (dl) {
  var details = document.createElement("details");
  details.className = "column-descriptions-folded";
  var summary = document.createElement("summary");
  summary.textContent = "What the " + dl.querySelectorAll("dt").length + " columns mean";
  details.appendChild(summary);
  dl.parentNode.insertBefore(details, dl);
  details.appendChild(dl);
});
document.querySelectorAll("th[data-column-description]").forEach(function (th) {
  th.title = th.getAttribute("data-column-description");
});
"""


@hookimpl
def extra_body_script(view_name: str, **_: Any) -> str | None:
    return SCRIPT if view_name == "table" else None

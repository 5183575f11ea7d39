"""Docs that must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.gen_events_doc import render

ROOT = Path(__file__).resolve().parent.parent


def test_events_doc_is_current():
    assert (ROOT / "docs" / "events.md").read_text(encoding="utf-8") == render(), (
        "docs/events.md is stale: run python scripts/gen_events_doc.py"
    )


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)\n```", readme, re.S)
    assert block is not None and readme.index("```bash") < 40
    demo, tests = block.group(1).splitlines()
    assert demo.endswith("pip install . && llm-events demo")
    test_command = tests.split(" && ", 2)[-1]
    assert test_command == 'pip install -e ".[test]" && python -m pytest -n 2 -q'
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci

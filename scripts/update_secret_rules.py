"""Convert gitleaks' rules (config/gitleaks.toml of github.com/gitleaks/gitleaks, MIT) into
``llm_events/log/secret_rules.json``, the data the redactor loads (JSON: the C parser reads
it in a millisecond; ``tomllib`` took 18-28 ms of each process's first scanned call).

Usage: python scripts/update_secret_rules.py path/to/gitleaks.toml COMMIT > llm_events/log/secret_rules.json

Go's RE2 syntax is translated where Python's ``re`` differs (a ``(?i)`` flag in mid-pattern
becomes a scoped ``(?i:...)`` group; ``\\z`` becomes ``\\Z``); rules that still do not compile,
and the rules written for source code rather than traffic (EXCLUDED), are left out.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
import warnings

#: Rules for source code, not LLM traffic: they match ordinary prose or need an assignment
#: context that prose has (``generic-api-key`` alone flags "the access key: ..." sentences).
EXCLUDED = {"generic-api-key"}


def _group_end(pattern: str, start: int) -> int:
    """Index of the ``)`` closing the group that contains ``start`` (or len(pattern))."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return len(pattern)


def python_regex(pattern: str) -> str:
    pattern = pattern.replace("\\z", "\\Z")
    while True:
        found = re.search(r"(?<!^)\(\?([a-z]+)\)", pattern)
        if found is None or found.start() == 0:
            return pattern
        end = _group_end(pattern, found.end())
        pattern = (
            pattern[: found.start()]
            + f"(?{found.group(1)}:"
            + pattern[found.end() : end]
            + ")"
            + pattern[end:]
        )


def main(path: str, commit: str) -> None:
    with open(path, "rb") as f:
        rules = tomllib.load(f)["rules"]
    out: dict = {
        "about": "Secret patterns for llm-events' redactor, converted by "
        "scripts/update_secret_rules.py from gitleaks' default rules. Data, not code: "
        "regenerate with the script rather than editing by hand.",
        "source": "https://github.com/gitleaks/gitleaks config/gitleaks.toml",
        "commit": commit,
        "license": "MIT License, Copyright (c) 2019 Zachary Rice",
        "rules": [],
    }
    kept = 0
    for rule in rules:
        if rule["id"] in EXCLUDED or "regex" not in rule or not rule.get("keywords"):
            continue
        regex = python_regex(rule["regex"])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                re.compile(regex)
        except re.error as e:
            print(f"skipped {rule['id']}: {e}", file=sys.stderr)
            continue
        entry = {
            "id": rule["id"],
            "regex": regex,
            "keywords": [k.lower() for k in rule["keywords"]],
        }
        if rule.get("secretGroup"):
            entry["secretGroup"] = rule["secretGroup"]
        if rule.get("entropy"):
            entry["entropy"] = rule["entropy"]
        out["rules"].append(entry)
        kept += 1
    print(json.dumps(out, indent=1, ensure_ascii=False))
    print(f"kept {kept} of {len(rules)} rules", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Out-of-range times and counts on the command line (issue 12, item 5): one clear line and
exit 2, never a traceback (real CLI processes on a real store)."""

from __future__ import annotations

import subprocess

import pytest

from tests.cli_support import console_script


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("parsing") / "events.db"
    done = subprocess.run(
        [console_script(), "prompt", "-m", "echo", "hi", "--db", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["calls", "--since", "99999999999d"],
            "bad --since: '99999999999d' reaches back before the year 1",
        ),
        (
            ["stats", "--until", "99999999999999w"],
            "bad --until: '99999999999999w' reaches back",
        ),
        (
            ["calls", "-n", "99999999999999999999"],
            "bad -n/--limit: 99999999999999999999 is out of range",
        ),
        (["export", "-n", "-1"], "bad -n/--limit: -1 is out of range"),
        (
            ["search", "hi", "-n", "many"],
            "bad -n/--limit: 'many' is not a whole number",
        ),
    ],
)
def test_out_of_range_values_are_one_line_and_exit_2(db, args, message):
    out = subprocess.run(
        [console_script(), *args, "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr == f"Error: {message}" + out.stderr.split(message, 1)[1]
    assert out.stderr.count("\n") == 1 and out.stdout == ""


@pytest.mark.parametrize("when", ["0001-01-01", "9999-12-31T23:59:59", "0001-01-01T00:00:00+00:00"])
def test_extreme_dates_are_read(db, when):
    out = subprocess.run(
        [console_script(), "calls", "--since", when, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert ("no calls match" in out.stdout + out.stderr) == when.startswith("9999")

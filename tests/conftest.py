"""Shared fixtures: every test records into its own real SQLite file, never the user's store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import llm_events
from llm_events.recording import config


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point LLM_EVENTS_DB (and the app dir) at this test's tmp dir; reset configure()."""
    db = tmp_path / "events.db"
    monkeypatch.setenv("LLM_EVENTS_DB", str(db))
    monkeypatch.setenv("LLM_EVENTS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROMPT_DB_PATH", str(tmp_path / "prompts.db"))
    for var in (
        "LLM_BACKEND",
        "LLM_FALLBACK_BACKEND",
        "AVAILABLE_LLM_BACKENDS",
        "LLM_EVENTS_PRICES",
    ):
        monkeypatch.delenv(var, raising=False)
    config.reset()
    yield db
    config.reset()


@pytest.fixture
def db_path(isolated_store: Path) -> Path:
    """The store file this test records into (created on first use)."""
    return isolated_store


@pytest.fixture
def store(db_path: Path) -> llm_events.EventStore:
    """The shared store for this test's db (the one clients record into)."""
    return llm_events.open_store(db_path)


@pytest.fixture
def builder(db_path: Path) -> llm_events.ContextBuilder:
    return llm_events.ContextBuilder()


def cli_env(db: Path) -> dict[str, str]:
    """Environment for running the installed console script in a subprocess."""
    env = dict(os.environ)
    env["LLM_EVENTS_DB"] = str(db)
    return env


PYTHON = sys.executable

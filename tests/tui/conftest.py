"""Fixtures for the console tests: real SQLite files in tmp_path, clock times in UTC."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_helpers import record_store


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clock times on screen in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Three plugins (active, idle, down) with metrics, logs and events."""
    return record_store(tmp_path / "pmon.db")


@pytest.fixture
def hostile_store(tmp_path: Path) -> Path:
    """The same store plus a critical log full of markup and terminal escapes."""
    return record_store(tmp_path / "pmon.db", hostile=True)

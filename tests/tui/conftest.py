"""Fixtures for the console tests: real SQLite files in tmp_path, clock times in UTC."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_helpers import frozen_clock, record_store

from pmon.tui.app import PmonApp


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


@pytest.fixture
def snapshot_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PmonApp:
    """The console over the fixed store for snapshot tests: a relative database path (the header and
    welcome never show the random tmp_path), the clock frozen, no timed refresh during the test."""
    monkeypatch.chdir(tmp_path)
    record_store(tmp_path / "pmon.db")
    return PmonApp(Path("pmon.db"), clock=frozen_clock, refresh_interval=60)

"""Shared fixtures: a real monitor on a real SQLite file in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pmon import Monitor


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pmon.db"


@pytest.fixture
def monitor(db_path: Path) -> Iterator[Monitor]:
    m = Monitor(db_path, flush_interval=0.05)
    yield m
    m.stop_monitoring()

"""The Events tab and event screen at fixed sizes over a fixed store, clock frozen (review with --snapshot-update)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from tui_helpers import frozen_clock, record_store, wait_until

from pmon.tui.app import PmonApp
from pmon.tui.widgets.event_table import EventTable


@pytest.fixture
def snapshot_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PmonApp:
    """A relative database path, so the header does not show the random tmp_path."""
    monkeypatch.chdir(tmp_path)
    record_store(tmp_path / "pmon.db")
    return PmonApp(Path("pmon.db"), clock=frozen_clock, refresh_interval=60)


async def events_ready(pilot: Pilot) -> None:
    await wait_until(pilot, lambda: pilot.app.overview_tab.table.row_count == 3)
    await pilot.press("4")
    await wait_until(pilot, lambda: pilot.app.query_one(EventTable).row_count == 7)


async def event_screen_ready(pilot: Pilot) -> None:
    await events_ready(pilot)
    await pilot.press("up", "up", "up", "up", "enter")  # the critical memory alert, which has data
    await pilot.pause()


def test_events_80x24(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=events_ready)


def test_events_120x40(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(120, 40), run_before=events_ready)


def test_event_screen_80x24(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=event_screen_ready)


def test_event_screen_120x40(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(120, 40), run_before=event_screen_ready)

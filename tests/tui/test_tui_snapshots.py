"""Screens at a fixed size over a fixed store with the clock frozen (review changes with --snapshot-update)."""

from __future__ import annotations

from textual.pilot import Pilot
from tui_helpers import wait_until

from pmon.tui.app import PmonApp
from pmon.tui.widgets.log_table import LogTable



async def overview_ready(pilot: Pilot) -> None:
    await wait_until(pilot, lambda: pilot.app.overview_tab.table.row_count == 3)


async def log_screen_ready(pilot: Pilot) -> None:
    await overview_ready(pilot)
    await pilot.press("3")
    await wait_until(pilot, lambda: pilot.app.query_one(LogTable).row_count == 4)
    await pilot.press("enter")
    await pilot.pause()


def test_overview_80x24(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=overview_ready)


def test_log_screen_80x24(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=log_screen_ready)


def test_overview_120x40(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(120, 40), run_before=overview_ready)


async def logs_ready(pilot: Pilot) -> None:
    await overview_ready(pilot)
    await pilot.press("3")
    await wait_until(pilot, lambda: pilot.app.query_one(LogTable).row_count == 4)


def test_logs_80x24(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=logs_ready)


def test_logs_120x40(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(120, 40), run_before=logs_ready)


def test_log_screen_120x40(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(120, 40), run_before=log_screen_ready)


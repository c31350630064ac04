"""The Events tab and event screen at fixed sizes over a fixed store, clock frozen (review with --snapshot-update)."""

from __future__ import annotations

from textual.pilot import Pilot
from tui_helpers import wait_until

from pmon.tui.app import PmonApp
from pmon.tui.widgets.event_table import EventTable



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

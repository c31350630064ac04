"""The Snapshots tab and the comparison screen at a fixed size over a fixed store, clock frozen.

Review changes with ``--snapshot-update``.
"""

from __future__ import annotations

from textual.pilot import Pilot
from tui_helpers import wait_until

from pmon.tui.app import PmonApp
from pmon.tui.screens.compare_screen import CompareScreen
from pmon.tui.tabs.snapshots_tab import SnapshotsTab



async def marked_gamma(pilot: Pilot) -> None:
    """Snapshots listed, gamma's first marked as A, the cursor on the row below it."""
    await wait_until(pilot, lambda: pilot.app.has_data)
    await pilot.press("5")
    tab = pilot.app.query_one(SnapshotsTab)
    await wait_until(pilot, lambda: tab.loaded and tab.table.row_count == 9)
    await pilot.press("up", "up", "m", "down")


async def alpha_compared(pilot: Pilot) -> None:
    """alpha's first snapshot marked, compared with its third."""
    await marked_gamma(pilot)
    await pilot.press("home", "m", "down", "down", "enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))


def test_snapshots_tab_80x24(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=marked_gamma)


def test_snapshots_tab_120x40(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(120, 40), run_before=marked_gamma)


def test_compare_screen_80x24(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=alpha_compared)


def test_compare_screen_120x40(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(120, 40), run_before=alpha_compared)

"""The plugin screen at a fixed size over a fixed store with the clock frozen (review changes with --snapshot-update)."""

from __future__ import annotations

from textual.pilot import Pilot
from tui_helpers import wait_until

from pmon.tui.app import PmonApp
from pmon.tui.screens.plugin_screen import PluginScreen



def _plugin_screen_loaded(pilot: Pilot) -> bool:
    screen = pilot.app.screen
    return isinstance(screen, PluginScreen) and screen.view is not None and screen.view.generation == screen.generation


async def plugin_screen_ready(pilot: Pilot) -> None:
    await wait_until(pilot, lambda: pilot.app.overview_tab.table.row_count == 3)
    await pilot.press("enter")
    await wait_until(pilot, lambda: _plugin_screen_loaded(pilot))


async def plugin_events_ready(pilot: Pilot) -> None:
    await plugin_screen_ready(pilot)
    await pilot.press("e")
    await pilot.pause()


def test_plugin_screen_80x24(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=plugin_screen_ready)


def test_plugin_screen_120x40(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(120, 40), run_before=plugin_screen_ready)


def test_plugin_screen_events_80x24(snap_compare, snapshot_app: PmonApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=plugin_events_ready)

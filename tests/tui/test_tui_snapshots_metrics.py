"""The Metrics tab at a fixed size over the fixed store, clock frozen (review changes with --snapshot-update)."""

from __future__ import annotations

from textual.pilot import Pilot
from tui_helpers import wait_until

from pmon.tui.app import PmonApp
from pmon.tui.tabs.metrics_tab import MetricsTab
from pmon.tui.widgets.metric_chart import MetricChart


async def chart_ready(pilot: Pilot) -> None:
    """alpha's CPU over 15 minutes: its two minutes of data fill a good part of the chart."""
    await wait_until(pilot, lambda: pilot.app.overview_tab.table.row_count == 3)
    await pilot.press("2")
    tab = pilot.app.query_one(MetricsTab)
    await wait_until(pilot, lambda: tab.reading is not None)
    await pilot.press("t", "t", "t", "t", "t", "t")  # 1h → 6h → 24h → 7d → 30d → 5m → 15m
    await wait_until(pilot, lambda: tab.reading is not None and tab.reading.query.generation == tab.generation
                     and pilot.app.query_one(MetricChart).has_class("-plotted"))
    await pilot.pause()


def test_metrics_80x24(snap_compare, snapshot_app: PmonApp) -> None:  # noqa: F811
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=chart_ready)


def test_metrics_120x40(snap_compare, snapshot_app: PmonApp) -> None:  # noqa: F811
    assert snap_compare(snapshot_app, terminal_size=(120, 40), run_before=chart_ready)

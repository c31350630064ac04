"""Alerts and error groups in the console: the header's count, the Logs tab's groups, acking and silencing from
the Events tab, and the plugin screen's groups and findings, over real SQLite files."""

from __future__ import annotations

from pathlib import Path

from tui_helpers import frozen_clock, record_alerts, record_store, screen_text, wait_until

from pmon.tui.app import PmonApp
from pmon.tui.tabs.overview_tab import OverviewTab


def console(path: Path) -> PmonApp:
    return PmonApp(path, clock=frozen_clock, refresh_interval=0.2)


def overview_loaded(app: PmonApp) -> bool:
    return app.query_one(OverviewTab).table.row_count > 0


async def test_the_overview_header_counts_firing_alerts_within_80_columns(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    record_alerts(path)
    app = console(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        totals = screen_text(app).splitlines()[3]
        assert "2 alerts firing" in totals and "3 plugins (1 active, 1 idle, 1 down)" in totals
        assert totals.rstrip().endswith("1 errors/1m  5 high+/1h")  # the short words: one line at 80 columns
    async with console(path).run_test(size=(120, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(pilot.app))
        assert "2 alerts firing  1 error logs/1m  5 high+ events/1h" in screen_text(pilot.app)


async def test_no_alert_count_without_firing_alerts(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        assert "firing" not in screen_text(app)

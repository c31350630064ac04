"""The plugin screen as a user drives it (Enter on a plugin, `t`, Enter on a log or event, Esc, `m`) and its data layer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, TabbedContent
from tui_helpers import HOSTILE, NOW, frozen_clock, record_store, screen_text, wait_until

from pmon import LogLevel, Monitor
from pmon.models import MetricType
from pmon.store.schema import open_reader, open_writer
from pmon.tui import plugin_data
from pmon.tui.app import PmonApp
from pmon.tui.plugin_data import PluginQuery, PluginView
from pmon.tui.screens.event_screen import EventScreen
from pmon.tui.screens.log_screen import LogScreen
from pmon.tui.screens.plugin_screen import PluginScreen
from pmon.tui.tabs.overview_tab import OverviewTab
from pmon.tui.widgets.log_table import LogTable

HOUR = 3600.0
HOSTILE_ID = "[@click=app.quit]id[/] [bold]x\x1b[31m\x9b\r\x07\u202e"
"""A plugin id full of markup and terminal controls ('[' sorts before the fixture's lower-case ids)."""


def console(path: Path) -> PmonApp:
    return PmonApp(path, clock=frozen_clock, refresh_interval=0.2)


def read(path: Path, plugin_id: str, range_seconds: float = HOUR, **changes: object) -> PluginView:
    conn = open_reader(path)
    try:
        return PluginQuery(plugin_id, 1, range_seconds, 40, **changes).read(conn, NOW)  # type: ignore[arg-type]
    finally:
        conn.close()


def plugin_screen(app: PmonApp) -> PluginScreen | None:
    return app.screen if isinstance(app.screen, PluginScreen) else None


def loaded(app: PmonApp) -> bool:
    screen = plugin_screen(app)
    return screen is not None and screen.view is not None and screen.view.generation == screen.generation


async def open_plugin(pilot, app: PmonApp, row: int = 0) -> PluginScreen:  # type: ignore[no-untyped-def]
    await wait_until(pilot, lambda: app.query_one(OverviewTab).table.row_count > 0)
    app.query_one(OverviewTab).table.move_cursor(row=row)
    await pilot.press("enter")
    await wait_until(pilot, lambda: loaded(app))
    screen = plugin_screen(app)
    assert screen is not None
    return screen


# -- the data layer, without Textual ------------------------------------------------


def test_plugin_data_imports_no_textual() -> None:
    code = "import sys, pmon.tui.plugin_data\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_plugin_reads_its_status_charts_and_statistics(store: Path) -> None:
    view = read(store, "alpha")
    assert view.status == "active" and view.summary is not None
    assert {c.metric: c.latest for c in view.charts} == {
        MetricType.CPU_USAGE: 37, MetricType.MEMORY_USAGE: 259, MetricType.RESPONSE_TIME: 99,
        MetricType.ERROR_RATE: 0.01, MetricType.THROUGHPUT: 50}
    response = view.chart(MetricType.RESPONSE_TIME)
    assert (response.count, response.low, response.high, response.mean) == (60, 40, 99, 69.5)
    stats = view.stats
    assert stats.requests == pytest.approx(6000)  # 60 samples of 50 req/s, 2 s apart
    assert (stats.p50, stats.p95, stats.p99, stats.percentiles_exact) == (69, 96, 99, True)
    assert stats.error_rate == pytest.approx(0.01) and stats.throughput == 50
    assert (stats.error_logs, stats.serious_events) == (1, 1)  # the PaymentDeclined log; the critical memory alert
    assert [log.message for log in view.logs] == ["handled 52 requests", "health check ok",
                                                  "PaymentDeclined: gateway timeout"]
    assert [ev.event_type for ev in view.events] == ["user_login", "alert_memory", "startup"]
    assert view.snapshots is not None and [s.cpu_usage for s in view.snapshots] == [30, 25, 20]


def test_a_quiet_plugin_has_no_points_in_a_short_range(store: Path) -> None:
    view = read(store, "gamma", 300)
    assert view.status == "down"
    assert all(chart.count == 0 for chart in view.charts)
    assert view.chart(MetricType.CPU_USAGE).latest == 37  # its last value is still known
    assert view.stats.requests is None and view.stats.p95 is None


def test_an_unknown_plugin_reads_as_unknown(store: Path) -> None:
    view = read(store, "nobody")
    assert view.summary is None and view.status == "unknown" and view.logs == ()


def test_a_refresh_reads_only_what_is_new(store: Path) -> None:
    first = read(store, "alpha")
    assert first.logs[-1].id is not None and first.events[-1].id is not None
    again = read(store, "alpha", log_after=first.logs[-1].id, event_after=first.events[-1].id,
                 snapshot_newest=first.newest_snapshot_id, previous=first)
    assert again.logs == () and again.events == () and again.snapshots is None
    assert again.charts == first.charts and again.stats == first.stats
    monitor = Monitor(store, flush_interval=0.05)
    monitor.record_log("alpha", LogLevel.ERROR, "disk full", timestamp=NOW - 1)
    monitor.record_metric("alpha", "response_time", 500, timestamp=NOW - 1)
    monitor.flush()
    monitor.stop_monitoring()
    newer = read(store, "alpha", log_after=first.logs[-1].id, event_after=first.events[-1].id,
                 snapshot_newest=first.newest_snapshot_id, previous=again)
    assert [log.message for log in newer.logs] == ["disk full"]
    assert newer.stats.error_logs == 2 and newer.stats.p99 == 500
    assert newer.chart(MetricType.RESPONSE_TIME).count == 61


def test_percentiles_are_estimated_from_buckets_past_the_exact_limit(store: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin_data, "EXACT_PERCENTILES", 10)
    stats = read(store, "alpha").stats
    assert not stats.percentiles_exact
    assert stats.p50 is not None and 40 <= stats.p50 <= 99


# -- the screen --------------------------------------------------------------------


async def test_enter_on_a_plugin_shows_its_status_charts_and_statistics(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_plugin(pilot, app)
        assert screen.plugin_id == "alpha"
        text = screen_text(app)
        assert "alpha  active  range 1h (t)  last seen 5s ago" in text
        for figure in ("37%", "259MB", "99ms", "1.0%", "50.0/s"):  # the latest value of each chart
            assert figure in text
        assert "requests ≈6,000" in text
        assert "response mean 70ms p50 69ms p95 96ms p99 99ms" in text
        assert "error logs 1" in text and "high+ events 1" in text
        assert "Logs 3" in text and "PaymentDeclined: gateway timeout" in text


async def test_t_cycles_the_time_range(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_plugin(pilot, app)
        await pilot.press("t")
        assert "range 6h" in screen_text(app)
        await wait_until(pilot, lambda: loaded(app))
        assert screen.view is not None and screen.view.range_seconds == 6 * HOUR
        assert "last 6h:" in screen_text(app)
        await pilot.press(*"tttt")  # 24h, 7d, 30d, 5m
        await wait_until(pilot, lambda: loaded(app) and screen.view is not None and screen.view.range_seconds == 300)
        assert "range 5m" in screen_text(app)


async def test_enter_on_a_log_goes_further_and_escape_steps_back_one_level(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_plugin(pilot, app)
        await pilot.press("enter")  # the cursor follows the newest log
        assert isinstance(app.screen, LogScreen)
        assert app.screen.log_record.message == "PaymentDeclined: gateway timeout"
        await pilot.press("escape")
        assert isinstance(app.screen, PluginScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, PluginScreen)
        assert app.query_one(TabbedContent).active == "overview"


async def test_enter_on_an_event_opens_it(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_plugin(pilot, app)
        await pilot.press("e")
        await pilot.pause()
        assert screen.query_one(TabbedContent).active == "plugin-events"
        assert "alert_memory" in screen_text(app)
        await pilot.press("down", "enter")  # newest first: startup, then the critical memory alert
        assert isinstance(app.screen, EventScreen)
        assert app.screen.event_record.event_type == "alert_memory"
        await pilot.press("escape")
        assert app.screen is screen


async def test_s_lists_the_snapshots_newest_first(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_plugin(pilot, app)
        await pilot.press("s")
        await pilot.pause()
        table = screen.query_one("#plugin-snapshot-table", DataTable)
        assert [table.get_row_at(i)[1].plain for i in range(table.row_count)] == ["30%", "25%", "20%"]
        assert "1,200" in screen_text(app)


async def test_m_shows_the_plugin_in_the_metrics_tab(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_plugin(pilot, app, row=1)
        await pilot.press("m")
        await pilot.pause()
        assert not isinstance(app.screen, PluginScreen)
        assert app.query_one(TabbedContent).active == "metrics"


async def test_new_logs_appear_while_the_screen_is_open(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_plugin(pilot, app)
        table = screen.query_one(LogTable)
        monitor = Monitor(store, flush_interval=0.05)
        monitor.record_log("alpha", "warning", "a brand new line", timestamp=NOW - 1)
        monitor.record_log("beta", "warning", "not this plugin's", timestamp=NOW - 1)
        monitor.flush()
        monitor.stop_monitoring()
        await wait_until(pilot, lambda: table.row_count == 4)
        assert table.get_row_at(3)[3].plain == "a brand new line"
        assert table.cursor_row == 3
        assert "Logs 4" in screen_text(app)


def add_hostile_plugin(path: Path) -> None:
    """Rows as another writer could leave them: pmon's Monitor refuses such an id, the console must still cope."""
    conn = open_writer(path)
    conn.execute("INSERT INTO plugins (id, first_seen, last_seen) VALUES (?, ?, ?)", (HOSTILE_ID, NOW - 9, NOW - 2))
    series = conn.execute("INSERT INTO metric_series (plugin_id, metric_type) VALUES (?, 'cpu_usage')",
                          (HOSTILE_ID,)).lastrowid
    conn.execute("INSERT INTO metric_points (series_id, ts_ms, value) VALUES (?, ?, 12)", (series, int(NOW * 1000) - 2000))
    conn.execute("INSERT INTO plugin_logs (plugin_id, level, message, timestamp) VALUES (?, 'error', ?, ?)",
                 (HOSTILE_ID, HOSTILE, NOW - 2))
    conn.close()


async def test_markup_and_escapes_in_ids_and_messages_show_literally(hostile_store: Path) -> None:
    add_hostile_plugin(hostile_store)
    app = console(hostile_store)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_plugin(pilot, app, row=0)
        assert screen.plugin_id == HOSTILE_ID
        text = screen_text(app)
        assert "[@click=app.quit]id[/] [bold]x\\x1b[31m\\x9b\\r\\x07\\u202e" in text
        assert "[@click=app.quit]boom[/] [red]x[/]" in text
        for control in ("\x1b", "\x9b", "\x07", "\r", "\u202e"):
            assert control not in text
        await pilot.click("#plugin-heading")
        await pilot.press("enter")
        assert isinstance(app.screen, LogScreen)
        assert "\\x1b]0;pwn\\x07" in screen_text(app)
        await pilot.press("escape", "escape")
        await pilot.pause(0.3)
        assert app.is_running and app.return_code is None


async def test_opening_another_plugin_shows_only_its_own_data(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        first = await open_plugin(pilot, app, row=0)  # alpha (sorted by id)
        assert first.plugin_id == "alpha"
        await pilot.press("escape")
        await pilot.pause()
        second = await open_plugin(pilot, app, row=1)
        assert second.plugin_id == "beta"
        table = second.query_one(LogTable)
        assert {table.get_row_at(i)[1].plain for i in range(table.row_count)} == {"beta"}
        assert "alpha" not in screen_text(app)


async def test_o_on_an_event_of_the_same_plugin_steps_back_to_its_screen(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_plugin(pilot, app)
        await pilot.press("e", "enter")
        assert isinstance(app.screen, EventScreen)
        await pilot.press("o")
        await wait_until(pilot, lambda: app.screen is screen)
        assert len(app.screen_stack) == 2
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(app.screen_stack) == 1)

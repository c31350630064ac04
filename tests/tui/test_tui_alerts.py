"""Alerts and error groups in the console: the header's count, the Logs tab's groups, acking and silencing from
the Events tab, and the plugin screen's groups and findings, over real SQLite files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_helpers import NOW, frozen_clock, record_alerts, record_errors, record_store, screen_text, wait_until

from pmon import Monitor, Severity
from pmon.analysis.alerting import Alert, Silence
from pmon.store import alert_store
from pmon.store.schema import open_reader, open_writer
from pmon.tui.app import PmonApp
from pmon.tui.plugin_data import PluginQuery, PluginView
from pmon.tui.screens.event_screen import EventScreen
from pmon.tui.screens.help_screen import HelpScreen
from pmon.tui.screens.log_screen import LogScreen
from pmon.tui.screens.plugin_screen import PluginScreen
from pmon.tui.tabs.events_tab import EventsTab
from pmon.tui.tabs.logs_tab import LogsTab
from pmon.tui.tabs.overview_tab import OverviewTab
from pmon.tui.widgets.error_group_table import ErrorGroupTable
from pmon.tui.widgets.event_table import EventTable
from pmon.tui.widgets.log_table import LogTable


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


def groups_shown(app: PmonApp) -> bool:
    tab = app.query_one(LogsTab)
    return tab.grouped and tab.groups is not None and tab.group_table.row_count > 0


async def test_g_shows_the_error_groups_and_enter_opens_a_groups_example(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    record_errors(path)
    app = console(path)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3", "g")
        await wait_until(pilot, lambda: groups_shown(app))
        table = app.query_one(LogsTab).group_table
        assert app.focused is table
        rows = [[cell.plain for cell in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows[0][:3] == ["5", "PaymentDeclined: gateway timeout for order <n>", "alpha"]
        assert rows[1][:3] == ["1", "PaymentDeclined: gateway timeout", "alpha"]
        assert rows[0][3:] == ["43m ago", "50m ago"]
        text = screen_text(app)
        assert "error groups  last 24h  2 groups, 6 errors" in text
        assert app.query_one(LogsTab).panel_query() is None  # grouped again only after GROUPS_EVERY seconds
        await pilot.press("enter")
        assert isinstance(app.screen, LogScreen)
        assert app.screen.log_record.message == "PaymentDeclined: gateway timeout for order 1004"  # the newest
        assert "Traceback (most recent call last)" in screen_text(app)
        await pilot.press("escape", "g")
        assert not app.query_one(LogsTab).grouped and app.focused is app.query_one(LogTable)
        assert "following" in screen_text(app)


async def test_the_error_groups_follow_the_plugin_filter(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    record_errors(path)
    record_errors(path, "ValueError: bad shard {n}", times=2, plugin="beta", traceback=None)
    app = console(path)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3", "g")
        await wait_until(pilot, lambda: groups_shown(app) and app.query_one(LogsTab).group_table.row_count == 3)
        await pilot.press("n", "n")  # alpha, then beta
        await wait_until(pilot, lambda: groups_shown(app) and app.query_one(LogsTab).group_table.row_count == 1)
        table = app.query_one(LogsTab).group_table
        assert [cell.plain for cell in table.get_row_at(0)][:3] == ["2", "ValueError: bad shard <n>", "beta"]
        assert "plugin beta" in screen_text(app)


async def test_hostile_text_in_a_group_stays_literal(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db", hostile=True)
    app = console(path)
    async with app.run_test(size=(160, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3", "g")
        await wait_until(pilot, lambda: groups_shown(app) and app.query_one(LogsTab).group_table.row_count == 2)
        text = screen_text(app)
        assert "[@click=app.quit]boom[/] [red]x[/] \\x1b]<n>;pwn\\x07 \\x1b[<n>mred \\u202eevil" in text
        for control in ("\x1b", "\x07", "\r", "\u202e"):
            assert control not in text
        assert app.is_running


async def open_alert_events(pilot: Pilot) -> EventTable:
    """The Events tab showing the alert category only."""
    app = pilot.app
    await wait_until(pilot, lambda: overview_loaded(app))
    await pilot.press("4")
    tab = app.query_one(EventsTab)
    await wait_until(pilot, lambda: tab.loaded)
    await pilot.press("c", "c", "c", "c")  # all → system → user → error → alert
    await wait_until(pilot, lambda: tab.loaded and tab.category is not None and tab.table.row_count > 0)
    return tab.table


def highlight(table: EventTable, plugin: str, event_type: str) -> None:
    for row in range(table.row_count):
        cells = [cell.plain for cell in table.get_row_at(row)]
        if cells[1] == plugin and event_type in cells:
            table.follow = False  # as a user who moved up: new rows no longer pull the cursor down
            table.move_cursor(row=row, animate=False)
            return
    raise AssertionError(f"no {event_type} of {plugin} listed")


def notices(app: PmonApp) -> str:
    """Every notification shown so far (toasts are not part of the screen's text in a headless run)."""
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


def stored_alert(path: Path, alert_id: int) -> Alert:
    conn = open_reader(path)
    try:
        return alert_store.alert(conn, alert_id)
    finally:
        conn.close()


def stored_silences(path: Path) -> list[Silence]:
    conn = open_reader(path)
    try:
        return alert_store.active_silences(conn, NOW)
    finally:
        conn.close()


async def test_a_acknowledges_the_highlighted_alert_in_the_store(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    ids = record_alerts(path)
    app = console(path)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await open_alert_events(pilot)
        highlight(table, "alpha", "alert_firing")
        await pilot.press("a")
        await wait_until(pilot, lambda: stored_alert(path, ids["cpu_hot"]).acked_at is not None)
        acked = stored_alert(path, ids["cpu_hot"])
        assert (acked.acked_at, acked.acked_by.endswith("(console)"), acked.state) == (NOW, True, "firing")
        assert stored_alert(path, ids["mem_high"]).acked_at is None  # only the highlighted one
        await wait_until(pilot, lambda: "Acknowledged alert 1 (cpu_hot on alpha, firing)." in notices(app))
        await pilot.press("a")
        await wait_until(pilot, lambda: "Already acknowledged: alert 1" in notices(app))
        assert "2 alerts firing" in app.overview_tab.query_one("#overview-totals").text.plain  # still firing


async def test_S_silences_the_rule_on_that_plugin_for_an_hour(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    record_alerts(path)
    app = console(path)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await open_alert_events(pilot)
        highlight(table, "beta", "alert_firing")
        await pilot.press("S")
        await wait_until(pilot, lambda: len(stored_silences(path)) == 1)
        (silence,) = stored_silences(path)
        assert (silence.rule, silence.plugin, silence.until, silence.created_at) == (
            "mem_high", "beta", NOW + 3600, NOW)
        await wait_until(pilot, lambda: "Silenced mem_high on beta for 1h" in notices(app))


async def test_alert_keys_on_other_events_write_nothing_and_errors_are_one_line(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    ids = record_alerts(path)
    monitor = Monitor(path, flush_interval=0.05)
    monitor.record_event("gamma", "alert_firing", "an alert the store lost", Severity.HIGH,
                         {"alert_id": 99, "rule": "cpu_hot"}, timestamp=NOW - 50)
    monitor.flush()
    monitor.stop_monitoring()
    app = console(path)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await open_alert_events(pilot)
        highlight(table, "alpha", "alert_leak")  # a detector's finding: no alert id, no rule
        await pilot.pause()
        assert "(writes)" not in screen_text(app)  # the detail line offers the keys only on an alert rule's event
        await pilot.press("a", "S")
        await wait_until(pilot, lambda: "Nothing to silence" in notices(app))
        assert "Nothing to acknowledge" in notices(app)
        highlight(table, "gamma", "alert_firing")
        await pilot.press("a")
        await wait_until(pilot, lambda: "alert 99: no such alert (`pmon alerts` lists them)" in notices(app))
        assert "Acknowledge failed: alert 99" in notices(app)
        assert stored_alert(path, ids["cpu_hot"]).acked_at is None and stored_silences(path) == []
        assert app.is_running


async def test_the_help_says_a_and_S_are_the_only_writes(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    record_alerts(path)
    app = console(path)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await open_alert_events(pilot)
        highlight(table, "alpha", "alert_firing")
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = dict(app.screen.keys)
        assert keys["a"] == "Acknowledge the highlighted event's alert (a write: one of the console's only two)"
        assert keys["S"].startswith("Silence the highlighted alert's rule on its plugin for 1 hour (a write")
        await pilot.press("escape")
        assert " a ack · S silence 1h (writes) │ alert alert_firing: cpu_hot on alpha" in screen_text(app)


# -- the plugin screen ------------------------------------------------------------------------


def read_plugin(path: Path, plugin_id: str, range_seconds: float = 3600.0, **changes: object) -> PluginView:
    conn = open_reader(path)
    try:
        return PluginQuery(plugin_id, 1, range_seconds, 40, **changes).read(conn, NOW)  # type: ignore[arg-type]
    finally:
        conn.close()


def test_the_plugin_view_has_its_top_groups_and_findings_with_their_states(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    ids = record_alerts(path)
    record_errors(path)
    conn = open_writer(path)
    alert_store.ack(conn, ids["cpu_hot"], NOW, "ops")
    conn.close()
    view = read_plugin(path, "alpha")
    assert view.groups is not None
    assert [(g.group.count, g.title) for g in view.groups] == [
        (5, "PaymentDeclined: gateway timeout for order <n>"), (1, "PaymentDeclined: gateway timeout")]
    assert [(f.event.event_type, f.state) for f in view.findings] == [
        ("alert_firing", "acked"), ("alert_memory", "-"), ("alert_leak", "open"),
        ("alert_error_spike_resolved", "resolved"), ("alert_error_spike", "resolved")]
    assert read_plugin(path, "alpha", groups_due=False).groups is None  # not regrouped on every refresh
    assert [g.title for g in read_plugin(path, "alpha", 300.0).groups or ()] == ["PaymentDeclined: gateway timeout"]
    assert read_plugin(path, "beta").findings[0].state == "firing"


def test_uptime_counts_the_time_down_in_the_range(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    monitor = Monitor(path, flush_interval=0.05)
    monitor.record_event("beta", "stopped", "beta stopped", Severity.HIGH, timestamp=NOW - 1800)
    monitor.record_event("beta", "started", "beta started", Severity.INFO, timestamp=NOW - 900)
    monitor.flush()
    monitor.stop_monitoring()
    assert read_plugin(path, "beta").stats.uptime_pct == 75.0
    assert read_plugin(path, "alpha").stats.uptime_pct == 100.0


async def test_the_plugin_screen_lists_its_error_groups_and_alerts(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db")
    record_alerts(path)
    record_errors(path)
    app = console(path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("enter")  # alpha
        await wait_until(pilot, lambda: isinstance(app.screen, PluginScreen) and app.screen.view is not None)
        screen = app.screen
        assert "uptime 100%" in screen_text(app)
        await pilot.press("g")
        groups = screen.query_one(ErrorGroupTable)
        await wait_until(pilot, lambda: groups.row_count == 2 and app.focused is groups)
        assert "Errors 2" in screen_text(app) and "Alerts 5" in screen_text(app)
        assert "PaymentDeclined: gateway timeout for order <n>" in screen_text(app)
        await pilot.press("enter")
        assert isinstance(app.screen, LogScreen)
        assert app.screen.log_record.message == "PaymentDeclined: gateway timeout for order 1004"
        await pilot.press("escape", "a")
        findings = screen.query_one("#plugin-finding-table", DataTable)
        await wait_until(pilot, lambda: app.focused is findings)
        rows = [[cell.plain for cell in findings.get_row_at(i)] for i in range(findings.row_count)]
        assert [row[1:3] for row in rows] == [
            ["firing", "alert_firing"], ["-", "alert_memory"], ["open", "alert_leak"],
            ["resolved", "alert_error_spike_r…"], ["resolved", "alert_error_spike"]]
        findings.move_cursor(row=0)
        await pilot.press("enter")
        assert isinstance(app.screen, EventScreen) and app.screen.event_record.data["alert_id"] == 1


async def test_hostile_text_in_the_plugin_screens_groups_stays_literal(tmp_path: Path) -> None:
    path = record_store(tmp_path / "pmon.db", hostile=True)
    app = console(path)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("enter", "g")  # alpha, its errors
        await wait_until(pilot, lambda: isinstance(app.screen, PluginScreen)
                         and app.screen.query_one(ErrorGroupTable).row_count == 2)
        text = screen_text(app)
        assert "[@click=app.quit]boom[/] [red]x[/] \\x1b]<n>;pwn\\x07 \\x1b[<n>mred \\u202eevil" in text
        for control in ("\x1b", "\x07", "\r", "\u202e"):
            assert control not in text


def test_the_new_data_modules_import_no_textual() -> None:
    code = ("import sys, pmon.tui.error_groups_data, pmon.tui.findings_data, pmon.tui.alert_actions\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

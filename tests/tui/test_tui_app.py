"""The console as a user drives it: keys in, screens out, over a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textual.widgets import ContentSwitcher, TabbedContent
from tui_helpers import TRACEBACK, frozen_clock, record_store, screen_text, wait_until

from pmon.tui.app import PmonApp
from pmon.tui.screens.help_screen import HelpScreen
from pmon.tui.screens.log_screen import LogScreen
from pmon.tui.tabs.logs_tab import LogsTab
from pmon.tui.tabs.overview_tab import OverviewTab
from pmon.tui.widgets.log_table import LogTable


def console(path: Path) -> PmonApp:
    return PmonApp(path, clock=frozen_clock, refresh_interval=0.2)


def overview_loaded(app: PmonApp) -> bool:
    return app.query_one(OverviewTab).table.row_count > 0


def logs_loaded(app: PmonApp) -> bool:
    return app.query_one(LogTable).row_count > 0


async def test_overview_lists_every_plugin_with_its_status(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        tab = app.query_one(OverviewTab)
        rows = {tab.cells_at(i)[0].plain: tab.cells_at(i)[1].plain for i in range(tab.table.row_count)}
        assert rows == {"alpha": "active", "beta": "idle", "gamma": "down"}
        text = screen_text(app)
        assert "3 plugins (1 active, 1 idle, 1 down)" in text
        assert "1 error logs/1m" in text and "2 high+ events/1h" in text


async def test_s_cycles_the_sort_and_slash_filters_plugins(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        tab = app.query_one(OverviewTab)
        await pilot.press("s")  # status: down first
        assert [tab.cells_at(i)[0].plain for i in range(3)] == ["gamma", "beta", "alpha"]
        await pilot.press("slash", *"alp", "enter")
        assert tab.table.row_count == 1 and tab.cells_at(0)[0].plain == "alpha"
        assert "filter: alp (1 shown)" in screen_text(app)
        await pilot.press("slash", "ctrl+u", "enter")
        assert tab.table.row_count == 3


async def test_typing_a_filter_does_not_trigger_keys(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("slash", "q", "3", "s")
        assert app.is_running
        assert app.query_one(TabbedContent).active == "overview"
        await pilot.press("escape")
        assert app.query_one(OverviewTab).filter_text == ""


async def test_key_3_shows_the_logs_newest_last(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        assert app.query_one(TabbedContent).active == "logs"
        await wait_until(pilot, lambda: logs_loaded(app))
        table = app.query_one(LogTable)
        assert [table.get_row_at(i)[2].plain for i in range(table.row_count)] == [
            "DEBUG", "INFO", "WARNING", "ERROR"]
        assert table.get_row_at(2)[3].plain == "slow query took 900 ms …"
        assert table.cursor_row == table.row_count - 1
        assert "● following" in screen_text(app)


async def test_enter_on_a_log_shows_its_traceback_and_escape_goes_back(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        await wait_until(pilot, lambda: logs_loaded(app))
        await pilot.press("enter")
        assert isinstance(app.screen, LogScreen)
        assert app.screen.log_record.traceback == TRACEBACK
        text = screen_text(app)
        assert "PaymentDeclined: gateway timeout" in text
        assert '"order_id": "ord_12345"' in text
        assert 'File "/srv/payments/gateway.py", line 40, in authorise' in text
        await pilot.press("escape")
        assert not isinstance(app.screen, LogScreen)
        assert app.query_one(TabbedContent).active == "logs"


async def test_p_pauses_following_and_f_resumes(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        await wait_until(pilot, lambda: logs_loaded(app))
        table = app.query_one(LogTable)
        await pilot.press("up")
        assert not table.follow
        assert "paused" in screen_text(app)
        await pilot.press("f")
        assert table.follow and table.cursor_row == table.row_count - 1
        await pilot.press("p")
        assert not table.follow
        await pilot.press("end")
        assert table.follow


async def test_l_raises_the_minimum_level(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        await wait_until(pilot, lambda: logs_loaded(app))
        await pilot.press("l", "l")  # info, then warning
        table = app.query_one(LogTable)
        await wait_until(pilot, lambda: app.query_one(LogsTab).loaded and table.row_count == 2)
        assert [table.get_row_at(i)[2].plain for i in range(2)] == ["WARNING", "ERROR"]
        assert "level ≥ warning" in screen_text(app)


async def test_new_logs_appear_while_the_console_is_open(store: Path) -> None:
    from pmon import Monitor
    from tui_helpers import NOW

    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        await wait_until(pilot, lambda: logs_loaded(app))
        monitor = Monitor(store, flush_interval=0.05)
        monitor.record_log("alpha", "info", "a brand new line", timestamp=NOW - 1)
        monitor.flush()
        monitor.stop_monitoring()
        table = app.query_one(LogTable)
        await wait_until(pilot, lambda: table.get_row_at(table.row_count - 1)[3].plain == "a brand new line")
        assert table.cursor_row == table.row_count - 1


async def test_hostile_text_is_shown_literally_and_does_not_quit(hostile_store: Path) -> None:
    app = console(hostile_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        await wait_until(pilot, lambda: logs_loaded(app))
        table = app.query_one(LogTable)
        message = table.get_row_at(table.row_count - 1)[3].plain
        literal = "[@click=app.quit]boom[/] [red]x[/] \\x1b]0;pwn\\x07 \\x1b[31mred\\r\\u202eevil"
        assert message.endswith("…") and literal.startswith(message[:-1])
        assert "\x1b" not in screen_text(app) and "\u202e" not in screen_text(app)
        await pilot.click(LogTable, offset=(40, table.row_count))
        await pilot.press("end", "enter")
        assert isinstance(app.screen, LogScreen)
        text = screen_text(app)
        assert "[@click=app.quit]boom[/] [red]x[/]" in text
        assert "\\x1b]0;pwn\\x07" in text
        for control in ("\x1b", "\x07", "\r", "\u202e"):
            assert control not in text
        await pilot.click("#log-message")
        await pilot.pause(0.3)
        assert app.is_running and app.return_code is None


async def test_missing_database_shows_the_welcome_and_switches_when_data_arrives(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    app = console(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        switcher = app.query_one("#main", ContentSwitcher)
        assert switcher.current == "welcome"
        text = screen_text(app)
        assert "Nothing recorded yet" in text
        assert str(path) in text
        assert "demo" in text
        assert "from pmon import monitor" in text
        assert 'monitor.record_metric("my_plugin", "cpu_usage", 45.2)' in text
        record_store(path)
        await wait_until(pilot, lambda: switcher.current == "console")
        await wait_until(pilot, lambda: overview_loaded(app))


async def test_question_mark_lists_the_keys_and_q_quits(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "Sort by the next column" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


def test_import_pmon_still_does_not_import_textual() -> None:
    code = "import sys, pmon\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"



async def test_ctrl_p_finds_a_plugin_by_id_and_opens_its_screen(store: Path) -> None:
    from pmon.tui.screens.plugin_screen import PluginScreen

    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("ctrl+p")
        await pilot.press(*"plugin: bet")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginScreen))
        assert app.screen.plugin_id == "beta"


async def test_ctrl_p_lists_the_tabs(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("ctrl+p")
        await pilot.press(*"go to events")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.query_one(TabbedContent).active == "events")


async def test_o_on_a_log_opens_its_plugin(store: Path) -> None:
    from pmon.tui.screens.plugin_screen import PluginScreen

    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        await wait_until(pilot, lambda: logs_loaded(app))
        await pilot.press("up", "o")  # the warning, recorded by beta
        await wait_until(pilot, lambda: isinstance(app.screen, PluginScreen))
        assert app.screen.plugin_id == "beta"
        await pilot.press("escape")
        assert app.query_one(TabbedContent).active == "logs"


async def test_rows_written_by_another_process_appear_within_two_refreshes(store: Path) -> None:
    from tui_helpers import NOW

    app = PmonApp(store, clock=frozen_clock, refresh_interval=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        await wait_until(pilot, lambda: logs_loaded(app))
        code = ("import sys; from pmon import Monitor\n"
                "m = Monitor(sys.argv[1]); m.record_metric('delta', 'cpu_usage', 7.0, timestamp=%r)\n"
                "m.record_log('delta', 'error', 'written by another process', timestamp=%r)\n"
                "m.stop_monitoring()\n" % (NOW - 1, NOW - 1))
        subprocess.run([sys.executable, "-c", code, str(store)], check=True)
        # The writer process has exited: its rows are committed. From here, two refresh intervals.
        table = app.query_one(LogTable)
        await pilot.pause(2 * app.refresh_interval + 0.3)  # + the read itself, on a slow shared machine
        assert table.get_row_at(table.row_count - 1)[3].plain == "written by another process"
        overview = app.query_one(OverviewTab)
        assert "delta" in {overview.cells_at(i)[0].plain for i in range(overview.table.row_count)}


async def test_no_color_keeps_every_status_readable(store: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        assert app.no_color
        text = screen_text(app)
        for word in ("active", "idle", "down"):
            assert word in text


async def test_n_shows_one_plugins_logs_at_a_time(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        await wait_until(pilot, lambda: logs_loaded(app))
        table = app.query_one(LogTable)
        await pilot.press("n", "n")  # alpha, then beta
        await wait_until(pilot, lambda: app.query_one(LogsTab).loaded and table.row_count == 1)
        assert table.get_row_at(0)[1].plain == "beta"
        assert "plugin beta" in screen_text(app)
        await pilot.press("N", "N")  # back to all
        await wait_until(pilot, lambda: app.query_one(LogsTab).loaded and table.row_count == 4)


async def test_lines_arriving_while_paused_are_counted(store: Path) -> None:
    from pmon import Monitor
    from tui_helpers import NOW

    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("3")
        await wait_until(pilot, lambda: logs_loaded(app))
        await pilot.press("p")
        monitor = Monitor(store, flush_interval=0.05)
        for n in range(3):
            monitor.record_log("alpha", "info", f"while paused {n}", timestamp=NOW - 1)
        monitor.flush()
        monitor.stop_monitoring()
        await wait_until(pilot, lambda: "paused (3 new)" in screen_text(app))
        await pilot.press("f")
        await wait_until(pilot, lambda: "● following" in screen_text(app))


async def test_the_plugin_list_moves_by_key_and_mouse_and_keeps_the_cursor_in_view(tmp_path: Path) -> None:
    from pmon import Monitor
    from tui_helpers import NOW

    from pmon.tui.screens.plugin_screen import PluginScreen

    path = tmp_path / "many.db"
    monitor = Monitor(path, flush_interval=0.05)
    for n in range(40):
        monitor.record_metric(f"plugin_{n:02d}", "cpu_usage", n, timestamp=NOW - 1)
    monitor.flush()
    monitor.stop_monitoring()
    app = console(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        plugins = app.query_one(OverviewTab).table
        await pilot.press("end")
        assert plugins.selected_key == "plugin_39"
        assert "›plugin_39" in screen_text(app)  # scrolled into view, marked without colour
        await pilot.press("home", "pagedown")
        assert plugins.cursor_row > 10
        await pilot.press("home", "down", "down")
        assert plugins.selected_key == "plugin_02"
        await pilot.click(plugins, offset=(5, 5))  # the header is line 0: line 5 is the fifth plugin
        assert plugins.selected_key == "plugin_04"
        await pilot.click(plugins, offset=(5, 5))  # a second click on the highlighted row opens it
        await wait_until(pilot, lambda: isinstance(app.screen, PluginScreen))
        assert app.screen.plugin_id == "plugin_04"


async def test_ctrl_p_stays_quick_on_a_plugin_id_built_to_slow_a_fuzzy_matcher(tmp_path: Path) -> None:
    from pmon import Monitor
    from pmon.tui.commands import plugin_score

    hostile = "a" * 120 + ".b"
    monitor = Monitor(tmp_path / "hostile.db", flush_interval=0.05)
    monitor.record_metric(hostile, "cpu_usage", 1.0)
    monitor.stop_monitoring()
    assert plugin_score("aaaaab", f"plugin: {hostile}") > 0  # linear: Textual's matcher took minutes here
    app = console(tmp_path / "hostile.db")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: overview_loaded(app))
        await pilot.press("ctrl+p")
        await pilot.press(*"aaaaab")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: getattr(app.screen, "plugin_id", None) == hostile)

"""The Snapshots tab and its comparison screen as a user drives them, over a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import TabbedContent
from tui_helpers import NOW, frozen_clock, record_store, screen_text, wait_until

from pmon import Monitor
from pmon.store.schema import open_reader, open_writer
from pmon.tui.app import PmonApp
from pmon.tui.screens.plugin_screen import PluginScreen
from pmon.tui.snapshots_data import SnapshotQuery
from pmon.tui.tabs.snapshots_tab import SnapshotsTab

MARKUP_ID = "[@click=app.quit]x[/]"
ESCAPES = "\x1b]0;pwn\x07 \x1b[31mred \x9b2J \rback \a \u202eevil"
CONTROLS = ("\x1b", "\x07", "\x9b", "\r", "\u202e")
"""Characters that must never reach the terminal."""


def console(path: Path) -> PmonApp:
    return PmonApp(path, clock=frozen_clock, refresh_interval=0.2)


def tab(app: PmonApp) -> SnapshotsTab:
    return app.query_one(SnapshotsTab)


def cell(app: PmonApp, row: int, column: str) -> str:
    table = tab(app).table
    return table.get_cell_at((row, table.get_column_index(column))).plain


def column(app: PmonApp, name: str) -> list[str]:
    return [cell(app, row, name) for row in range(tab(app).table.row_count)]


def cursor_id(app: PmonApp) -> int | None:
    snapshot = tab(app).snapshot_at_cursor()
    return snapshot.id if snapshot else None


async def open_tab(pilot, rows: int = 9) -> SnapshotsTab:  # type: ignore[no-untyped-def]
    app = pilot.app
    await wait_until(pilot, lambda: app.has_data)
    await pilot.press("5")
    await wait_until(pilot, lambda: tab(app).loaded and tab(app).table.row_count == rows)
    return tab(app)


async def cursor_to(pilot, snapshot_id: int) -> None:  # type: ignore[no-untyped-def]
    """Walk the cursor up from the newest row to ``snapshot_id``, as a user would."""
    await pilot.press("end")
    while cursor_id(pilot.app) != snapshot_id:
        before = cursor_id(pilot.app)
        await pilot.press("up")
        assert cursor_id(pilot.app) != before, f"snapshot #{snapshot_id} is not listed"


async def test_key_5_lists_every_snapshot_newest_last_with_its_main_fields(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(120, 30)) as pilot:
        snapshots = await open_tab(pilot)
        assert app.query_one(TabbedContent).active == "snapshots"
        assert column(app, "id") == [str(i) for i in range(1, 10)]
        assert column(app, "plugin") == ["alpha"] * 3 + ["beta"] * 3 + ["gamma"] * 3
        last = snapshots.table.row_count - 1
        assert [cell(app, last, key) for key in ("time", "cpu", "memory", "response", "errors", "requests",
                                                 "throughput", "custom")] == [
            "22:00:00", "30%", "260", "60ms", "3.0%", "1200", "48.0", "queue_depth=5"]
        assert cursor_id(app) == 9  # the cursor follows the newest, as in Logs
        text = screen_text(app)
        assert "● following" in text and "9 snapshots" in text
        assert "m marks A" in text


async def test_n_cycles_plugins_and_slash_filters_by_substring(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        snapshots = await open_tab(pilot)
        await pilot.press("n")
        await wait_until(pilot, lambda: snapshots.loaded and snapshots.table.row_count == 3)
        assert set(column(app, "plugin")) == {"alpha"}
        assert "plugin: alpha" in screen_text(app)
        await pilot.press("n", "n")
        await wait_until(pilot, lambda: snapshots.loaded and set(column(app, "plugin")) == {"gamma"})
        await pilot.press("n")
        await wait_until(pilot, lambda: snapshots.loaded and snapshots.table.row_count == 9)
        await pilot.press("slash", *"et", "enter")
        await wait_until(pilot, lambda: snapshots.loaded and snapshots.table.row_count == 3)
        assert set(column(app, "plugin")) == {"beta"}
        assert "plugin: contains et" in screen_text(app)
        await pilot.press("slash", "ctrl+u", "enter")
        await wait_until(pilot, lambda: snapshots.loaded and snapshots.table.row_count == 9)


async def test_cursor_and_mark_stay_on_their_snapshot_while_new_ones_arrive(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        snapshots = await open_tab(pilot)
        await cursor_to(pilot, 7)
        await pilot.press("space")
        await pilot.press("down")
        assert cursor_id(app) == 8 and not snapshots.table.follow
        monitor = Monitor(store, flush_interval=0.05)
        monitor.create_snapshot("delta", {"cpu_usage": 99.0, "error_rate": 0.5}, timestamp=NOW - 1)
        monitor.flush()
        monitor.stop_monitoring()
        await wait_until(pilot, lambda: snapshots.table.row_count == 10)
        assert column(app, "plugin")[-1] == "delta"
        assert column(app, "cpu")[-1] == "99%" and column(app, "errors")[-1] == "50%"
        assert cursor_id(app) == 8 and snapshots.marked.id == 7
        assert column(app, "mark")[6] == "A"
        assert "‖ paused" in screen_text(app)
        await pilot.press("f")
        assert cursor_id(app) == 10 and snapshots.table.follow


async def test_a_new_snapshot_is_followed_by_the_cursor(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        snapshots = await open_tab(pilot)
        monitor = Monitor(store, flush_interval=0.05)
        monitor.create_snapshot("alpha", {"cpu_usage": 1.0}, timestamp=NOW)
        monitor.flush()
        monitor.stop_monitoring()
        await wait_until(pilot, lambda: snapshots.table.row_count == 10)
        assert cursor_id(app) == 10 and cell(app, 9, "time") == "22:13:20"


async def test_o_opens_the_plugin_screen(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tab(pilot)
        await cursor_to(pilot, 4)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginScreen))
        assert app.screen.plugin_id == "beta"


def hostile_snapshots(path: Path) -> Path:
    """A store written by something other than pmon's Monitor: plugin ids and custom metrics full of tricks."""
    record_store(path)
    conn = open_writer(path)
    try:
        for n, plugin in enumerate((MARKUP_ID, "[bold]b" + ESCAPES)):
            conn.execute("INSERT OR IGNORE INTO plugins (id, first_seen, last_seen) VALUES (?, ?, ?)",
                         (plugin, NOW - 60, NOW - 1))
            for i in range(2):
                custom = {MARKUP_ID: f"[red]{i}[/]", "k" + ESCAPES: ESCAPES, "n": i}
                conn.execute(
                    "INSERT INTO performance_snapshots (plugin_id, timestamp, cpu_usage, memory_usage, response_time, "
                    "error_rate, request_count, throughput, disk_io, network_io, custom_metrics) "
                    "VALUES (?, ?, 1, 2, 3, 0.1, 5, 6, '{}', '{}', ?)",
                    (plugin, NOW - 50 + n * 10 + i, json.dumps(custom)))
    finally:
        conn.close()
    return path


async def test_markup_and_escapes_in_plugin_ids_show_literally(tmp_path: Path) -> None:
    app = console(hostile_snapshots(tmp_path / "pmon.db"))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_tab(pilot, rows=13)
        plugins = column(app, "plugin")
        assert MARKUP_ID in plugins
        assert any(p.startswith("[bold]b\\x1b]0;pwn\\x07") for p in plugins)
        assert "[bold]b\\x1b]0;pwn\\x07" in screen_text(app)
        for control in CONTROLS:
            assert control not in screen_text(app)
        await pilot.press("up", "m", "n", "n", "slash", *"[bold]", "enter")
        await wait_until(pilot, lambda: tab(app).loaded and tab(app).table.row_count == 2)
        assert app.is_running and app.return_code is None


def test_the_tab_reads_a_page_then_only_what_is_new(store: Path) -> None:
    conn = open_reader(store)
    try:
        first = SnapshotQuery().read(conn, NOW)
        assert [s.id for s in first.snapshots] == list(range(1, 10)) and first.newest_id == 9
        assert first.plugins == ("alpha", "beta", "gamma") and first.previous is None
        assert SnapshotQuery(after_id=9).read(conn, NOW).snapshots == ()
        assert [s.id for s in SnapshotQuery(after_id=6).read(conn, NOW).snapshots] == [7, 8, 9]
        assert [s.id for s in SnapshotQuery(plugin_id="beta").read(conn, NOW).snapshots] == [4, 5, 6]
        assert SnapshotQuery(plugin_contains="%").read(conn, NOW).snapshots == ()  # LIKE wildcards are literal
        assert SnapshotQuery(plugin_contains="_").read(conn, NOW).snapshots == ()
        assert [s.id for s in SnapshotQuery(plugin_contains="AMM").read(conn, NOW).snapshots] == [7, 8, 9]
        assert SnapshotQuery(previous_of=6).read(conn, NOW).previous.id == 5  # type: ignore[union-attr]
        assert SnapshotQuery(previous_of=4).read(conn, NOW).previous is None
    finally:
        conn.close()

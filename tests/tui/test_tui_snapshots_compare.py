"""The comparison screen: mark a snapshot, Enter on another, read every field's change; Esc back."""

from __future__ import annotations

from pathlib import Path

from test_tui_snapshots_tab import (
    CONTROLS,
    MARKUP_ID,
    cell,
    console,
    cursor_id,
    cursor_to,
    hostile_snapshots,
    open_tab,
)
from tui_helpers import NOW, screen_text, wait_until

from pmon import Monitor
from pmon.tui.app import PmonApp
from pmon.tui.screens.compare_screen import CompareScreen
from pmon.tui.snapshots_data import SNAPSHOT_PAGE


def compare_rows(app: PmonApp) -> dict[str, list[str]]:
    table = app.screen.table  # type: ignore[attr-defined]
    return {str(table.get_row_at(i)[1].plain): [c.plain for c in table.get_row_at(i)] for i in range(table.row_count)}


async def test_mark_then_enter_compares_a_with_b_field_by_field(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(100, 40)) as pilot:
        snapshots = await open_tab(pilot)
        await cursor_to(pilot, 1)  # alpha's first snapshot
        await pilot.press("m")
        assert snapshots.marked is not None and snapshots.marked.id == 1
        assert cell(app, 0, "mark") == "A"
        assert "A  #1 alpha 22:03:15" in screen_text(app)
        await pilot.press("down", "down", "enter")  # alpha's third
        assert isinstance(app.screen, CompareScreen)
        assert (app.screen.diff.a.id, app.screen.diff.b.id) == (1, 3)
        rows = compare_rows(app)
        assert rows["cpu_usage"] == ["▲", "cpu_usage", "20%", "30%", "+10 pp", "+50.0%"]
        assert rows["memory_usage"] == ["▲", "memory_usage", "200", "260", "+60", "+30.0%"]
        assert rows["response_time"] == ["▲", "response_time", "40 ms", "60 ms", "+20 ms", "+50.0%"]
        assert rows["error_rate"] == ["▲", "error_rate", "1%", "3%", "+2 pp", "+200.0%"]
        assert rows["request_count"] == [" ", "request_count", "1,000", "1,200", "+200", "+20.0%"]  # not watched
        assert rows["throughput"] == [" ", "throughput", "50/s", "48/s", "-2/s", "-4.0%"]
        assert rows["disk_io.read_bytes"][2:] == ["1,000", "3,000", "+2,000", "+200.0%"]
        assert rows["disk_io.write_bytes"][2:] == ["500", "500", "0", "0%"]
        assert rows["network_io.bytes_sent"][2:] == ["2,000", "2,002", "+2", "+0.1%"]
        assert rows["custom_metrics.queue_depth"][2:] == ["3", "5", "+2", "+66.7%"]
        text = screen_text(app)
        assert "▲ 4 regressions: cpu_usage, memory_usage, response_time, error_rate" in text
        assert "A  #1  alpha  2023-11-14 22:03:15 UTC" in text
        assert "B  #3  alpha  2023-11-14 22:09:55 UTC  6m 40s after A" in text
        await pilot.press("x")  # swap: every rise becomes a fall
        assert (app.screen.diff.a.id, app.screen.diff.b.id) == (3, 1)
        assert compare_rows(app)["cpu_usage"][0] == "▼"
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)
        assert snapshots.marked.id == 1 and cell(app, 0, "mark") == "A"  # the mark survives the trip
        assert cursor_id(app) == 3


async def test_enter_without_a_mark_compares_with_the_plugins_previous_snapshot(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        snapshots = await open_tab(pilot)
        await cursor_to(pilot, 5)  # beta's second
        await pilot.press("enter")
        assert isinstance(app.screen, CompareScreen)
        assert (app.screen.diff.a.id, app.screen.diff.b.id) == (4, 5)
        assert "Snapshot #5 beta against the plugin's previous snapshot" in screen_text(app)
        await pilot.press("escape", "up", "enter")  # beta's first: nothing before it
        await wait_until(pilot, lambda: snapshots.waiting_for_previous is None and bool(app._notifications))
        assert not isinstance(app.screen, CompareScreen)
        assert [n.message for n in app._notifications][-1].startswith("No snapshot of beta before #4")


async def test_enter_reads_the_previous_snapshot_when_it_is_older_than_the_list(store: Path) -> None:
    monitor = Monitor(store, flush_interval=0.05)
    for i in range(SNAPSHOT_PAGE + 1):  # ids 10 to 510: the list holds the newest 500, from #11
        monitor.create_snapshot("delta", {"cpu_usage": float(i)}, timestamp=NOW - 1000 + i)
    monitor.flush()
    monitor.stop_monitoring()
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tab(pilot, rows=SNAPSHOT_PAGE)
        await pilot.press("home")
        assert cursor_id(app) == 11
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert (app.screen.diff.a.id, app.screen.diff.b.id) == (10, 11)


async def test_markup_and_escapes_in_custom_metrics_show_literally(tmp_path: Path) -> None:
    app = console(hostile_snapshots(tmp_path / "pmon.db"))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_tab(pilot, rows=13)
        await pilot.press("enter")  # the newest against the one before it
        assert isinstance(app.screen, CompareScreen)
        rows = compare_rows(app)
        assert rows[f"custom_metrics.{MARKUP_ID}"][2:5] == ["[red]0[/]", "[red]1[/]", "changed"]
        assert any(field.startswith("custom_metrics.k\\x1b]0;pwn\\x07 \\x1b[31mred") for field in rows)
        text = screen_text(app)
        assert "[bold]b\\x1b]0;pwn\\x07" in text and f"custom_metrics.{MARKUP_ID}" in text
        for control in CONTROLS:
            assert control not in text
        await pilot.press("down", "down", "x", "escape")
        await pilot.pause(0.3)
        assert app.is_running and app.return_code is None

"""The Events tab and event screen as a user drives them, and the data layer under them, over real SQLite files."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import TabbedContent
from tui_helpers import HOSTILE, NOW, frozen_clock, screen_text, wait_until

from pmon import Monitor, Severity
from pmon.models import EventCategory
from pmon.store.schema import open_reader
from pmon.tui.app import PmonApp
from pmon.tui.events_data import EVENT_PAGE, EventQuery
from pmon.tui.screens.event_screen import EventScreen
from pmon.tui.screens.help_screen import HelpScreen
from pmon.tui.screens.plugin_screen import PluginScreen
from pmon.tui.tabs.events_tab import EventsTab
from pmon.tui.widgets.event_table import EventTable

ALL_TYPES = ["user_login", "request_failed", "alert_memory", "startup", "startup", "startup", "crash"]
"""The store's events by id: the order the tab lists them in, newest last."""


def console(path: Path) -> PmonApp:
    return PmonApp(path, clock=frozen_clock, refresh_interval=0.2)


def record_events(path: Path, *events: tuple[str, str, str, Severity, dict | None]) -> None:
    """Write events the way a plugin host does, through a second Monitor on the same file."""
    monitor = Monitor(path, flush_interval=0.05)
    try:
        for plugin, event_type, description, severity, data in events:
            monitor.record_event(plugin, event_type, description, severity, data, timestamp=NOW - 1)
        monitor.flush()
    finally:
        monitor.stop_monitoring()


def column(table: EventTable, key: str) -> list[str]:
    index = [c.key.value for c in table.ordered_columns].index(key)
    return [table.get_row_at(row)[index].plain for row in range(table.row_count)]


async def open_events(pilot) -> EventTable:
    app = pilot.app
    await wait_until(pilot, lambda: app.overview_tab.table.row_count == 3)
    await pilot.press("4")
    table = app.query_one(EventTable)
    await wait_until(pilot, lambda: table.row_count == len(ALL_TYPES))
    return table


async def shown_after(pilot, *keys: str) -> list[str]:
    """Press ``keys`` (a filter change) and return the event types listed once the new first page arrived."""
    tab = pilot.app.query_one(EventsTab)
    await pilot.press(*keys)
    await wait_until(pilot, lambda: tab.loaded)
    return column(tab.table, "type")


# -- the data layer, without Textual -----------------------------------------------------------


@pytest.fixture
def conn(store: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection, as the console's reader opens it."""
    reader = open_reader(store)
    yield reader
    reader.close()


def test_events_data_imports_no_textual() -> None:
    code = "import sys, pmon.tui.events_data\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_first_page_is_oldest_first_and_names_the_plugins_with_events(conn: sqlite3.Connection) -> None:
    batch = EventQuery().read(conn, NOW)
    assert [e.event_type for e in batch.events] == ALL_TYPES
    assert batch.newest_id == batch.events[-1].id
    assert batch.plugins == ("alpha", "beta", "gamma")


def test_each_filter_narrows_the_events(conn: sqlite3.Connection) -> None:
    def types(**filters: object) -> list[str]:
        return [e.event_type for e in EventQuery(**filters).read(conn, NOW).events]  # type: ignore[arg-type]

    assert types(min_severity=Severity.HIGH) == ["alert_memory", "crash"]
    assert types(category=EventCategory.ERROR) == ["request_failed", "crash"]
    assert types(category=EventCategory.ALERT) == ["alert_memory"]
    assert types(plugin_id="alpha") == ["user_login", "alert_memory", "startup"]
    assert types(text="started") == ["startup"] * 3
    assert types(plugin_id="gamma", min_severity=Severity.MEDIUM, category=EventCategory.ERROR) == ["crash"]


def test_the_tail_reads_only_newer_events_and_skips_ahead_when_none_match(store: Path,
                                                                          conn: sqlite3.Connection) -> None:
    first = EventQuery().read(conn, NOW)
    position = first.tail_after(0)
    assert EventQuery(after_id=position).read(conn, NOW).events == ()
    record_events(store, ("beta", "cache_cleared", "cache emptied", Severity.INFO, None),
                  ("beta", "disk_full", "disk is full", Severity.CRITICAL, {"free": 0}))
    tail = EventQuery(after_id=position).read(conn, NOW)
    assert [e.event_type for e in tail.events] == ["cache_cleared", "disk_full"]
    assert not tail.more_waiting
    # a filter nothing new matches still moves the tail to the newest event, so it never rescans them
    quiet = EventQuery(min_severity=Severity.CRITICAL, category=EventCategory.USER, after_id=position).read(conn, NOW)
    assert quiet.events == () and quiet.tail_after(position) == tail.newest_id


def test_a_full_tail_page_asks_for_more_and_does_not_skip_ahead(tmp_path: Path) -> None:
    path = tmp_path / "many.db"
    record_events(path, *[("alpha", "tick", f"tick {n}", Severity.INFO, None) for n in range(EVENT_PAGE + 5)])
    conn = open_reader(path)
    tail = EventQuery(after_id=0).read(conn, NOW)
    assert len(tail.events) == EVENT_PAGE and tail.more_waiting
    assert tail.tail_after(0) == tail.events[-1].id < tail.newest_id
    rest = EventQuery(after_id=tail.tail_after(0)).read(conn, NOW)
    conn.close()
    assert [e.description for e in rest.events] == [f"tick {n}" for n in range(EVENT_PAGE, EVENT_PAGE + 5)]


# -- the tab ------------------------------------------------------------------------------------


async def test_key_4_shows_the_events_newest_last_with_severity_words(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_events(pilot)
        assert app.query_one(TabbedContent).active == "events"
        assert column(table, "type") == ALL_TYPES
        assert column(table, "severity") == ["LOW", "MEDIUM", "CRITICAL", "INFO", "INFO", "INFO", "HIGH"]
        assert table.cursor_row == table.row_count - 1
        text = screen_text(app)
        assert "● following" in text and "severity ≥ info" in text and "7 events" in text
        assert "error crash: gamma stopped answering" in text  # the highlighted event's category on narrow screens


async def test_wide_screens_show_the_category_column(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await open_events(pilot)
        assert column(table, "category") == ["user", "error", "alert", "system", "system", "system", "error"]


async def test_s_raises_the_minimum_severity(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_events(pilot)
        assert await shown_after(pilot, "s") == ["user_login", "request_failed", "alert_memory", "crash"]
        assert await shown_after(pilot, "s", "s") == ["alert_memory", "crash"]
        assert "severity ≥ high" in screen_text(app)
        assert await shown_after(pilot, "s") == ["alert_memory"]
        assert await shown_after(pilot, "s") == ALL_TYPES  # back to info


async def test_c_cycles_the_category(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_events(pilot)
        assert await shown_after(pilot, "c") == ["startup"] * 3
        assert "category system" in screen_text(app)
        assert await shown_after(pilot, "c") == ["user_login"]
        assert await shown_after(pilot, "c") == ["request_failed", "crash"]
        assert await shown_after(pilot, "c") == ["alert_memory"]
        assert await shown_after(pilot, "c") == ALL_TYPES
        assert "category" not in screen_text(app).splitlines()[3]


async def test_n_cycles_the_plugins_and_filters_combine(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_events(pilot)
        assert await shown_after(pilot, "n") == ["user_login", "alert_memory", "startup"]
        assert "plugin alpha" in screen_text(app)
        assert await shown_after(pilot, "n", "n") == ["startup", "crash"]  # gamma
        assert await shown_after(pilot, "s", "s") == ["crash"]  # gamma, medium and above
        assert await shown_after(pilot, "N") == ["request_failed"]  # beta, medium and above
        assert await shown_after(pilot, "n", "n") == ["request_failed", "alert_memory", "crash"]  # all plugins


async def test_slash_filters_descriptions(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_events(pilot)
        assert await shown_after(pilot, "slash", *"started", "enter") == ["startup"] * 3
        assert "text: started" in screen_text(app)
        assert await shown_after(pilot, "slash", *"nothing like this", "enter") == []
        assert "no events match" in screen_text(app)
        assert await shown_after(pilot, "slash", "ctrl+u", "enter") == ALL_TYPES


async def test_p_pauses_new_events_are_counted_and_f_resumes(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_events(pilot)
        tab = app.query_one(EventsTab)
        await pilot.press("up")
        assert not table.follow and table.cursor_row == 5
        assert "paused" in screen_text(app)
        record_events(store, ("beta", "cache_cleared", "cache emptied", Severity.INFO, None))
        await wait_until(pilot, lambda: table.row_count == 8)
        assert table.cursor_row == 5  # the view stays where the user is reading
        assert "(1 new)" in screen_text(app)
        await pilot.press("f")
        assert table.follow and table.cursor_row == 7
        assert table.unseen == 0 and "● following" in screen_text(app)
        await pilot.press("p")
        assert not table.follow
        await pilot.press("end")
        assert table.follow


async def test_new_events_from_another_monitor_appear_while_following(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_events(pilot)
        record_events(store, ("beta", "disk_full", "disk is full", Severity.CRITICAL, {"free": 0}))
        await wait_until(pilot, lambda: table.row_count == 8)
        assert column(table, "type")[-1] == "disk_full" and column(table, "severity")[-1] == "CRITICAL"
        assert table.cursor_row == 7
        assert "8 events" in screen_text(app)


async def test_a_burst_larger_than_a_page_jumps_to_the_newest_page_while_following(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_events(pilot)
        await pilot.press("1")  # hidden tabs are not read: the burst arrives all at once
        record_events(store, *[("alpha", "tick", f"tick {n}", Severity.INFO, None) for n in range(EVENT_PAGE + 5)])
        await pilot.press("4")
        await wait_until(pilot, lambda: column(table, "description")[-1:] == [f"tick {EVENT_PAGE + 4}"])
        assert table.row_count == EVENT_PAGE and table.cursor_row == EVENT_PAGE - 1
        assert column(table, "description")[0] == "tick 5"


async def test_a_burst_while_paused_is_read_page_by_page_below_the_rows_being_read(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_events(pilot)
        await pilot.press("up", "1")
        record_events(store, *[("alpha", "tick", f"tick {n}", Severity.INFO, None) for n in range(EVENT_PAGE + 5)])
        await pilot.press("4")
        await wait_until(pilot, lambda: table.row_count == len(ALL_TYPES) + EVENT_PAGE + 5)
        assert not table.follow and table.cursor_row == 5
        assert f"({EVENT_PAGE + 5} new)" in screen_text(app)


async def test_enter_shows_the_event_with_its_data_as_pretty_json_and_escape_goes_back(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_events(pilot)
        await pilot.press("up", "up", "up", "up", "enter")
        assert isinstance(app.screen, EventScreen)
        assert app.screen.event_record.event_type == "alert_memory"
        lines = [line.strip() for line in screen_text(app).splitlines()]
        assert "CRITICAL  alert_memory" in lines
        assert any(line.startswith("plugin alpha  category alert  2023-11-14 22:01:40 UTC  event #") for line in lines)
        assert "memory above 90%" in lines
        assert lines.index("{") < lines.index('"limit_mb": 2048,') < lines.index('"rss_mb": 1900') < lines.index("}")
        await pilot.press("escape")
        assert not isinstance(app.screen, EventScreen)
        assert app.query_one(TabbedContent).active == "events"
        assert table.cursor_row == 2 and not table.follow


async def test_an_event_without_data_says_none(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_events(pilot)
        await pilot.press("enter")  # the newest: gamma's crash, recorded without data
        assert isinstance(app.screen, EventScreen)
        lines = [line.strip() for line in screen_text(app).splitlines()]
        assert lines[lines.index("Data") + 1] == "(none)"


async def test_o_opens_the_plugin_screen_from_the_tab_and_from_the_event(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_events(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginScreen))
        assert app.screen.plugin_id == "gamma"
        await pilot.press("escape")
        assert app.query_one(TabbedContent).active == "events" and len(app.screen_stack) == 1
        await pilot.press("up", "enter", "o")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginScreen))
        assert app.screen.plugin_id == "gamma"
        await pilot.press("escape")
        assert isinstance(app.screen, EventScreen)
        await pilot.press("escape")
        assert app.query_one(TabbedContent).active == "events"


async def test_question_mark_lists_the_event_keys(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 30)) as pilot:
        await open_events(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for description in ("Minimum severity", "Category: all", "Plugin: all", "Open the plugin screen",
                            "Pause following", "descriptions containing"):
            assert description in text


def record_hostile_events(path: Path) -> None:
    """Markup and escapes in every text field: through the API, and raw from a foreign writer (any plugin id)."""
    record_events(path, ("alpha", f"t{HOSTILE}"[:128], HOSTILE, Severity.HIGH, {"note": HOSTILE, HOSTILE: [HOSTILE]}))
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO plugin_events (plugin_id, event_type, description, timestamp, severity, data, "
                     "category) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     ("[bold]x[/]\x9b\x1b[2J", "[link=x]t", HOSTILE, NOW, "[@click=app.quit]sev",
                      json.dumps({"k": HOSTILE}), "[i]cat\x07"))
    conn.close()


async def test_hostile_event_text_is_shown_literally_and_does_not_quit(store: Path) -> None:
    record_hostile_events(store)
    app = console(store)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.overview_tab.table.row_count == 3)
        await pilot.press("4")
        table = app.query_one(EventTable)
        await wait_until(pilot, lambda: table.row_count == 9)
        literal = "[@click=app.quit]boom[/] [red]x[/] \\x1b]0;pwn\\x07 \\x1b[31mred\\r\\u202eevil"
        for key, row, shown in (("plugin", -1, "[bold]x[/]\\x9b\\x1b[2J"), ("severity", -1, "[@CLICK=APP.QUIT]SEV"),
                                ("category", -1, "[i]cat\\x07"), ("type", -1, "[link=x]t"),
                                ("description", -1, literal), ("description", -2, literal)):
            cell = column(table, key)[row]
            assert cell and shown.startswith(cell.removesuffix("…")), (key, cell)
        text = screen_text(app)
        for control in ("\x1b", "\x07", "\x9b", "\r", "\u202e"):
            assert control not in text
        await pilot.click(EventTable, offset=(40, table.row_count - 1))
        await pilot.press("enter")
        assert isinstance(app.screen, EventScreen)
        text = screen_text(app)
        assert literal in text  # the description, in full
        assert '"note": "[@click=app.quit]boom[/] [red]x[/] \\u001b]0;pwn\\u0007' in text
        for control in ("\x1b", "\x07", "\x9b", "\r", "\u202e"):
            assert control not in text
        await pilot.click("#event-description")
        await pilot.press("escape", "end", "n")  # "[" sorts first: the plugin filter on the hostile id
        await wait_until(pilot, lambda: app.query_one(EventsTab).loaded and table.row_count == 1)
        assert "plugin [bold]x[/]\\x9b\\x1b[2J" in screen_text(app)
        await pilot.press("enter")
        assert "[@CLICK=APP.QUIT]SEV  [link=x]t" in screen_text(app)
        await pilot.pause(0.3)
        assert app.is_running and app.return_code is None

"""The console application: tabs over one read-only database, refreshed by a worker thread.

The refresh cycle (after Dolphie): a thread worker reads everything the tabs
need, posts one message, and the handler schedules the next read with
``set_timer``, so reads never overlap and a slow disk only slows the refresh,
never the keyboard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Footer, Header, TabbedContent, TabPane
from textual.worker import get_current_worker

from pmon.store.schema import StoreError
from pmon.tui.messages import DataRead, ReadFailed
from pmon.tui.reader import ConsoleReader, LogQuery
from pmon.tui.screens.help_screen import HelpScreen
from pmon.tui.tabs.logs_tab import LogsTab
from pmon.tui.tabs.overview_tab import OverviewTab
from pmon.tui.tabs.placeholder_tab import PlaceholderTab
from pmon.tui.widgets.welcome_panel import WelcomePanel

TABS = ("overview", "metrics", "logs", "events", "snapshots")
"""Tab ids in the order keys 1-5 select them."""


class PmonApp(App[None]):
    """pmon's console over the database at ``db_path``.

    ``clock`` is the app's notion of now (status ages, time windows); tests
    pass a fixed one so screens are reproducible.
    """

    CSS_PATH = "pmon.tcss"
    TITLE = "pmon"

    BINDINGS = [
        Binding("1", "show_tab('overview')", "Overview", show=False),
        Binding("2", "show_tab('metrics')", "Metrics", show=False),
        Binding("3", "show_tab('logs')", "Logs", show=False),
        Binding("4", "show_tab('events')", "Events", show=False),
        Binding("5", "show_tab('snapshots')", "Snapshots", show=False),
        Binding("r", "refresh_now", "Refresh", show=False),
        Binding("question_mark", "show_keys", "Keys"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, db_path: Path, *, refresh_interval: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        """The database file shown (opened read-only)."""
        self.refresh_interval = refresh_interval
        """Seconds between the end of one read and the start of the next."""
        self.clock = clock
        """Now, in epoch seconds."""
        self.reader = ConsoleReader(self.db_path)
        """The read-only store connection, used only from worker threads."""
        self.has_data = False
        """True once a read found at least one plugin; from then on failures are notices, not the welcome."""
        self._next_read: Timer | None = None
        self._last_failure = ""
        self.sub_title = str(self.db_path)

    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with ContentSwitcher(initial="welcome", id="main"):
            yield WelcomePanel(self.db_path, id="welcome")
            with Container(id="console"):
                with TabbedContent(id="tabs"):
                    with TabPane("1 Overview", id="overview"):
                        yield OverviewTab(id="overview-tab")
                    with TabPane("2 Metrics", id="metrics"):
                        yield PlaceholderTab("Metrics", "A chart of one plugin's metrics over 5m / 15m / 1h / 6h / "
                                             "24h / 7d / 30d with min, avg, p95 and max beside it.")
                    with TabPane("3 Logs", id="logs"):
                        yield LogsTab(id="logs-tab")
                    with TabPane("4 Events", id="events"):
                        yield PlaceholderTab("Events", "Events coloured by severity, filtered by category and "
                                             "severity; Enter opens one with its data.")
                    with TabPane("5 Snapshots", id="snapshots"):
                        yield PlaceholderTab("Snapshots", "Snapshots per plugin; mark one and pick another to "
                                             "compare them field by field (A, B, delta, % change).")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh_now()

    # -- the refresh cycle --------------------------------------------------------

    def action_refresh_now(self) -> None:
        """`r`: read now instead of waiting for the timer."""
        if self._next_read is not None:
            self._next_read.stop()
            self._next_read = None
        self._read(self.clock(), self.query_one(LogsTab).next_query())

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def _read(self, now: float, log_query: LogQuery) -> None:
        """Runs on a worker thread: all SQLite access happens here, never on the event loop."""
        worker = get_current_worker()
        message: DataRead | ReadFailed
        try:
            message = DataRead(self.reader.read(now, log_query))
        except StoreError as exc:
            message = ReadFailed(str(exc))
        except Exception as exc:  # noqa: BLE001 - a refresh must never take the console down
            message = ReadFailed(f"{type(exc).__name__}: {exc}")
        if not worker.is_cancelled:
            self.post_message(message)

    def _schedule_next_read(self) -> None:
        if self._next_read is not None:
            self._next_read.stop()
        self._next_read = self.set_timer(self.refresh_interval, self.action_refresh_now)

    def on_data_read(self, message: DataRead) -> None:
        reading = message.reading
        self._schedule_next_read()
        if not reading.overview.rows and not self.has_data:
            self.query_one(WelcomePanel).show_reason("the database exists but no plugin has recorded anything yet")
            return
        if not self.has_data:
            self.has_data = True
            self.query_one("#main", ContentSwitcher).current = "console"
            self.query_one(OverviewTab).table.focus()
        if self._last_failure:
            self._last_failure = ""
            self.notify("Reading the database again.", title="Recovered", markup=False)
        self.query_one(OverviewTab).show(reading.overview)
        self.query_one(LogsTab).show(reading.logs)

    def on_read_failed(self, message: ReadFailed) -> None:
        self._schedule_next_read()
        if not self.has_data:
            self.query_one(WelcomePanel).show_reason(message.reason)
        elif message.reason != self._last_failure:
            self.notify(f"{message.reason}\nRetrying every {self.refresh_interval:g} s.", title="Cannot read",
                        severity="warning", markup=False)
        self._last_failure = message.reason

    def on_logs_tab_query_changed(self, message: LogsTab.QueryChanged) -> None:
        self.action_refresh_now()

    def on_unmount(self) -> None:
        self.reader.close()

    # -- navigation ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show_tab" and not self.has_data:
            return False
        return True

    def action_show_tab(self, tab: str) -> None:
        """Keys 1-5: switch tab and put the keyboard on its table."""
        self.query_one(TabbedContent).active = tab
        pane = self.query_one(f"#{tab}", TabPane)
        tables = pane.query("DataTable")
        if tables:
            tables.first().focus()
        else:
            self.set_focus(None)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tables = event.pane.query("DataTable")
        if tables:
            tables.first().focus()

    def action_show_keys(self) -> None:
        """`?`: the keys that work right now, from the live bindings."""
        keys: list[tuple[str, str]] = []
        seen: set[str] = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.description in seen or not active.enabled:
                continue
            seen.add(binding.description)
            keys.append((self.get_key_display(binding), binding.description))
        extra = [("1-5", "switch tab"), ("↑ ↓ PgUp PgDn", "move in a table"), ("Enter", "open the highlighted row"),
                 ("Ctrl+P", "command palette")]
        keys = [row for row in keys if row[1] not in {d for _, d in extra}] + extra
        title = self.query_one(TabbedContent).active if self.has_data else "welcome"
        self.push_screen(HelpScreen(title, keys))


def run(db_path: Path, *, refresh_interval: float = 1.0) -> None:
    """Open the console on ``db_path`` (read-only) until the user quits."""
    PmonApp(db_path, refresh_interval=refresh_interval).run()

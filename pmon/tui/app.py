"""The console application: tabs over one read-only database, refreshed by a worker thread.

The refresh cycle (after Dolphie): a thread worker reads everything the tabs
need, posts one message, and the handler schedules the next read with
``set_timer``, so reads never overlap and a slow disk only slows the refresh,
never the keyboard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.await_complete import AwaitComplete
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Container, ScrollableContainer
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import ContentSwitcher, DataTable, Footer, Header, TabbedContent, TabPane
from textual.worker import get_current_worker

from pmon.store.schema import StoreError
from pmon.tui.commands import PluginCommands
from pmon.tui.live_panel import LivePanel
from pmon.tui.messages import DataRead, OpenPlugin, ReadFailed, RefreshWanted
from pmon.tui.reader import ConsoleReader, LogQuery, PanelQuery
from pmon.tui.screens.help_screen import HelpScreen
from pmon.tui.screens.plugin_screen import PluginScreen
from pmon.tui.tabs.events_tab import EventsTab
from pmon.tui.tabs.logs_tab import LogsTab
from pmon.tui.tabs.metrics_tab import MetricsTab
from pmon.tui.tabs.overview_tab import OverviewTab
from pmon.tui.tabs.snapshots_tab import SnapshotsTab
from pmon.tui.widgets.welcome_panel import WelcomePanel

# Textual's own movement keys: the help screen sums them up in one line instead of fourteen.
_FRAMEWORK_KEYS = {(b.key, b.action) for cls in (DataTable, ScrollableContainer, App, Screen) for b in cls.BINDINGS
                   if isinstance(b, Binding)}


_TAB_HELP = {
    "overview": "Every plugin's health at a glance",
    "metrics": "A chart of one plugin's metric over a time range",
    "logs": "Live tail of the logs, with filters",
    "events": "Events by severity and category",
    "snapshots": "Performance snapshots; compare two",
}


class PmonApp(App[None]):
    """pmon's console over the database at ``db_path``.

    ``clock`` is the app's notion of now (status ages, time windows); tests
    pass a fixed one so screens are reproducible.
    """

    CSS_PATH = "pmon.tcss"
    COMMANDS = App.COMMANDS | {PluginCommands}
    TITLE = "pmon"
    AUTO_FOCUS = None  # the welcome panel has nothing to focus; the plugin table gets focus when data arrives

    BINDINGS = [
        Binding("1", "show_tab('overview')", "Overview", show=False),
        Binding("2", "show_tab('metrics')", "Metrics", show=False),
        Binding("3", "show_tab('logs')", "Logs", show=False),
        Binding("4", "show_tab('events')", "Events", show=False),
        Binding("5", "show_tab('snapshots')", "Snapshots", show=False),
        Binding("r", "refresh_now", "Refresh", show=False, tooltip="Read the database now"),
        Binding("question_mark", "show_keys", "Keys", tooltip="This list"),
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
        self.overview_tab = OverviewTab(id="overview-tab")
        """The Overview tab's content (held here: queries only search the screen on top)."""
        self.logs_tab = LogsTab(id="logs-tab")
        """The Logs tab's content."""
        self.welcome = WelcomePanel(self.db_path, id="welcome")
        """Shown until the database has a plugin."""
        self.switcher = ContentSwitcher(initial="welcome", id="main")
        """Welcome panel or tabs."""
        self.tabs = TabbedContent(id="tabs")
        """The five tabs."""
        self.plugin_screen: PluginScreen | None = None
        """The drill-down screen, composed on first use and reused (installed, so popping keeps it)."""
        self._next_read: Timer | None = None
        self._last_failure = ""
        self.sub_title = str(self.db_path)

    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with self.switcher:
            yield self.welcome
            with Container(id="console"):
                with self.tabs:
                    with TabPane("1 Overview", id="overview"):
                        yield self.overview_tab
                    with TabPane("2 Metrics", id="metrics"):
                        yield MetricsTab(id="metrics-tab")
                    with TabPane("3 Logs", id="logs"):
                        yield self.logs_tab
                    with TabPane("4 Events", id="events"):
                        yield EventsTab(id="events-tab")
                    with TabPane("5 Snapshots", id="snapshots"):
                        yield SnapshotsTab(id="snapshots-tab")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh_now()

    # -- the refresh cycle --------------------------------------------------------

    def action_refresh_now(self) -> None:
        """`r`: read now instead of waiting for the timer."""
        if not self.is_running:
            return
        if self._next_read is not None:
            self._next_read.stop()
            self._next_read = None
        panels: dict[str, PanelQuery] = {}
        for panel in self._visible_panels():
            query = panel.panel_query()
            if query is not None:
                panels[panel.panel_key] = query
        # Under a drill-down screen the tabs are hidden: read only what the screen shows.
        tabs = len(self.screen_stack) == 1 or not self.has_data
        self._read(self.clock(), self.logs_tab.next_query(), panels, tabs)

    def _visible_panels(self) -> list[LivePanel]:
        """The active tab's panel (unless a screen covers the tabs) and the screen on top, if they read data."""
        panels: list[LivePanel] = []
        if self.has_data and len(self.screen_stack) == 1 and self.tabs.active and self.tabs.is_mounted:
            try:
                pane = self.tabs.get_pane(self.tabs.active)
            except NoMatches:  # the app is shutting down
                pane = None
            if pane is not None:
                panels += [w for w in pane.children if isinstance(w, LivePanel)]
        if self.screen_stack and isinstance(self.screen_stack[-1], LivePanel):
            panels.append(self.screen_stack[-1])
        return panels

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def _read(self, now: float, log_query: LogQuery, panels: dict[str, PanelQuery], tabs: bool) -> None:
        """Runs on a worker thread: all SQLite access happens here, never on the event loop."""
        worker = get_current_worker()
        message: DataRead | ReadFailed
        try:
            message = DataRead(self.reader.read(now, log_query, panels, tabs=tabs))
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
        if not self.is_running:  # arrived while the app shuts down
            return
        reading = message.reading
        self._schedule_next_read()
        if reading.overview is not None and not reading.overview.rows and not self.has_data:
            self.welcome.show_reason("the database exists but no plugin has recorded anything yet")
            return
        if not self.has_data and reading.overview is not None:
            self.has_data = True
            self.switcher.current = "console"
            self.overview_tab.table.focus()
            self.call_after_refresh(self._prepare_plugin_screen)
        if self._last_failure:
            self._last_failure = ""
            self.notify("Reading the database again.", title="Recovered", markup=False)
        if reading.overview is not None:
            self.overview_tab.show(reading.overview)
        if reading.logs is not None:
            self.logs_tab.show(reading.logs)
        for panel in self._visible_panels():
            if panel.panel_key in reading.panels:
                panel.show_panel(reading.panels[panel.panel_key])

    def on_read_failed(self, message: ReadFailed) -> None:
        if not self.is_running:
            return
        self._schedule_next_read()
        if not self.has_data:
            self.welcome.show_reason(message.reason)
        elif message.reason != self._last_failure:
            self.notify(f"{message.reason}\nRetrying every {self.refresh_interval:g} s.", title="Cannot read",
                        severity="warning", markup=False)
        self._last_failure = message.reason

    def on_logs_tab_query_changed(self, message: LogsTab.QueryChanged) -> None:
        self.action_refresh_now()

    def pop_screen(self) -> AwaitComplete:
        """Back one level; the tabs were not read while a drill-down covered them, so read now."""
        result = super().pop_screen()
        if len(self.screen_stack) == 1:
            self.call_later(self.action_refresh_now)
        return result

    def on_refresh_wanted(self, message: RefreshWanted) -> None:
        self.action_refresh_now()

    def _prepare_plugin_screen(self) -> None:
        """Compose the plugin screen while the user reads the overview: the first Enter then only reads.

        Composing it costs more than reading a plugin's data (about 120 ms
        here); ``_get_screen`` is what ``push_screen`` does before showing a
        screen, without showing it.
        """
        if self.plugin_screen is None and self.overview_tab.overview and self.overview_tab.overview.rows:
            screen = self.plugin_screen = PluginScreen(self.overview_tab.overview.rows[0].plugin_id)
            self.install_screen(screen, "plugin")
            compose = getattr(self, "_get_screen", None)  # Textual's private step; without it Enter composes
            if compose is not None:
                compose(screen)

    def on_open_plugin(self, message: OpenPlugin) -> None:
        """Enter on a plugin anywhere: its screen, read at once."""
        screen = self.plugin_screen
        if screen is None:
            screen = self.plugin_screen = PluginScreen(message.plugin_id)
            self.install_screen(screen, "plugin")
        if screen in self.screen_stack:  # e.g. `o` on an event reached from the plugin screen: step back to it
            while self.screen is not screen:
                self.pop_screen()
        else:
            self.push_screen(screen)
        if screen.plugin_id != message.plugin_id or screen.view is None:
            screen.show_plugin(message.plugin_id)
        self.action_refresh_now()

    def on_unmount(self) -> None:
        self.reader.close()

    # -- navigation ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show_tab" and not self.has_data:
            return False
        return True

    def action_show_tab(self, tab: str) -> None:
        """Keys 1-5: switch tab (from any screen, stepping back to the tabs) and focus its table."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.tabs.active = tab
        table = _shown_table(self.tabs.get_pane(tab))
        if table is not None:
            table.focus()
        else:
            self.set_focus(None)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        table = _shown_table(event.pane)
        if table is not None and self.has_data:
            table.focus()
        if self.has_data:
            self.action_refresh_now()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Ctrl+P: every tab, refresh and the key list, beside Textual's own (theme, quit...)."""
        # Textual's own "Keys" shows its key panel; ours (below) lists this screen's keys.
        yield from (command for command in super().get_system_commands(screen) if command.title != "Keys")
        if self.has_data:
            for key, (tab, what) in enumerate(_TAB_HELP.items(), start=1):
                yield SystemCommand(f"Go to {tab.title()} ({key})", what, partial(self.action_show_tab, tab))
        yield SystemCommand("Refresh now (r)", "Read the database now", self.action_refresh_now)
        yield SystemCommand("Keys (?)", "List the keys of this screen", self.action_show_keys)

    def action_show_keys(self) -> None:
        """`?`: the keys that work right now, from the live bindings."""
        by_description: dict[str, list[str]] = {}
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if ((binding.key, binding.action) in _FRAMEWORK_KEYS or not binding.description or not active.enabled
                    or binding.action.startswith("show_tab") or binding.action == "command_palette"):
                continue
            by_description.setdefault(binding.tooltip or binding.description, []).append(self.get_key_display(binding))
        keys = [(" ".join(sorted(names, key=len)), description) for description, names in by_description.items()]
        if self.has_data:
            keys += [("1-5", "Switch tab"), ("↑ ↓ PgUp PgDn", "Move in the table"), ("Enter", "Open the row"),
                     ("Tab", "Next widget"), ("Ctrl+P", "Command palette")]
        if len(self.screen_stack) > 1:  # a drill-down screen: "PluginScreen" -> "Plugin screen"
            title = type(self.screen).__name__.removesuffix("Screen") + " screen"
        else:
            title = f"{self.tabs.active.title()} tab" if self.has_data else "no data yet"
        self.push_screen(HelpScreen(title, keys))


def _shown_table(pane: Widget) -> Widget | None:
    """The first table of a tab that is not hidden (the Logs tab holds the tail and the error groups)."""
    return next((table for table in pane.query("DataTable, PluginList") if table.display), None)


def run(db_path: Path, *, refresh_interval: float = 1.0) -> None:
    """Open the console on ``db_path`` (read-only) until the user quits."""
    PmonApp(db_path, refresh_interval=refresh_interval).run()

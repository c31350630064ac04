"""Logs: a live tail with level, plugin and text filters; Enter opens one log in full."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable

from pmon.models import LogLevel, PluginLog
from pmon.tui.messages import OpenPlugin
from pmon.tui.reader import LOG_PAGE, LogBatch, LogQuery
from pmon.tui.safe_text import safe_text
from pmon.tui.screens.log_screen import LogScreen
from pmon.tui.styles import LEVEL_STYLES
from pmon.tui.widgets.filter_input import FilterInput
from pmon.tui.widgets.log_table import MAX_ROWS, LogTable
from pmon.tui.widgets.status_line import StatusLine

LEVEL_CYCLE: tuple[LogLevel | None, ...] = (None, LogLevel.INFO, LogLevel.WARNING, LogLevel.ERROR, LogLevel.CRITICAL)
"""Minimum levels in the order `l` cycles them (None: everything)."""


class LogsTab(Vertical):
    """Owns the Logs filters; the app asks it for the next ``LogQuery`` before each refresh."""

    DEFAULT_CSS = """
    LogsTab #logs-status {
        height: 1;
        padding: 0 1;
    }
    LogsTab #logs {
        height: 1fr;
    }
    """

    BINDINGS = [
        Binding("p", "pause", "Pause", tooltip="Pause following (new lines keep arriving below)"),
        Binding("f", "follow", "Follow", tooltip="Jump to the newest line and follow"),
        Binding("l", "cycle_level", "Level", tooltip="Minimum level: debug, info, warning, error, critical"),
        Binding("g", "cycle_plugin", "Plugin", tooltip="Plugin: all, then each plugin in turn"),
        Binding("G", "cycle_plugin(-1)", "Plugin back", show=False, tooltip="Plugin filter, backwards"),
        Binding("slash", "filter", "Filter", tooltip="Show messages containing a text (empty: all)"),
        Binding("o", "open_plugin", "Open plugin", tooltip="Open the plugin screen of the log under the cursor"),
    ]

    @dataclass
    class QueryChanged(Message):
        """Filters changed: the app should refresh now rather than within a second."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.generation = 0
        """Bumped on every filter change, so answers to older queries are ignored."""
        self.level_index = 0
        """Position in LEVEL_CYCLE."""
        self.text = ""
        """Substring the message must contain ("" for none)."""
        self.plugin_id: str | None = None
        """The one plugin shown (None: all)."""
        self._waiting: list[PluginLog] = []
        self.loaded = False
        """True once the current generation's first page has arrived; until then the query has no after_id."""
        self.after_id = 0
        """Tail position: every log up to this id has been read for the current filters."""

    def compose(self) -> ComposeResult:
        yield StatusLine(id="logs-status")
        yield LogTable(id="logs")
        yield FilterInput(placeholder="message contains… (Enter applies, Esc cancels)", id="logs-filter")

    def on_mount(self) -> None:
        self._draw_status()

    @property
    def table(self) -> LogTable:
        """The log lines."""
        return self.query_one(LogTable)

    @property
    def min_level(self) -> LogLevel | None:
        """The lowest level shown (None: all)."""
        return LEVEL_CYCLE[self.level_index]

    def next_query(self) -> LogQuery:
        """What to read on the next refresh: the first page, or what came after the newest line shown."""
        return LogQuery(self.generation, self.min_level, self.text or None, self.after_id if self.loaded else None,
                        self.plugin_id)

    def show(self, batch: LogBatch) -> None:
        """Take a refresh's logs; answers to an older filter are dropped."""
        if batch.query.generation != self.generation:
            return
        if self.loaded and batch.query.after_id != self.after_id:
            return
        table = self.table
        if batch.query.after_id is None:
            table.replace_logs(batch.logs)
            self.loaded = True
        elif batch.logs:
            self._waiting.extend(batch.logs)
            del self._waiting[:-MAX_ROWS]
            if self.region.area:  # shown: draw now; hidden, a new row would cost a layout of the screen each tick
                self._append_waiting()
        last_read = max((log.id or 0 for log in batch.logs), default=0)
        complete = batch.query.after_id is None or len(batch.logs) < LOG_PAGE
        self.after_id = max(self.after_id, last_read, batch.newest_id if complete else 0)
        self._draw_status()

    def _append_waiting(self) -> None:
        if self._waiting:
            self.table.append_logs(self._waiting)
            self._waiting = []

    def on_show(self) -> None:
        self._append_waiting()
        self._draw_status()

    def _query_changed(self) -> None:
        self._waiting = []
        self.generation += 1
        self.loaded = False
        self.after_id = 0
        self.table.replace_logs([])
        self.table.follow = True
        self._draw_status()
        self.post_message(self.QueryChanged())

    def _draw_status(self) -> None:
        table = self.table
        line = table.follow_status()
        level = self.min_level
        line.append("  level ≥ ", "dim")
        line.append("debug" if level is None else str(level), LEVEL_STYLES.get("debug" if level is None else level, ""))
        if self.plugin_id is not None:
            line.append("  plugin ", "dim")
            line.append_text(safe_text(self.plugin_id, "bold"))
        if self.text:
            line.append("  text: ", "dim")
            line.append_text(safe_text(self.text, "bold"))
        line.append(f"  {table.row_count} lines" if self.loaded else "  loading…", "dim")
        self.query_one("#logs-status", StatusLine).show(line)

    def on_log_table_follow_changed(self, event: LogTable.FollowChanged) -> None:
        event.stop()
        if self.is_mounted:
            self._draw_status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        log = self.table.log_at_cursor()
        if log is not None:
            self.app.push_screen(LogScreen(log))

    def action_open_plugin(self) -> None:
        """`o`: the plugin screen of the highlighted log's plugin."""
        log = self.table.log_at_cursor()
        if log is not None:
            self.post_message(OpenPlugin(log.plugin_id))

    def action_pause(self) -> None:
        """`p`: stop moving to new lines (they keep arriving below)."""
        self.table.follow = False

    def action_follow(self) -> None:
        """`f`: jump to the newest line and follow again."""
        self.table.action_follow()

    def action_cycle_level(self) -> None:
        """`l`: raise the minimum level (debug → info → warning → error → critical → debug)."""
        self.level_index = (self.level_index + 1) % len(LEVEL_CYCLE)
        self._query_changed()

    def action_cycle_plugin(self, step: int = 1) -> None:
        """`g` / `G`: only the next / previous plugin's logs (plugins as the overview lists them), then all."""
        overview = self.app.overview_tab.overview  # type: ignore[attr-defined]
        plugins = [row.plugin_id for row in overview.rows] if overview is not None else []
        choices: list[str | None] = [None, *sorted(plugins)]
        if self.plugin_id not in choices:
            choices.append(self.plugin_id)
        self.plugin_id = choices[(choices.index(self.plugin_id) + step) % len(choices)]
        self._query_changed()

    def action_filter(self) -> None:
        """`/`: show only messages containing a text."""
        self.query_one(FilterInput).open(self.text)

    def on_filter_input_applied(self, event: FilterInput.Applied) -> None:
        event.stop()
        if event.text != self.text:
            self.text = event.text
            self._query_changed()

    def on_filter_input_closed(self, event: FilterInput.Closed) -> None:
        event.stop()
        self.table.focus()

"""Logs: a live tail with level, plugin and text filters, or the error groups of the last 24 h; Enter opens a log."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable

from pmon.models import LogLevel, PluginLog
from pmon.tui.error_groups_data import GROUPS_RANGE, GroupingSchedule, GroupsQuery, GroupsView
from pmon.tui.live_panel import LivePanel
from pmon.tui.messages import OpenPlugin
from pmon.tui.plugin_data import range_label
from pmon.tui.reader import LOG_PAGE, LogBatch, LogQuery
from pmon.tui.safe_text import safe_text
from pmon.tui.screens.log_screen import LogScreen
from pmon.tui.styles import LEVEL_STYLES
from pmon.tui.widgets.error_group_table import ErrorGroupTable
from pmon.tui.widgets.filter_input import FilterInput
from pmon.tui.widgets.log_table import MAX_ROWS, LogTable
from pmon.tui.widgets.status_line import StatusLine

LEVEL_CYCLE: tuple[LogLevel | None, ...] = (None, LogLevel.INFO, LogLevel.WARNING, LogLevel.ERROR, LogLevel.CRITICAL)
"""Minimum levels in the order `l` cycles them (None: everything)."""


TAIL_ONLY = frozenset({"pause", "follow", "cycle_level", "filter"})
"""Actions that only mean something for the tail, greyed out in the groups view."""


class LogsTab(Vertical, LivePanel):
    """Owns the Logs filters; the app asks it for the next ``LogQuery`` before each refresh.

    `g` swaps the tail for the error groups, which it reads as a panel (only
    while shown, at most every GROUPS_EVERY seconds); the tail keeps reading
    underneath, so going back shows what came meanwhile.
    """

    DEFAULT_CSS = """
    LogsTab #logs-status {
        height: 1;
        padding: 0 1;
    }
    LogsTab #logs, LogsTab #log-groups {
        height: 1fr;
    }
    LogsTab #log-groups {
        display: none;
    }
    LogsTab.-grouped #log-groups {
        display: block;
    }
    LogsTab.-grouped #logs {
        display: none;
    }
    """

    BINDINGS = [
        Binding("p", "pause", "Pause", tooltip="Pause following (new lines keep arriving below)"),
        Binding("f", "follow", "Follow", tooltip="Jump to the newest line and follow"),
        Binding("l", "cycle_level", "Level", tooltip="Minimum level: debug, info, warning, error, critical"),
        Binding("g", "toggle_groups", "Groups", tooltip="Error groups of the last 24 h / back to the live tail"),
        Binding("n", "cycle_plugin", "Plugin", tooltip="Plugin: all, then each plugin in turn"),
        Binding("N", "cycle_plugin(-1)", "Plugin back", show=False, tooltip="Plugin filter, backwards"),
        Binding("slash", "filter", "Filter", tooltip="Show messages containing a text (empty: all)"),
        Binding("o", "open_plugin", "Open plugin", tooltip="Open the plugin screen of the log or group under the cursor"),
    ]

    panel_key = "error-groups"

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
        self.grouped = False
        """True while the error groups are shown instead of the tail."""
        self.groups: GroupsView | None = None
        """The groups shown (None: not read yet for the current plugin filter)."""
        self._schedule = GroupingSchedule()

    def compose(self) -> ComposeResult:
        yield StatusLine(id="logs-status")
        yield LogTable(id="logs")
        yield ErrorGroupTable(id="log-groups")
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

    @property
    def group_table(self) -> ErrorGroupTable:
        """The error groups."""
        return self.query_one(ErrorGroupTable)

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
            if self.region.area and not self.grouped:  # shown: draw now; hidden, a new row would cost a layout of the screen each tick
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
        if not self.grouped:
            self._append_waiting()
        self._draw_status()

    # -- the error groups ---------------------------------------------------------

    def panel_query(self) -> GroupsQuery | None:
        """The groups, while shown: at once for a new filter, else at most every GROUPS_EVERY seconds."""
        if not self.grouped or not self._schedule.due(self.generation, time.monotonic()):
            return None
        return GroupsQuery(self.generation, self.plugin_id)

    def show_panel(self, result: object) -> None:
        """Take a grouping; one for an older plugin filter is dropped."""
        if not isinstance(result, GroupsView) or result.query.generation != self.generation:
            return
        self.groups = result
        self._schedule.answered(result.query.generation, time.monotonic())
        self.group_table.show_groups(result.groups, result.read_at)
        self._draw_status()

    def action_toggle_groups(self) -> None:
        """`g`: the error groups of the last 24 h instead of the tail, or back."""
        self.grouped = not self.grouped
        self.set_class(self.grouped, "-grouped")
        self._schedule.reset()
        if self.grouped:
            self.group_table.focus()
        else:
            self._append_waiting()
            self.table.focus()
        self.refresh_bindings()
        self._draw_status()
        self.post_message(self.QueryChanged())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.grouped and action in TAIL_ONLY:
            return False  # the tail's keys: out of the footer while the groups are shown
        return True

    def _query_changed(self) -> None:
        self.groups = None
        self.group_table.show_groups((), 0)
        self._waiting = []
        self.generation += 1
        self.loaded = False
        self.after_id = 0
        self.table.replace_logs([])
        self.table.follow = True
        self._draw_status()
        self.post_message(self.QueryChanged())

    def _draw_status(self) -> None:
        if self.grouped:
            self._draw_groups_status()
            return
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

    def _draw_groups_status(self) -> None:
        line = Text.assemble(("error groups", "bold"), (f"  last {range_label(GROUPS_RANGE)}", "dim"))
        if self.plugin_id is not None:
            line.append("  plugin ", "dim")
            line.append_text(safe_text(self.plugin_id, "bold"))
        if self.groups is None:
            line.append("  grouping…", "dim")
        else:
            errors = sum(shown.group.count for shown in self.groups.groups)
            line.append(f"  {len(self.groups.groups)} groups, {errors:,} errors", "dim")
        line.append("  g: the tail", "dim")
        self.query_one("#logs-status", StatusLine).show(line)

    def on_log_table_follow_changed(self, event: LogTable.FollowChanged) -> None:
        event.stop()
        if self.is_mounted:
            self._draw_status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        log = self._log_at_cursor()
        if log is not None:
            self.app.push_screen(LogScreen(log))
        elif self.grouped and self.group_table.group_at_cursor() is not None:
            self.notify("The group's example log is no longer in the database.", severity="warning", markup=False)

    def _log_at_cursor(self) -> PluginLog | None:
        """The highlighted log, or in the groups view the highlighted group's newest log."""
        if not self.grouped:
            return self.table.log_at_cursor()
        shown = self.group_table.group_at_cursor()
        return shown.example if shown is not None else None

    def action_open_plugin(self) -> None:
        """`o`: the plugin screen of the highlighted log's plugin (in the groups view: its example's)."""
        log = self._log_at_cursor()
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
        """`n` / `N`: only the next / previous plugin's logs (plugins as the overview lists them), then all."""
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

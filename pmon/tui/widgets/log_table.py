"""A table of log lines that tails like ``tail -f`` until the user looks back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from pmon.models import PluginLog
from pmon.tui import units
from pmon.tui.safe_text import first_line, safe_text

LEVEL_STYLES = {
    "debug": "dim",
    "info": "cyan",
    "warning": "yellow",
    "error": "bold red",
    "critical": "bold reverse red",
}
"""Rich style per log level; the level's name is always shown too, so NO_COLOR loses nothing."""

MAX_ROWS = 1000
"""Rows kept while following; older rows drop off (they stay in the store)."""

_COLUMN_WIDTHS = (("time", 8), ("plugin", 14), ("level", 8))
_FIXED_WIDTH = sum(width for _, width in _COLUMN_WIDTHS) + 4 * 2  # and one padding cell each side of 4 columns
_SCROLLBAR = 2


class LogTable(DataTable[Text]):
    """Log lines, oldest at the top; follows new lines until the user scrolls up, `p` pauses, `f`/End resumes."""

    BINDINGS = [Binding("end", "follow", "Follow", show=False, tooltip="Jump to the newest line and follow")]

    follow: reactive[bool] = reactive(True)
    """True while the newest line is kept in view."""

    @dataclass
    class FollowChanged(Message):
        """Follow mode switched on or off (by a key or by scrolling)."""

        log_table: LogTable
        follow: bool

        @property
        def control(self) -> LogTable:
            return self.log_table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._logs: dict[str, PluginLog] = {}
        self._rendered_width = 0

    def on_mount(self) -> None:
        self._set_columns(self._message_width())

    def _set_columns(self, message_width: int) -> None:
        """Fixed widths: the message takes what is left, so the table never scrolls sideways."""
        self.clear(columns=True)
        for key, width in _COLUMN_WIDTHS:
            self.add_column(key, width=width, key=key)
        self.add_column("message", width=message_width, key="message")
        self._rendered_width = message_width

    def watch_follow(self, follow: bool) -> None:
        self.post_message(self.FollowChanged(self, follow))
        if follow:
            self._trim()
            self._go_to_end()

    def log_at_cursor(self) -> PluginLog | None:
        """The log under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return self._logs.get(str(key.value))

    def replace_logs(self, logs: Iterable[PluginLog]) -> None:
        """Show exactly ``logs`` (oldest first), e.g. after a filter change."""
        self._logs = {}
        self._set_columns(self._message_width())
        self.append_logs(logs)

    def append_logs(self, logs: Iterable[PluginLog]) -> None:
        """Add newer lines at the bottom; keeps the view on them when following."""
        width = self._rendered_width
        for log in logs:
            key = str(log.id)
            if key in self._logs:
                continue
            self._logs[key] = log
            self.add_row(*self._cells(log, width), key=key)
        if self.follow:
            self._trim()
            self._go_to_end()

    def _trim(self) -> None:
        """Keep the newest MAX_ROWS, rebuilding once when 20 % over (remove_row costs O(rows) each)."""
        if len(self._logs) > MAX_ROWS * 1.2:
            keep = list(self._logs.values())[-MAX_ROWS:]
            self.replace_logs(keep)

    def _go_to_end(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def _message_width(self) -> int:
        """Room left for the message; while the tab is hidden (width 0) keep the last width."""
        if not self.size.width:
            return self._rendered_width or 60
        return max(20, self.size.width - _FIXED_WIDTH - 2 - _SCROLLBAR)

    def _cells(self, log: PluginLog, width: int) -> tuple[Text, Text, Text, Text]:
        level = str(log.level)
        message = first_line(log.message)
        message.truncate(width, overflow="ellipsis")
        plugin = safe_text(log.plugin_id)
        plugin.truncate(_COLUMN_WIDTHS[1][1], overflow="ellipsis")
        return (
            Text(units.clock(log.timestamp.timestamp()), style="dim"),
            plugin,
            safe_text(level.upper(), LEVEL_STYLES.get(level, "")),
            message,
        )

    def on_resize(self, event: events.Resize) -> None:
        if self._message_width() != self._rendered_width:
            cursor = self.cursor_row
            self.replace_logs(list(self._logs.values()))
            if not self.follow and self.row_count:
                self.move_cursor(row=min(cursor, self.row_count - 1))

    # Looking back pauses follow mode; reaching the bottom again resumes it.

    def action_follow(self) -> None:
        """End / `f`: jump to the newest line and keep following."""
        self.follow = True
        self._go_to_end()

    def action_cursor_up(self) -> None:
        self.follow = False
        super().action_cursor_up()

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def action_scroll_top(self) -> None:
        self.follow = False
        super().action_scroll_top()

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self._resume_at_bottom()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._resume_at_bottom()

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self.follow = True

    def _resume_at_bottom(self) -> None:
        if self.row_count and self.cursor_row >= self.row_count - 1:
            self.follow = True

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.follow = False
        super()._on_mouse_scroll_up(event)

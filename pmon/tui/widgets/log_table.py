"""A table of log lines that tails like ``tail -f`` until the user looks back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

from rich.text import Text
from textual.binding import Binding

from pmon.models import PluginLog
from pmon.tui import units
from pmon.tui.safe_text import first_line, safe_text
from pmon.tui.styles import LEVEL_STYLES
from pmon.tui.widgets.tail_table import MAX_ROWS, Layout, TailTable

__all__ = ["MAX_ROWS", "LogTable"]

_COLUMN_WIDTHS: Layout = (("time", 8), ("plugin", 14), ("level", 8))


class LogTable(TailTable[PluginLog]):
    """Log lines, oldest at the top; follows new lines until the user scrolls up, `p` pauses, `f`/End resumes."""

    BINDINGS = [Binding("end", "follow", "Follow", show=False, tooltip="Jump to the newest line and follow")]

    last_column = "message"

    class FollowChanged(TailTable.FollowChanged):
        """Follow mode switched on or off (by a key or by scrolling)."""

        @property
        def log_table(self) -> LogTable:
            """The table whose follow mode changed."""
            return cast(LogTable, self.table)

    def log_at_cursor(self) -> PluginLog | None:
        """The log under the cursor, or None when the table is empty."""
        return self.record_at_cursor()

    def replace_logs(self, logs: Iterable[PluginLog]) -> None:
        """Show exactly ``logs`` (oldest first), e.g. after a filter change."""
        self.replace_records(logs)

    def append_logs(self, logs: Iterable[PluginLog]) -> None:
        """Add newer lines at the bottom; keeps the view on them when following."""
        self.append_records(logs)

    def leading_columns(self, width: int) -> Layout:
        return _COLUMN_WIDTHS

    def row_cells(self, log: PluginLog, widths: Mapping[str, int]) -> tuple[Text, ...]:
        level = str(log.level)
        message = first_line(log.message)
        message.truncate(widths["message"], overflow="ellipsis")
        plugin = safe_text(log.plugin_id)
        plugin.truncate(widths["plugin"], overflow="ellipsis")
        return (
            Text(units.clock(log.timestamp.timestamp()), style="dim"),
            plugin,
            safe_text(level.upper(), LEVEL_STYLES.get(level, "")),
            message,
        )

"""A table of plugin events that tails like ``tail -f`` until the user looks back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from rich.text import Text
from textual.binding import Binding

from pmon.models import PluginEvent
from pmon.tui import units
from pmon.tui.safe_text import first_line, safe_text
from pmon.tui.styles import SEVERITY_STYLES
from pmon.tui.widgets.tail_table import Layout, TailTable

WIDE = 110
"""From this table width on, the category has a column of its own."""

_WIDE_COLUMNS: Layout = (("time", 8), ("plugin", 16), ("severity", 8), ("category", 8), ("type", 20))
_NARROW_COLUMNS: Layout = (("time", 8), ("plugin", 13), ("severity", 8), ("type", 14))


class EventTable(TailTable[PluginEvent]):
    """Events, oldest at the top, the severity word in its colour; follows new events until the user scrolls up."""

    BINDINGS = [Binding("end", "follow", "Follow", show=False, tooltip="Jump to the newest event and follow")]

    last_column = "description"

    class FollowChanged(TailTable.FollowChanged):
        """Follow mode switched on or off (by a key or by scrolling)."""

        @property
        def event_table(self) -> EventTable:
            """The table whose follow mode changed."""
            return cast(EventTable, self.table)

    def leading_columns(self, width: int) -> Layout:
        """Below WIDE columns the category makes room for the description (the tab's detail line shows it)."""
        return _WIDE_COLUMNS if width >= WIDE else _NARROW_COLUMNS

    def row_cells(self, event: PluginEvent, widths: Mapping[str, int]) -> tuple[Text, ...]:
        severity = str(event.severity)
        cells = [
            Text(units.clock(event.timestamp.timestamp()), style="dim"),
            _cut(safe_text(event.plugin_id), widths["plugin"]),
            _cut(safe_text(severity.upper(), SEVERITY_STYLES.get(severity, "")), widths["severity"]),
        ]
        if "category" in widths:
            cells.append(_cut(safe_text(event.category, "dim"), widths["category"]))
        cells.append(_cut(safe_text(event.event_type, "bold"), widths["type"]))
        cells.append(_cut(first_line(event.description), widths["description"]))
        return tuple(cells)


def _cut(text: Text, width: int) -> Text:
    text.truncate(width, overflow="ellipsis")
    return text

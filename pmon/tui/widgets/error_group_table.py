"""A table of error groups: how many, what failed, where, and when it was last and first seen."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from pmon.tui import units
from pmon.tui.error_groups_data import ShownGroup
from pmon.tui.safe_text import safe_text
from pmon.tui.styles import LEVEL_STYLES

_FIXED = (("count", 6), ("plugins", 14), ("last seen", 9), ("first seen", 10))
_SCROLLBAR = 2


def _ago(seconds: float) -> str:
    age = units.age(seconds)
    return age if age == "now" else f"{age} ago"


def _cut(text: Text, width: int) -> Text:
    text.truncate(width, overflow="ellipsis")
    return text


class ErrorGroupTable(DataTable[Text]):
    """Groups largest first; the cursor stays on the same group across refreshes, Enter selects its example."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.groups: tuple[ShownGroup, ...] = ()
        """The groups shown, largest first."""
        self.read_at = 0.0
        """When they were read: ages are counted from it."""
        self._message_width = 0

    def on_mount(self) -> None:
        self._redraw()

    def on_resize(self, event: events.Resize) -> None:
        if self._wanted_message_width() != self._message_width:
            self._redraw()

    def show_groups(self, groups: Iterable[ShownGroup], read_at: float) -> None:
        """Show ``groups``; the cursor keeps to the group it was on."""
        self.groups = tuple(groups)
        self.read_at = read_at
        self._redraw()

    def group_at_cursor(self) -> ShownGroup | None:
        """The group under the cursor, or None when there is none."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return next((shown for shown in self.groups if shown.group.fingerprint == key), None)

    def _wanted_message_width(self) -> int:
        fixed = sum(width for _, width in _FIXED) + 2 * (len(_FIXED) + 1) + _SCROLLBAR
        return max(20, (self.size.width or 80) - fixed)

    def _redraw(self) -> None:
        selected = self.group_at_cursor()
        width = self._wanted_message_width()
        if width != self._message_width or not self.columns:
            self.clear(columns=True)
            self.add_column(Text("count", justify="right"), width=_FIXED[0][1], key="count")
            self.add_column("exception: message", width=width, key="message")
            for label, column_width in _FIXED[1:]:
                self.add_column(label, width=column_width, key=label)
            self._message_width = width
        else:
            self.clear()
        for shown in self.groups:
            group = shown.group
            level = "critical" if "critical" in group.levels else "error"
            self.add_row(
                Text(f"{group.count:,}", justify="right", style=LEVEL_STYLES[level]),
                _cut(safe_text(shown.title), width),
                _cut(safe_text(", ".join(group.plugins)), _FIXED[1][1]),
                Text(_ago(self.read_at - group.last_seen)),
                Text(_ago(self.read_at - group.first_seen), style="dim"),
                key=group.fingerprint,
            )
        if selected is not None and selected.group.fingerprint in self.rows:
            self.move_cursor(row=self.get_row_index(selected.group.fingerprint), animate=False)

"""The Overview's plugin list: a header and one pre-drawn line per plugin, a row cursor, nothing more.

Not a DataTable: DataTable renders every visible cell again whenever any
cell changes, and on a live console every plugin's line changes every
second. Here each line is rendered once per change and kept as a strip.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget


class PluginList(Widget, can_focus=True):
    """Rows keyed by plugin id under a fixed header; ↑ ↓ PgUp PgDn Home End move, Enter selects."""

    DEFAULT_CSS = """
    PluginList {
        height: 1fr;
    }
    PluginList > .plugin-list--header {
        text-style: bold;
    }
    PluginList > .plugin-list--cursor {
        background: $block-cursor-blurred-background;
    }
    PluginList:focus > .plugin-list--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    """

    COMPONENT_CLASSES = {"plugin-list--header", "plugin-list--cursor"}

    BINDINGS = [
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "move(-1000000)", show=False),
        Binding("end", "move(1000000)", show=False),
        Binding("enter", "select", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True)
    """Index of the highlighted row."""

    @dataclass
    class Highlighted(Message):
        """The cursor moved to the row of ``key``."""

        key: str

    @dataclass
    class Selected(Message):
        """Enter (or a click on the highlighted row) on the row of ``key``."""

        key: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._header = Text()
        self._keys: list[str] = []
        self._lines: dict[str, Text] = {}
        self._strips: dict[tuple[str, bool, int], Strip] = {}
        self._top = 0

    @property
    def row_count(self) -> int:
        """How many rows are listed."""
        return len(self._keys)

    @property
    def selected_key(self) -> str | None:
        """The key of the highlighted row, or None when the list is empty."""
        return self._keys[self.cursor_row] if self._keys else None

    def line_of(self, key: str) -> Text:
        """The line shown for ``key``."""
        return self._lines[key]

    def set_rows(self, header: Text, rows: list[tuple[str, Text]]) -> None:
        """Show exactly ``rows`` (key, line) in this order; lines that did not change are not drawn again."""
        self._header = header
        self._keys = [key for key, _ in rows]
        old = self._lines
        self._lines = dict(rows)
        for key, line in rows:
            if old.get(key) != line:
                for highlighted in (False, True):
                    self._strips.pop((key, highlighted, self.size.width), None)
        if len(self._strips) > 4 * len(self._keys) + 16:
            self._strips.clear()
        self.cursor_row = min(self.cursor_row, max(0, len(self._keys) - 1))
        self.refresh()

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        """Put the cursor on ``row`` (clamped), scrolling it into view."""
        self.cursor_row = max(0, min(row, len(self._keys) - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        visible = max(1, self.size.height - 1)
        if new < self._top:
            self._top = new
        elif new >= self._top + visible:
            self._top = new - visible + 1
        self._top = max(0, min(self._top, max(0, len(self._keys) - visible)))
        self.refresh()
        if self._keys and old != new:
            self.post_message(self.Highlighted(self._keys[new]))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self._strip(self._header, width, self.get_component_rich_style("plugin-list--header"), " ")
        index = self._top + y - 1
        if index >= len(self._keys):
            return Strip.blank(width, self.rich_style)
        key = self._keys[index]
        highlighted = index == self.cursor_row
        cached = self._strips.get((key, highlighted, width))
        if cached is None:
            style = self.get_component_rich_style("plugin-list--cursor") if highlighted else None
            cached = self._strips[(key, highlighted, width)] = self._strip(self._lines[key], width, style,
                                                                           "›" if highlighted else " ")
        return cached

    def _strip(self, text: Text, width: int, style: Style | None, marker: str) -> Strip:
        """``marker`` in the first cell: the cursor stays visible without colour (NO_COLOR)."""
        line = Text(marker, end="")
        line.append_text(text)
        segments = list(line.render(self.app.console))
        strip = Strip(segments, line.cell_len).crop_extend(0, width, self.rich_style)
        return strip.apply_style(style) if style is not None else strip

    def on_resize(self, event: events.Resize) -> None:
        self._strips.clear()
        self.watch_cursor_row(self.cursor_row, self.cursor_row)

    def action_move(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        self.move_cursor(row=self.cursor_row + direction * max(1, self.size.height - 2))

    def action_select(self) -> None:
        if self._keys:
            self.post_message(self.Selected(self._keys[self.cursor_row]))

    def on_click(self, event: events.Click) -> None:
        index = self._top + event.y - 1
        if event.y >= 1 and 0 <= index < len(self._keys):
            if index == self.cursor_row:
                self.action_select()
            else:
                self.move_cursor(row=index)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.action_move(1)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.action_move(-1)

"""A line of status text that costs nothing when it has not changed."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class StatusLine(Static):
    """Static text redrawn only when it changes, with a layout pass only when its height may change.

    Why: a plain ``Static.update`` on every refresh tick asks the screen for
    a full layout, which costs more than the rest of an idle tick together.
    """

    DEFAULT_CSS = """
    StatusLine {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.text = Text()
        """What is shown now."""
        self._rows = 1

    def show(self, text: Text) -> None:
        """Show ``text`` (recorded data in it must already be safe: see ``safe_text``)."""
        if text == self.text and text.spans == self.text.spans:
            return
        self.text = text
        width = max(1, self.content_size.width or self.size.width or 80)
        rows = max(1, -(-text.cell_len // width))
        self.update(text, layout=rows != self._rows)
        self._rows = rows

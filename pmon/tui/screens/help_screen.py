"""`?`: every key that works on the screen underneath, read from its live bindings so it never goes stale."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KeyRow = tuple[str, str]


class HelpScreen(ModalScreen[None]):
    """A list of (key, what it does); Esc, `?` or `q` closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 60;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: round $accent;
        padding: 0 1;
        background: $surface;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, title: str, keys: list[KeyRow]) -> None:
        super().__init__()
        self.title_text = title
        """Which screen the keys belong to."""
        self.keys = keys
        """(key, description) pairs in display order."""

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for key, description in self.keys:
            table.add_row(Text(key), Text(description))
        with VerticalScroll():
            yield Static(Text(f"Keys: {self.title_text}", style="bold"))
            yield Static(table)
            yield Static(Text("Esc closes this list", style="dim"))

"""One event in full (being built): its description and data as pretty JSON."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from pmon.models import PluginEvent
from pmon.tui.safe_text import safe_text


class EventScreen(Screen[None]):
    """Full view of one event; Esc goes back."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, event: PluginEvent) -> None:
        super().__init__()
        self.event_record = event
        """The event shown."""

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(safe_text(self.event_record.event_type, "bold"), " ",
                                   safe_text(self.event_record.description)))
        yield Footer()

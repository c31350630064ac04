"""One plugin in depth (being built): charts, statistics, recent logs, events and snapshots."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from pmon.tui.live_panel import LivePanel
from pmon.tui.safe_text import safe_text


class PluginScreen(Screen[None], LivePanel):
    """Drill-down for ``plugin_id``; Esc goes back."""

    panel_key = "plugin"

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, plugin_id: str) -> None:
        super().__init__()
        self.plugin_id = plugin_id
        """The plugin shown."""

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(safe_text(self.plugin_id, "bold"), (": plugin screen not built yet", "dim")))
        yield Footer()

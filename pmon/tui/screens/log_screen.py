"""One log in full: message, context as JSON, traceback, all scrollable."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from pmon.models import PluginLog
from pmon.tui.safe_text import safe_block, safe_json, safe_text
from pmon.tui.styles import LEVEL_STYLES


class LogScreen(Screen[None]):
    """Full view of one log; Esc goes back to the table with the cursor where it was."""

    DEFAULT_CSS = """
    LogScreen #log-body {
        padding: 0 1;
    }
    LogScreen .section {
        margin-top: 1;
        text-style: bold;
    }
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("home", "scroll_top", "Top", show=False),
        Binding("end", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, log: PluginLog) -> None:
        super().__init__()
        self.log_record = log
        """The log shown."""

    def compose(self) -> ComposeResult:
        log = self.log_record
        level = str(log.level)
        when = log.timestamp.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        heading = Text.assemble(
            (level.upper(), LEVEL_STYLES.get(level, "")), "  ", safe_text(log.plugin_id, "bold"), "  ",
            (when, "dim"), "  ", (f"log #{log.id}", "dim"),
        )
        with VerticalScroll(id="log-body"):
            yield Static(heading, id="log-heading")
            yield Static("Message", classes="section")
            yield Static(safe_text(log.message, keep_newlines=True), id="log-message")
            yield Static("Context", classes="section")
            yield Static(safe_json(log.context), id="log-context")
            yield Static("Traceback", classes="section")
            yield Static(safe_block(log.traceback, "pytb"), id="log-traceback")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#log-body", VerticalScroll).focus()

    def action_scroll_top(self) -> None:
        self.query_one("#log-body", VerticalScroll).scroll_home(animate=False)

    def action_scroll_bottom(self) -> None:
        self.query_one("#log-body", VerticalScroll).scroll_end(animate=False)

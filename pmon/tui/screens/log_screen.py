"""One log in full: message, context as JSON, traceback, all scrollable."""

from __future__ import annotations

import json

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from pmon.models import PluginLog
from pmon.tui.safe_text import safe_text, visible
from pmon.tui.styles import LEVEL_STYLES


def _context_json(context: object) -> str:
    """Pretty JSON; non-ASCII kept readable, control characters made visible afterwards."""
    return json.dumps(context, indent=2, ensure_ascii=False, sort_keys=True, default=str)


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
            if log.context is None:
                yield Static(Text("(none)", style="dim"), id="log-context")
            else:
                yield Static(Syntax(visible(_context_json(log.context), keep_newlines=True), "json",
                                    word_wrap=True, theme="ansi_dark"), id="log-context")
            yield Static("Traceback", classes="section")
            if not log.traceback:
                yield Static(Text("(none)", style="dim"), id="log-traceback")
            else:
                yield Static(Syntax(visible(log.traceback, keep_newlines=True), "pytb", word_wrap=True,
                                    theme="ansi_dark"), id="log-traceback")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#log-body", VerticalScroll).focus()

    def action_scroll_top(self) -> None:
        self.query_one("#log-body", VerticalScroll).scroll_home(animate=False)

    def action_scroll_bottom(self) -> None:
        self.query_one("#log-body", VerticalScroll).scroll_end(animate=False)

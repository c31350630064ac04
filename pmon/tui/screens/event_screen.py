"""One event in full: what, where and when, its description and its data as pretty JSON, all scrollable."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from pmon.models import PluginEvent
from pmon.tui.messages import OpenPlugin
from pmon.tui.safe_text import safe_json, safe_text
from pmon.tui.styles import SEVERITY_STYLES


class EventScreen(Screen[None]):
    """Full view of one event; Esc goes back to where it was opened, `o` opens its plugin."""

    DEFAULT_CSS = """
    EventScreen #event-body {
        padding: 0 1;
    }
    EventScreen .section {
        margin-top: 1;
        text-style: bold;
    }
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("o", "open_plugin", "Open plugin", tooltip="Open the plugin screen of this event's plugin"),
        Binding("home", "scroll_top", "Top", show=False),
        Binding("end", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, event: PluginEvent) -> None:
        super().__init__()
        self.event_record = event
        """The event shown."""

    def compose(self) -> ComposeResult:
        event = self.event_record
        severity = str(event.severity)
        when = event.timestamp.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        heading = Text.assemble(
            safe_text(severity.upper(), SEVERITY_STYLES.get(severity, "")), "  ", safe_text(event.event_type, "bold"),
            "\n", ("plugin ", "dim"), safe_text(event.plugin_id, "bold"), "  ", ("category ", "dim"),
            safe_text(event.category),
            "  ", (when, "dim"), "  ", (f"event #{event.id}", "dim"),
        )
        with VerticalScroll(id="event-body"):
            yield Static(heading, id="event-heading")
            yield Static("Description", classes="section")
            yield Static(safe_text(event.description, keep_newlines=True), id="event-description")
            yield Static("Data", classes="section")
            yield Static(safe_json(event.data), id="event-data")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#event-body", VerticalScroll).focus()

    def action_open_plugin(self) -> None:
        """`o`: this event's plugin screen, on top of this one (Esc comes back here)."""
        self.post_message(OpenPlugin(self.event_record.plugin_id))

    def action_scroll_top(self) -> None:
        self.query_one("#event-body", VerticalScroll).scroll_home(animate=False)

    def action_scroll_bottom(self) -> None:
        self.query_one("#event-body", VerticalScroll).scroll_end(animate=False)

"""Events tab (being built): says so until it is."""

from __future__ import annotations

from pmon.tui.live_panel import LivePanel
from pmon.tui.tabs.placeholder_tab import PlaceholderTab


class EventsTab(PlaceholderTab, LivePanel):
    """Placeholder for the Events tab."""

    panel_key = "events"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Events", "Events coloured by severity, filtered by category and severity; Enter opens one with its data.", id=id)

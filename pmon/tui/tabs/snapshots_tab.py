"""Snapshots tab (being built): says so until it is."""

from __future__ import annotations

from pmon.tui.live_panel import LivePanel
from pmon.tui.tabs.placeholder_tab import PlaceholderTab


class SnapshotsTab(PlaceholderTab, LivePanel):
    """Placeholder for the Snapshots tab."""

    panel_key = "snapshots"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Snapshots", "Snapshots per plugin; mark one and pick another to compare them field by field (A, B, delta, % change).", id=id)

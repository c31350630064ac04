"""Metrics tab (being built): says so until it is."""

from __future__ import annotations

from pmon.tui.live_panel import LivePanel
from pmon.tui.tabs.placeholder_tab import PlaceholderTab


class MetricsTab(PlaceholderTab, LivePanel):
    """Placeholder for the Metrics tab."""

    panel_key = "metrics"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Metrics", "A chart of one plugin's metrics over 5m / 15m / 1h / 6h / 24h / 7d / 30d with min, avg, p95 and max beside it.", id=id)

    def select_plugin(self, plugin_id: str) -> None:
        """Show ``plugin_id``'s metrics (called by the plugin screen's `m`)."""

"""The contract between the refresh cycle and a tab or screen that reads its own data."""

from __future__ import annotations

from pmon.tui.reader import PanelQuery


class LivePanel:
    """Mix into a widget (a tab's content) or a screen that refreshes with the console.

    On each refresh the app asks every visible panel for ``panel_query()``,
    reads them all on the worker thread, and hands each result back through
    ``show_panel``. A panel that wants a read now (its filters changed) posts
    ``messages.RefreshWanted``.
    """

    panel_key: str = ""
    """Unique name of the panel; results are delivered by this key."""

    def panel_query(self) -> PanelQuery | None:
        """What to read on the next refresh, or None for nothing."""
        return None

    def show_panel(self, result: object) -> None:
        """Take the result of this panel's query (possibly for an older query: check and drop it)."""

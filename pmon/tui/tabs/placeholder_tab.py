"""A tab that is not built yet and says so, with what it will show."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class PlaceholderTab(Static):
    """Honest placeholder: names the tab, says it is not built yet, and what it will hold."""

    DEFAULT_CSS = """
    PlaceholderTab {
        padding: 1 2;
    }
    """

    def __init__(self, name: str, plan: str, *, id: str | None = None) -> None:
        super().__init__(Text.assemble((f"{name}: not built yet\n\n", "bold"), (plan, "dim")), id=id)

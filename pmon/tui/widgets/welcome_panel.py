"""What a new user sees before anything is recorded: where pmon looked and how to fill it."""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from pmon.tui.safe_text import safe_text


class WelcomePanel(Static):
    """Shown instead of the tabs while the database is missing or holds no plugin yet."""

    DEFAULT_CSS = """
    WelcomePanel {
        padding: 1 2;
        height: auto;
    }
    """

    def __init__(self, db_path: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.db_path = db_path
        """The file the console watches."""
        self.reason = ""
        """Why there is nothing to show (from the last read attempt)."""

    def on_mount(self) -> None:
        self.show_reason("")

    def show_reason(self, reason: str) -> None:
        """Redraw with the latest reason; the file may appear at any refresh."""
        self.reason = reason
        path = str(self.db_path.expanduser().absolute())
        for prefix in (f"{self.db_path}: ", f"{path}: "):
            reason = reason.removeprefix(prefix)
        self.update(Group(
            Text("Nothing recorded yet", style="bold"),
            Text(""),
            Text.assemble("pmon looked for data in  ", safe_text(path, "bold")),
            Text.assemble("  (", safe_text(reason), ")", style="dim") if reason else Text(""),
            Text(""),
            Text("Start recording, and this console switches to it by itself:"),
            Text(""),
            Text("  a simulated plugin host, recording live:", style="dim"),
            Text.assemble("    ", safe_text(f"pmon --db {shlex.quote(path)} demo", "bold")),
            Text(""),
            Text("  or from your application (with PMON_DB set to the path above):", style="dim"),
            Text("    from pmon import monitor", style="bold"),
            Text('    monitor.record_metric("my_plugin", "cpu_usage", 45.2)', style="bold"),
            Text(""),
            Text("q quits   ? lists the keys", style="dim"),
        ))

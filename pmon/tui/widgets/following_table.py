"""A row table whose cursor stays on the newest (last) row until the user looks back, like ``tail -f``."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import DataTable


class FollowingTable(DataTable[Text]):
    """Follow mode and the keys that pause and resume it; subclasses decide what a change of mode tells.

    Looking back (up, page up, Home, the mouse wheel) pauses; reaching the
    last row again, End or ``action_follow`` resumes.
    """

    BINDINGS = [Binding("end", "follow", "Follow", show=False, tooltip="Jump to the newest row and follow")]

    follow: reactive[bool] = reactive(True)
    """True while the cursor stays on the newest row."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)

    def watch_follow(self, follow: bool) -> None:
        self.follow_changed(follow)

    def follow_changed(self, follow: bool) -> None:
        """Called when follow mode switches: post the subclass's message, catch up with new rows."""

    def go_to_newest(self) -> None:
        """Put the cursor on the last row."""
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def action_follow(self) -> None:
        """End / `f`: jump to the newest row and keep following."""
        self.follow = True
        self.go_to_newest()

    def action_cursor_up(self) -> None:
        self.follow = False
        super().action_cursor_up()

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def action_scroll_top(self) -> None:
        self.follow = False
        super().action_scroll_top()

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self._resume_at_bottom()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._resume_at_bottom()

    def action_scroll_bottom(self) -> None:
        self.action_follow()

    def _resume_at_bottom(self) -> None:
        if self.row_count and self.cursor_row >= self.row_count - 1:
            self.follow = True

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.follow = False
        super()._on_mouse_scroll_up(event)

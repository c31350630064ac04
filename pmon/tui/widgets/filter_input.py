"""The one-line text filter that `/` opens under a table."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterInput(Input):
    """Hidden until `/`; Enter applies (empty clears the filter), Esc leaves the filter as it was."""

    DEFAULT_CSS = """
    FilterInput {
        display: none;
        dock: bottom;
        height: 3;
    }
    FilterInput.-open {
        display: block;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel filter")]

    @dataclass
    class Applied(Message):
        """The user confirmed a filter text ("" means no filter)."""

        filter_input: FilterInput
        text: str

        @property
        def control(self) -> FilterInput:
            return self.filter_input

    @dataclass
    class Closed(Message):
        """The input closed (applied or cancelled): the owner puts focus back on its table."""

        filter_input: FilterInput

        @property
        def control(self) -> FilterInput:
            return self.filter_input

    def open(self, current: str) -> None:
        """Show the input holding the current filter, focused and selected for retyping."""
        self.value = current
        self.add_class("-open")
        self.focus()
        self.select_all()

    def _close(self) -> None:
        self.remove_class("-open")
        self.post_message(self.Closed(self))

    def action_cancel(self) -> None:
        """Esc: close without changing the filter."""
        self._close()

    async def action_submit(self) -> None:
        """Enter: apply the text and close."""
        self.post_message(self.Applied(self, self.value.strip()))
        self._close()

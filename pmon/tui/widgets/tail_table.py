"""What the log and event tables share: rows that tail like ``tail -f`` until the user looks back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from rich.text import Text
from textual import events
from textual.message import Message

from pmon.tui.widgets.following_table import FollowingTable

MAX_ROWS = 1000
"""Rows kept while following; older rows drop off (they stay in the store)."""

_SCROLLBAR = 2
_UNKNOWN_WIDTH = 60
"""Width of the last column before the table has ever been laid out (its tab not yet shown)."""


class Record(Protocol):
    """A stored row: its id keys the table row."""

    @property
    def id(self) -> int | None: ...


RecordT = TypeVar("RecordT", bound=Record)

Layout = tuple[tuple[str, int], ...]
"""(column key, width) for every column, the last one taking the room left."""


class TailTable(FollowingTable, Generic[RecordT]):
    """Records oldest at the top; follows new ones until the user scrolls up, End resumes.

    A subclass names its columns (``leading_columns``, ``last_column``) and
    draws one record's cells (``row_cells``); widths are fixed so the table never
    scrolls sideways, and are recomputed when the terminal is resized.
    """

    last_column = "message"
    """Key and label of the column that takes the room the fixed ones leave."""

    @dataclass
    class FollowChanged(Message):
        """Follow mode switched on or off (by a key or by scrolling)."""

        table: TailTable
        follow: bool

        @property
        def control(self) -> TailTable:
            return self.table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._records: dict[str, RecordT] = {}
        self._layout: Layout = ()
        self.unseen = 0
        """Rows that arrived below since follow mode was paused."""

    def leading_columns(self, width: int) -> Layout:
        """(key, width) of the columns before the last, for a table ``width`` cells wide (0: not known yet)."""
        raise NotImplementedError

    def row_cells(self, record: RecordT, widths: Mapping[str, int]) -> tuple[Text, ...]:
        """One row's cells, each cut to its column's width in ``widths``."""
        raise NotImplementedError

    def on_mount(self) -> None:
        self._set_columns(self._wanted_layout())

    def _set_columns(self, layout: Layout) -> None:
        self.clear(columns=True)
        for key, width in layout:
            self.add_column(key, width=width, key=key)
        self._layout = layout

    def _wanted_layout(self) -> Layout:
        """Columns for the current width; while the tab is hidden (width 0) keep the last layout."""
        width = self.size.width
        if not width and self._layout:
            return self._layout
        fixed = self.leading_columns(width)
        if not width:
            return (*fixed, (self.last_column, _UNKNOWN_WIDTH))
        # one padding cell each side of every column, two cells of slack, and the vertical scrollbar
        used = sum(w for _, w in fixed) + 2 * (len(fixed) + 1) + 2 + _SCROLLBAR
        return (*fixed, (self.last_column, max(20, width - used)))

    def follow_changed(self, follow: bool) -> None:
        if follow:
            self.unseen = 0
        self.post_message(self.FollowChanged(self, follow))
        self._keep_up()

    def follow_status(self) -> Text:
        """``● following``, or ``‖ paused`` with how many rows came since and how to resume, for a status line."""
        line = Text()
        if self.follow:
            line.append("● following", "green")
            return line
        line.append("‖ paused", "bold yellow")
        if self.unseen:
            line.append(f" ({self.unseen} new)", "yellow")
        line.append(" f resumes", "dim")
        return line

    def record_at_cursor(self) -> RecordT | None:
        """The record under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return self._records.get(str(key.value))

    def replace_records(self, records: Iterable[RecordT]) -> None:
        """Show exactly ``records`` (oldest first), e.g. after a filter change."""
        self.unseen = 0
        self._rebuild(records)

    def append_records(self, records: Iterable[RecordT]) -> None:
        """Add newer rows at the bottom; keeps the view on them when following, counts them as unseen when not."""
        added = self._add_rows(records)
        if not self.follow:
            self.unseen += added
        self._keep_up()

    def _rebuild(self, records: Iterable[RecordT]) -> None:
        """Redraw every row, e.g. with new column widths; what counts as unseen stays."""
        self._records = {}
        self._set_columns(self._wanted_layout())
        self._add_rows(records)
        self._keep_up()

    def _add_rows(self, records: Iterable[RecordT]) -> int:
        widths = dict(self._layout)
        added = 0
        for record in records:
            key = str(record.id)
            if key in self._records:
                continue
            self._records[key] = record
            self.add_row(*self.row_cells(record, widths), key=key)
            added += 1
        return added

    def _keep_up(self) -> None:
        if self.follow:
            self._trim()
            self.go_to_newest()

    def _trim(self) -> None:
        """Keep the newest MAX_ROWS, rebuilding once when 20 % over (remove_row costs O(rows) each)."""
        if len(self._records) > MAX_ROWS * 1.2:
            self._rebuild(list(self._records.values())[-MAX_ROWS:])

    def on_resize(self, event: events.Resize) -> None:
        if self._wanted_layout() != self._layout:
            cursor = self.cursor_row
            self._rebuild(list(self._records.values()))
            if not self.follow and self.row_count:
                self.move_cursor(row=min(cursor, self.row_count - 1))

"""Snapshots: every plugin's recorded snapshots, newest last; mark one as A and Enter on another to compare."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from pmon.analysis.snapshot_diff import as_text, flatten
from pmon.models import PerformanceSnapshot
from pmon.tui import units
from pmon.tui.live_panel import LivePanel
from pmon.tui.messages import OpenPlugin, RefreshWanted
from pmon.tui.safe_text import safe_text, visible
from pmon.tui.screens.compare_screen import CompareScreen
from pmon.tui.snapshots_data import SNAPSHOT_PAGE, SnapshotBatch, SnapshotQuery, previous_listed
from pmon.tui.widgets.filter_input import FilterInput
from pmon.tui.widgets.following_table import FollowingTable

MAX_ROWS = 1000
"""Rows kept while following; older ones drop off (they stay in the store)."""

MARK = "A"
"""Shown in the marker column of the marked snapshot (a letter, so NO_COLOR loses nothing)."""
MARK_STYLE = "bold reverse yellow"

Layout = dict[str, int]
"""Width of every column shown, by key, in display order."""

# (key, label, width); the plugin column (width None) takes what is left, up to PLUGIN_MAX.
_COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("mark", " ", 1), ("id", "#", 6), ("time", "time", 8), ("plugin", "plugin", None), ("cpu", "cpu", 4),
    ("memory", "memory", 6), ("response", "resp", 5), ("errors", "errors", 6), ("requests", "requests", 8),
    ("throughput", "req/s", 5),
)
_LABELS = {key: label for key, label, _ in _COLUMNS} | {"custom": "custom metrics"}
_NUMERIC = frozenset(("id", "cpu", "memory", "response", "errors", "requests", "throughput"))
_ID_COLUMN_FROM = 100
"""Narrower than this the id column is dropped so the plugin keeps room (the hint line still names A's id)."""
PLUGIN_MIN, PLUGIN_MAX = 8, 24
_CUSTOM_MIN = 14
"""Room left beyond the widest plugin column shows the custom metrics, when at least this wide."""
_SCROLLBAR = 2


def snapshot_time(snapshot: PerformanceSnapshot, now: float) -> str:
    """``HH:MM:SS`` today; ``MM-DD HH:MM`` for older days, so a week-old snapshot does not pass for today's."""
    epoch = snapshot.timestamp.timestamp()
    if time.strftime("%Y%m%d", time.localtime(epoch)) == time.strftime("%Y%m%d", time.localtime(now)):
        return units.clock(epoch)
    return time.strftime("%m-%d %H:%M", time.localtime(epoch))


def _count(value: float) -> str:
    """A request count: whole numbers as they are up to 9999, then compact (12k, 1.2M)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 10_000 else units.compact(value)


def custom_summary(custom: object) -> Text:
    """``key=value`` for every custom metric (nested keys dotted), shown literally, for a one-line preview."""
    if not custom:
        return Text("-", style="dim")
    summary = Text(style="dim")
    for keys, value in flatten(custom):
        if summary:
            summary.append("  ")
        if keys:
            summary.append_text(safe_text(".".join(keys)))
            summary.append("=")
        summary.append_text(safe_text(as_text(value)))
    return summary


class SnapshotTable(FollowingTable):
    """Snapshot rows, oldest at the top; the cursor follows new rows until the user moves up, like the Logs tab."""

    BINDINGS = [
        Binding("end", "follow", "Follow", show=False, tooltip="Jump to the newest snapshot and follow"),
        Binding("home", "scroll_top", "Oldest", show=False, tooltip="Jump to the oldest snapshot listed"),
    ]

    @dataclass
    class FollowChanged(Message):
        """Follow mode switched on or off."""

        snapshot_table: SnapshotTable
        follow: bool

        @property
        def control(self) -> SnapshotTable:
            return self.snapshot_table

    def follow_changed(self, follow: bool) -> None:
        self.post_message(self.FollowChanged(self, follow))
        if follow:
            self.go_to_newest()

    async def _on_click(self, event: events.Click) -> None:
        self.follow = False  # a row picked with the mouse must stay picked
        await super()._on_click(event)


class SnapshotsTab(Vertical, LivePanel):
    """Reads its own snapshots each refresh (a tail after the newest it holds) and keeps cursor and mark by id."""

    panel_key = "snapshots"

    DEFAULT_CSS = """
    SnapshotsTab #snapshots-status, SnapshotsTab #snapshots-hint {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    SnapshotsTab #snapshots {
        height: 1fr;
    }
    """

    BINDINGS = [
        Binding("m", "mark", "Mark A", tooltip="Mark the snapshot under the cursor as A (again: unmark)"),
        Binding("space", "mark", "Mark A", show=False, tooltip="Mark the snapshot under the cursor as A (again: unmark)"),
        Binding("n", "next_plugin", "Plugin", tooltip="Show one plugin's snapshots: the next plugin, then all"),
        Binding("slash", "filter", "Filter", tooltip="Show plugins whose id contains a text (empty: all)"),
        Binding("o", "open_plugin", "Open plugin", tooltip="Open the plugin screen of the snapshot under the cursor"),
        Binding("p", "pause", "Pause", show=False, tooltip="Stop following new snapshots (they keep arriving below)"),
        Binding("f", "follow", "Follow", show=False, tooltip="Jump to the newest snapshot and follow"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.generation = 0
        """Bumped on every filter change, so answers to older queries are ignored."""
        self.plugin_id: str | None = None
        """The one plugin shown (None: every plugin); `n` cycles it."""
        self.plugin_text = ""
        """Substring the plugin id must contain ("" for none); `/` sets it."""
        self.plugins: tuple[str, ...] = ()
        """Plugins that have snapshots, from the latest read."""
        self.loaded = False
        """True once the current generation's first page has arrived."""
        self.after_id = 0
        """Tail position: every snapshot up to this id has been read for the current filter."""
        self.marked: PerformanceSnapshot | None = None
        """Snapshot A, kept across refreshes, filter changes and trips to the comparison screen."""
        self.waiting_for_previous: PerformanceSnapshot | None = None
        """Enter without a mark on a snapshot whose predecessor is not listed: asked of the next read."""
        self.read_at = 0.0
        """The clock when the data shown was read."""
        self._snapshots: dict[int, PerformanceSnapshot] = {}
        self._widths: Layout = {}

    def compose(self) -> ComposeResult:
        yield Static(id="snapshots-status")
        yield SnapshotTable(id="snapshots")
        yield Static(id="snapshots-hint")
        yield FilterInput(placeholder="plugin id contains… (Enter applies, Esc cancels)", id="snapshots-filter")

    def on_mount(self) -> None:
        self._set_columns()
        self._draw_status()
        self._draw_hint()

    @property
    def table(self) -> SnapshotTable:
        """The snapshot rows."""
        return self.query_one(SnapshotTable)

    # -- reading ------------------------------------------------------------------

    def panel_query(self) -> SnapshotQuery:
        """The newest page for the filter, or the tail after the newest snapshot held."""
        waiting = self.waiting_for_previous
        return SnapshotQuery(self.generation, self.plugin_id, self.plugin_text or None,
                             self.after_id if self.loaded else None, waiting.id if waiting else None)

    def show_panel(self, result: object) -> None:
        """Take a read: the plugin list, a pending comparison, and new rows unless the filter changed since."""
        if not isinstance(result, SnapshotBatch):
            return
        self.plugins = result.plugins
        self.read_at = result.read_at
        self._answer_previous(result)
        query = result.query
        if query.generation != self.generation or (self.loaded and query.after_id != self.after_id):
            return
        if query.after_id is None:
            self._snapshots = {}
            self._set_columns()
            self.loaded = True
        self._append(result.snapshots)
        last_read = max((s.id or 0 for s in result.snapshots), default=0)
        complete = query.after_id is None or len(result.snapshots) < SNAPSHOT_PAGE
        self.after_id = max(self.after_id, last_read, result.newest_id if complete else 0)
        self._draw_status()
        self._draw_hint()

    def _answer_previous(self, result: SnapshotBatch) -> None:
        waiting = self.waiting_for_previous
        if waiting is None or result.query.previous_of != waiting.id:
            return
        self.waiting_for_previous = None
        if result.previous is None:
            self._no_previous(waiting)
        else:
            self._compare(result.previous, waiting, against_previous=True)

    # -- the table ----------------------------------------------------------------

    def _layout(self) -> Layout:
        """Columns for the table's current width: the id when it fits, custom metrics in the room left over."""
        width = self.table.size.width or 80
        pad = 2 * self.table.cell_padding
        columns = [(key, size) for key, _, size in _COLUMNS if key != "id" or width >= _ID_COLUMN_FROM]
        room = width - _SCROLLBAR - sum((size or 0) + pad for _, size in columns)
        plugin = max(PLUGIN_MIN, min(PLUGIN_MAX, room))
        layout = {key: plugin if size is None else size for key, size in columns}
        if room - plugin - pad >= _CUSTOM_MIN:
            layout["custom"] = room - plugin - pad
        return layout

    def _set_columns(self) -> None:
        table = self.table
        table.clear(columns=True)
        self._widths = self._layout()
        for key, width in self._widths.items():
            table.add_column(Text(_LABELS[key], justify="right" if key in _NUMERIC else "left"), width=width, key=key)

    def _rebuild(self) -> None:
        """Redraw every row (new widths, or after trimming), keeping the cursor on the same snapshot."""
        table = self.table
        at_cursor = self.snapshot_at_cursor()
        cursor_id = at_cursor.id if at_cursor else None
        rows = list(self._snapshots.values())
        self._snapshots = {}
        self._set_columns()
        self._append(rows)
        if not table.follow and cursor_id is not None and cursor_id in self._snapshots:
            table.move_cursor(row=table.get_row_index(str(cursor_id)), animate=False)

    def _append(self, snapshots: Iterable[PerformanceSnapshot]) -> None:
        table = self.table
        for snapshot in snapshots:
            if snapshot.id is None or snapshot.id in self._snapshots:
                continue
            self._snapshots[snapshot.id] = snapshot
            table.add_row(*self._cells(snapshot), key=str(snapshot.id))
        if table.follow:
            if len(self._snapshots) > MAX_ROWS * 1.2:
                keep = list(self._snapshots.values())[-MAX_ROWS:]
                self._snapshots = {s.id: s for s in keep if s.id is not None}
                self._rebuild()
            table.go_to_newest()

    def _cells(self, snapshot: PerformanceSnapshot) -> list[Text]:
        marked = self.marked is not None and self.marked.id == snapshot.id
        cells = {
            "mark": Text(MARK, MARK_STYLE) if marked else Text(" "),
            "id": Text(str(snapshot.id), style="dim", justify="right"),
            "time": Text(snapshot_time(snapshot, self.read_at or time.time()), style="dim"),
            "plugin": safe_text(snapshot.plugin_id),
            "cpu": Text(units.percent(snapshot.cpu_usage), justify="right"),
            "memory": Text(units.compact(snapshot.memory_usage), justify="right"),
            "response": Text(units.milliseconds(snapshot.response_time), justify="right"),
            "errors": Text(units.fraction_percent(snapshot.error_rate), justify="right",
                           style="red" if snapshot.error_rate >= 0.05 else ""),
            "requests": Text(_count(snapshot.request_count), justify="right"),
            "throughput": Text(units.compact(snapshot.throughput), justify="right"),
        }
        if "custom" in self._widths:
            cells["custom"] = custom_summary(snapshot.custom_metrics)
        shown = [cells[key] for key in self._widths]
        for cell, width in zip(shown, self._widths.values()):
            cell.truncate(width, overflow="ellipsis")
        return shown

    def _redraw_mark(self, snapshot_id: int | None) -> None:
        if snapshot_id is not None and snapshot_id in self._snapshots:
            self.table.update_cell(str(snapshot_id), "mark", self._cells(self._snapshots[snapshot_id])[0])

    def on_resize(self) -> None:
        if self.table.size.width and self._layout() != self._widths:
            self._rebuild()

    def snapshot_at_cursor(self) -> PerformanceSnapshot | None:
        """The snapshot under the cursor, or None when the table is empty."""
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._snapshots.get(int(key)) if key is not None else None

    # -- lines above and below ---------------------------------------------------

    def _draw_status(self) -> None:
        table = self.table
        line = Text()
        if table.follow:
            line.append("● following", "green")
        else:
            line.append("‖ paused", "bold yellow")
            line.append(" f resumes", "dim")
        line.append("  plugin: ", "dim")
        if self.plugin_id is not None:
            line.append_text(safe_text(self.plugin_id, "bold"))
        elif self.plugin_text:
            line.append("contains ", "dim")
            line.append_text(safe_text(self.plugin_text, "bold"))
        else:
            line.append("all", "bold")
            line.append(f" ({len(self.plugins)})", "dim")
        if not self.loaded:
            line.append("  loading…", "dim")
        else:
            count = len(self._snapshots)
            line.append(f"  {count} snapshot{'' if count == 1 else 's'}", "dim")
            if count >= SNAPSHOT_PAGE:
                line.append(" (newest)", "dim")
        self.query_one("#snapshots-status", Static).update(line)

    def _draw_hint(self) -> None:
        """Who A is and what Enter will do, so the mark never has to be remembered."""
        hint = Text()
        marked = self.marked
        if marked is None:
            hint.append("m", "bold")
            hint.append(" marks A · ", "dim")
            hint.append("Enter", "bold")
            hint.append(" compares with the plugin's previous snapshot", "dim")
        else:
            hint.append(f" {MARK} ", MARK_STYLE)
            hint.append(f" #{marked.id} ")
            hint.append_text(safe_text(marked.plugin_id, "bold"))
            hint.append(f" {snapshot_time(marked, self.read_at or time.time())}")
            hint.append(" · ", "dim")
            hint.append("Enter", "bold")
            hint.append(" compares A with the row · ", "dim")
            hint.append("m", "bold")
            hint.append(" on A unmarks", "dim")
        self.query_one("#snapshots-hint", Static).update(hint)

    def on_snapshot_table_follow_changed(self, event: SnapshotTable.FollowChanged) -> None:
        event.stop()
        if self.is_mounted:
            self._draw_status()

    # -- keys ---------------------------------------------------------------------

    def action_mark(self) -> None:
        """`m` / space: mark the row as A, or unmark it when it already is A (pauses following)."""
        snapshot = self.snapshot_at_cursor()
        if snapshot is None:
            return
        self.table.follow = False
        before = self.marked.id if self.marked else None
        self.marked = None if before == snapshot.id else snapshot
        self._redraw_mark(before)
        self._redraw_mark(snapshot.id)
        self._draw_hint()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_compare()

    def action_compare(self) -> None:
        """Enter: A against the row; without a mark, the row against the plugin's previous snapshot."""
        row = self.snapshot_at_cursor()
        if row is None:
            return
        if self.marked is not None:
            if self.marked.id == row.id:
                self.notify("This row is A: move to another snapshot and press Enter, or m to unmark.",
                            title="Compare", markup=False)
            else:
                self._compare(self.marked, row, against_previous=False)
            return
        previous = previous_listed(list(self._snapshots.values()), row)
        if previous is not None:
            self._compare(previous, row, against_previous=True)
        else:
            self.waiting_for_previous = row
            self.post_message(RefreshWanted())

    def _compare(self, a: PerformanceSnapshot, b: PerformanceSnapshot, *, against_previous: bool) -> None:
        self.app.push_screen(CompareScreen(a, b, against_previous=against_previous))

    def _no_previous(self, snapshot: PerformanceSnapshot) -> None:
        self.notify(f"No snapshot of {visible(snapshot.plugin_id)} before #{snapshot.id}: "
                    "mark one with m to compare with it.", title="Nothing to compare", severity="warning",
                    markup=False)

    def on_hide(self) -> None:
        self.waiting_for_previous = None  # the answer would open a comparison on a tab no longer shown

    def action_open_plugin(self) -> None:
        """`o`: the plugin screen of the snapshot under the cursor."""
        snapshot = self.snapshot_at_cursor()
        if snapshot is not None:
            self.post_message(OpenPlugin(snapshot.plugin_id))

    def action_pause(self) -> None:
        """`p`: keep the cursor where it is while new snapshots arrive."""
        self.table.follow = False

    def action_follow(self) -> None:
        """`f`: jump to the newest snapshot and follow."""
        self.table.action_follow()

    def action_next_plugin(self) -> None:
        """`n`: all plugins → the first → the next … → all again."""
        cycle: list[str | None] = [None, *self.plugins]
        position = cycle.index(self.plugin_id) if self.plugin_id in cycle else 0
        self.plugin_id = cycle[(position + 1) % len(cycle)]
        self.plugin_text = ""
        self._filter_changed()

    def action_filter(self) -> None:
        """`/`: only plugins whose id contains a text."""
        self.query_one(FilterInput).open(self.plugin_text)

    def on_filter_input_applied(self, event: FilterInput.Applied) -> None:
        event.stop()
        if event.text != self.plugin_text or self.plugin_id is not None:
            self.plugin_text = event.text
            self.plugin_id = None
            self._filter_changed()

    def on_filter_input_closed(self, event: FilterInput.Closed) -> None:
        event.stop()
        self.table.focus()

    def _filter_changed(self) -> None:
        self.generation += 1
        self.loaded = False
        self.after_id = 0
        self._snapshots = {}
        self._set_columns()
        self.table.follow = True
        self._draw_status()
        self.post_message(RefreshWanted())

"""Overview: one row per plugin with its health at a glance, and totals above."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical

from pmon.tui import units
from pmon.tui.messages import OpenPlugin
from pmon.tui.reader import Overview, PluginRow
from pmon.tui.safe_text import safe_text
from pmon.tui.styles import ALERT_STYLES, SEVERITY_STYLES, STATUS_STYLES
from pmon.tui.sparkline_text import sparkline
from pmon.tui.widgets.filter_input import FilterInput
from pmon.tui.widgets.plugin_list import PluginList
from pmon.tui.widgets.status_line import StatusLine

_STATUS_ORDER = {"down": 0, "idle": 1, "active": 2}
_MISSING = float("-inf")


def _latest(values: tuple[float, ...]) -> float:
    return values[-1] if values else _MISSING


@dataclass(frozen=True)
class SortOrder:
    """One way to order the plugins; `s` cycles through SORT_ORDERS."""

    column: str
    label: str
    key: Callable[[PluginRow], object]
    descending: bool


SORT_ORDERS = (
    SortOrder("plugin", "plugin", lambda r: r.plugin_id, False),
    SortOrder("status", "status (down first)", lambda r: (_STATUS_ORDER.get(r.status, 3), r.plugin_id), False),
    SortOrder("cpu", "CPU", lambda r: _latest(r.cpu), True),
    SortOrder("memory", "memory", lambda r: _latest(r.memory), True),
    SortOrder("p95", "p95 response", lambda r: _MISSING if r.p95_response_ms is None else r.p95_response_ms, True),
    SortOrder("errors", "error rate", lambda r: _MISSING if r.error_rate is None else r.error_rate, True),
    SortOrder("throughput", "throughput", lambda r: _MISSING if r.throughput is None else r.throughput, True),
)
"""Sort orders in the order `s` cycles them."""

COLUMNS = (
    ("plugin", "plugin"), ("status", "status"), ("cpu", "CPU"), ("memory", "memory"), ("p95", "p95"),
    ("errors", "err"), ("throughput", "req/s"), ("last_event", "last event"),
)
"""(key, label); p95 covers the last 5 minutes of response times, errors and req/s are the latest values."""
_PLUGIN_WIDTH = 16
_GAP = "  "
_RIGHT = {"p95", "errors", "throughput"}
"""Columns aligned right (numbers)."""


def _joined(cells: list[Text], widths: list[int]) -> Text:
    """One line: every cell padded to its column's width (no cell is wider), numbers to the right."""
    line = Text(end="")
    for index, ((key, _), cell, width) in enumerate(zip(COLUMNS, cells, widths)):
        pad = " " * (width - cell.cell_len)
        if key in _RIGHT:
            line.append((_GAP if index else "") + pad)
            line.append_text(cell)
        else:
            line.append(_GAP if index else "")
            line.append_text(cell)
            line.append(pad)
    return line


class OverviewTab(Vertical):
    """The plugin table; redrawn from each refresh's ``Overview`` keeping the cursor on the same plugin."""

    DEFAULT_CSS = """
    OverviewTab #overview-totals {
        height: auto;
        padding: 0 1;
    }
    OverviewTab #overview-detail {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    OverviewTab #plugins {
        height: 1fr;
    }
    """

    BINDINGS = [
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by the next column"),
        Binding("slash", "filter", "Filter", tooltip="List plugins whose id contains a text"),
        Binding("enter", "open_plugin", "Plugin", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_index = 0
        """Position in SORT_ORDERS."""
        self.filter_text = ""
        """Substring a plugin id must contain to be listed ("" lists all)."""
        self.overview: Overview | None = None
        """The latest data, kept so sorting and filtering redraw without waiting for a refresh."""
        self._listed: list[tuple[str, list[Text]]] = []
        self._drawn: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield StatusLine(id="overview-totals")
        yield PluginList(id="plugins")
        yield StatusLine(id="overview-detail")
        yield FilterInput(placeholder="plugin id contains… (Enter applies, Esc cancels)", id="overview-filter")

    @property
    def table(self) -> PluginList:
        """The plugin list."""
        return self.query_one("#plugins", PluginList)

    def show(self, overview: Overview) -> None:
        """Take a new reading and redraw, unless nothing on screen would change (an idle console costs ~nothing)."""
        ages = tuple(units.age(overview.read_at - row.last_event.timestamp.timestamp())
                     for row in overview.rows if row.last_event is not None)
        drawn = (overview.rows, overview.error_logs_last_minute, overview.serious_events_last_hour,
                 overview.firing_alerts, ages)
        self.overview = overview
        if drawn == self._drawn:
            return
        self._drawn = drawn
        self._redraw()

    def on_resize(self) -> None:
        self._redraw()

    def _spark_width(self) -> int:
        return 20 if self.size.width >= 140 else 12 if self.size.width >= 110 else 5

    def _visible_rows(self) -> list[PluginRow]:
        assert self.overview is not None
        needle = self.filter_text.lower()
        rows = [r for r in self.overview.rows if needle in r.plugin_id.lower()]
        order = SORT_ORDERS[self.sort_index]
        return sorted(rows, key=order.key, reverse=order.descending)

    def _labels(self) -> list[Text]:
        order = SORT_ORDERS[self.sort_index]
        return [Text(label + ("▼" if order.descending else "▲") if key == order.column else label)
                for key, label in COLUMNS]

    def _redraw(self) -> None:
        """Draw the plugins as one text line each; the last event takes the room the fixed columns leave.

        Each plugin is one pre-joined line in a ``PluginList``, which renders a
        line again only when it changed (a DataTable renders every visible
        cell on any change: 70 ms a live tick for 50 plugins).
        """
        if self.overview is None or not self.is_mounted:
            return
        table = self.table
        selected = self.selected_plugin()
        rows = self._visible_rows()
        spark = self._spark_width()
        now = self.overview.read_at
        cells = [self._cells(row, spark, now) for row in rows]
        labels = self._labels()
        widths = [max([label.cell_len, *(line[i].cell_len for line in cells)]) for i, label in enumerate(labels)]
        used = sum(widths[:-1]) + len(_GAP) * (len(widths) - 1) + 2  # a space either side
        widths[-1] = max(10, (table.size.width or 80) - used)
        for row, line in zip(rows, cells):
            line[-1] = self._event_cell(row, now, widths[-1])
        self._listed = [(row.plugin_id, line) for row, line in zip(rows, cells)]
        header = _joined(labels, widths)
        lines = [_joined(line, widths) for line in cells]
        table.set_rows(header, [(row.plugin_id, line) for row, line in zip(rows, lines)])
        if selected is not None:
            for index, row in enumerate(rows):
                if row.plugin_id == selected:
                    table.move_cursor(row=index, animate=False)
                    break
        self._draw_totals(len(rows))
        self._draw_detail()

    def cells_at(self, index: int) -> list[Text]:
        """The cells (plugin, status, CPU, memory, p95, err, req/s, last event) of the ``index``-th listed row."""
        return self._listed[index][1]

    def _cells(self, row: PluginRow, spark_width: int, now: float) -> list[Text]:
        plugin = safe_text(row.plugin_id, "bold")
        plugin.truncate(_PLUGIN_WIDTH, overflow="ellipsis")
        return [
            plugin,
            Text(row.status, style=STATUS_STYLES.get(row.status, "")),
            Text.assemble((sparkline(row.cpu, spark_width), "green"), " ",
                          units.percent(row.cpu[-1] if row.cpu else None).rjust(4)),
            Text.assemble((sparkline(row.memory, spark_width), "blue"), " ",
                          (units.compact(row.memory[-1]) if row.memory else "-").rjust(5)),
            Text(units.milliseconds(row.p95_response_ms), justify="right"),
            Text(units.fraction_percent(row.error_rate), justify="right",
                 style="red" if (row.error_rate or 0) >= 0.05 else ""),
            Text("-" if row.throughput is None else units.compact(row.throughput), justify="right"),
            Text("last event"),  # sized later by _event_cell, once the room left is known
        ]

    def _event_cell(self, row: PluginRow, now: float, width: int) -> Text:
        """Age and type of the last event, plus its description when the column has room for it."""
        ev = row.last_event
        if ev is None:
            return Text("-", style="dim")
        cell = Text.assemble((units.age(now - ev.timestamp.timestamp()), "dim"), " ",
                             safe_text(ev.event_type, SEVERITY_STYLES.get(str(ev.severity), "")))
        if cell.cell_len + 8 <= width:
            cell.append(": ")
            cell.append_text(safe_text(ev.description, "dim"))
        cell.truncate(width, overflow="ellipsis")
        return cell

    def _draw_totals(self, shown: int) -> None:
        assert self.overview is not None
        for terse in range(3):  # fewer words until it fits on one line (the padding takes two columns)
            line = self._totals(terse)
            if not self.size.width or line.cell_len <= self.size.width - 2:
                break
        if self.sort_index:
            line.append(f"  sorted by {SORT_ORDERS[self.sort_index].label}", "dim")
        if self.filter_text:
            line.append("  filter: ", "dim")
            line.append_text(safe_text(self.filter_text, "bold"))
            line.append(f" ({shown} shown)", "dim")
        self.query_one("#overview-totals", StatusLine).show(line)

    def _totals(self, terse: int) -> Text:
        """Plugins by status, firing alerts (only when some are), error logs and high+ events.

        ``terse`` 1 shortens the words, 2 also leaves out statuses no plugin
        has: what keeps the line to 80 columns when alerts fire.
        """
        ov = self.overview
        assert ov is not None
        counts = {s: sum(1 for r in ov.rows if r.status == s) for s in ("active", "idle", "down")}
        statuses = [s for s in counts if counts[s] or terse < 2]
        line = Text.assemble((f"{len(ov.rows)} plugins", "bold"), " (")
        for index, status in enumerate(statuses):
            style = STATUS_STYLES[status] if counts[status] or status != "down" else ""
            line.append(", " if index else "")
            line.append(f"{counts[status]} {status}", style)
        line.append(")  ")
        if ov.firing_alerts:
            noun = "alert" if ov.firing_alerts == 1 else "alerts"
            line.append(f"{ov.firing_alerts} {noun} firing", ALERT_STYLES["firing"])
            line.append("  ")
        errors, events = ("errors/1m", "high+/1h") if terse else ("error logs/1m", "high+ events/1h")
        line.append(f"{ov.error_logs_last_minute} {errors}", "red" if ov.error_logs_last_minute else "")
        line.append("  ")
        line.append(f"{ov.serious_events_last_hour} {events}", "red" if ov.serious_events_last_hour else "")
        return line

    def _draw_detail(self) -> None:
        """The highlighted plugin's last event in full: the table column only has room for its type."""
        detail = Text(style="dim")
        plugin = self.selected_plugin()
        row = next((r for r in self.overview.rows if r.plugin_id == plugin), None) if self.overview else None
        if row is not None:
            detail = Text.assemble(safe_text(row.plugin_id, "bold"), ": ")
            ev = row.last_event
            if ev is None:
                detail.append("no events", "dim")
            else:
                detail.append_text(Text.assemble(
                    (f"{units.age(self.overview.read_at - ev.timestamp.timestamp())} ago ", "dim"),
                    safe_text(str(ev.severity), SEVERITY_STYLES.get(str(ev.severity), "")), " ",
                    safe_text(ev.event_type, "bold"), " ", safe_text(ev.description),
                ))
        self.query_one("#overview-detail", StatusLine).show(detail)

    def selected_plugin(self) -> str | None:
        """The plugin id under the cursor, or None when nothing is listed."""
        return self.table.selected_key

    def on_plugin_list_highlighted(self, event: PluginList.Highlighted) -> None:
        self._draw_detail()

    def on_plugin_list_selected(self, event: PluginList.Selected) -> None:
        event.stop()
        self.action_open_plugin()

    def action_open_plugin(self) -> None:
        """Enter: the plugin's own screen."""
        plugin = self.selected_plugin()
        if plugin is not None:
            self.post_message(OpenPlugin(plugin))

    def action_cycle_sort(self) -> None:
        """`s`: next sort order; the sorted column shows an arrow."""
        self.sort_index = (self.sort_index + 1) % len(SORT_ORDERS)
        self._redraw()

    def action_filter(self) -> None:
        """`/`: type a substring of the plugin ids to list."""
        self.query_one(FilterInput).open(self.filter_text)

    def on_filter_input_applied(self, event: FilterInput.Applied) -> None:
        event.stop()
        self.filter_text = event.text
        self._redraw()

    def on_filter_input_closed(self, event: FilterInput.Closed) -> None:
        event.stop()
        self.table.focus()

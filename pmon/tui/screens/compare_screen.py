"""Two snapshots side by side: every field with A, B, the change and the change in percent."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from pmon.analysis.snapshot_diff import (
    DEFAULT_THRESHOLD_PCT,
    MISSING,
    Direction,
    FieldDiff,
    SnapshotDiff,
    as_text,
    diff_snapshots,
    is_number,
)
from pmon.models import PerformanceSnapshot
from pmon.tui.safe_text import safe_text

REGRESSION_STYLE = "bold red"
IMPROVEMENT_STYLE = "green"
REGRESSION_MARK = "▲"
"""Marks a regression in its own column, so the verdict survives NO_COLOR."""
IMPROVEMENT_MARK = "▼"

# How a top-level field is shown: (scale, unit of the value, unit of the change).
# CPU is already a percentage and the error rate a fraction: their changes are percentage points.
_UNITS = {
    ("cpu_usage",): (1.0, "%", " pp"),
    ("error_rate",): (100.0, "%", " pp"),
    ("response_time",): (1.0, " ms", " ms"),
    ("throughput",): (1.0, "/s", "/s"),
}
_VALUE_COLUMNS = ("a", "b", "delta", "pct")
_LABELS = {"mark": " ", "field": "field", "a": "A", "b": "B", "delta": "change", "pct": "%"}


def number(value: float, *, signed: bool = False) -> str:
    """Thousands separated, two decimals at most (trailing zeros dropped), tiny values in 3 significant digits."""
    sign = "+" if signed else ""
    if isinstance(value, int):
        return f"{value:{sign},}"
    if value and abs(value) < 0.01:
        return f"{value:{sign}.3g}"
    text = f"{value:{sign},.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def duration(seconds: float) -> str:
    """``45s``, ``3m 20s``, ``2h 05m``, ``3d 4h``: two units at most."""
    whole = int(round(abs(seconds)))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _when(snapshot: PerformanceSnapshot) -> str:
    return snapshot.timestamp.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _value_cell(row: FieldDiff, value: object) -> Text:
    if value is MISSING:
        return Text("missing", style="dim italic")
    if is_number(value):
        scale, unit, _ = _UNITS.get(row.keys, (1.0, "", ""))
        return Text(number(value * scale if scale != 1.0 else value) + unit)  # type: ignore[operator]
    return safe_text(as_text(value))


def _change_cells(row: FieldDiff) -> tuple[Text, Text]:
    """The change and the change in percent, worded for fields that are not numbers on both sides."""
    if row.direction is Direction.ADDED:
        return Text("only in B", style="dim"), Text("")
    if row.direction is Direction.REMOVED:
        return Text("only in A", style="dim"), Text("")
    if row.delta is None:
        if row.direction is Direction.SAME:
            return Text("same", style="dim"), Text("")
        return Text("changed", style="yellow"), Text("")
    scale, _, unit = _UNITS.get(row.keys, (1.0, "", ""))
    delta = row.delta * scale if scale != 1.0 else row.delta
    pct = Text("n/a", style="dim") if row.pct_change is None else Text(f"{row.pct_change:+.1f}%")
    if row.direction is Direction.SAME:
        return Text("0", style="dim"), Text("0%", style="dim") if row.pct_change is not None else pct
    return Text(number(delta, signed=True) + unit), pct


def diff_cells(row: FieldDiff) -> dict[str, Text]:
    """One table row: the verdict mark, the path (parents dimmed), A, B, change and percent."""
    field = Text()
    for key in row.keys[:-1]:
        field.append_text(safe_text(key, "dim"))
        field.append(".", "dim")
    field.append_text(safe_text(row.keys[-1]))
    delta, pct = _change_cells(row)
    cells = {"mark": Text(" "), "field": field, "a": _value_cell(row, row.a), "b": _value_cell(row, row.b),
             "delta": delta, "pct": pct}
    if row.regression:
        cells["mark"] = Text(REGRESSION_MARK, REGRESSION_STYLE)
        for key in ("field", "delta", "pct"):
            cells[key].stylize(REGRESSION_STYLE)
    elif row.improvement:
        cells["mark"] = Text(IMPROVEMENT_MARK, IMPROVEMENT_STYLE)
        for key in ("field", "delta", "pct"):
            cells[key].stylize(IMPROVEMENT_STYLE)
    elif row.direction is Direction.SAME:
        for cell in cells.values():
            cell.stylize("dim")
    for key in _VALUE_COLUMNS:
        cells[key].justify = "right"
    return cells


class CompareScreen(Screen[None]):
    """Snapshot A against snapshot B, field by field; Esc goes back with the mark where it was."""

    DEFAULT_CSS = """
    CompareScreen #compare-heading {
        height: auto;
        padding: 0 1;
    }
    CompareScreen #compare-summary {
        height: auto;
        padding: 0 1 1 1;
    }
    CompareScreen #compare-fields {
        height: 1fr;
    }
    CompareScreen #compare-detail {
        height: auto;
        max-height: 4;
        padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("x", "swap", "Swap A/B", tooltip="Swap A and B (the change is then read the other way)"),
        Binding("home", "first_field", "Top", show=False, tooltip="First field"),
        Binding("end", "last_field", "Bottom", show=False, tooltip="Last field"),
    ]

    def __init__(self, a: PerformanceSnapshot, b: PerformanceSnapshot, *, against_previous: bool = False,
                 threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> None:
        super().__init__()
        self.against_previous = against_previous
        """True when A is B's predecessor, found for the user (Enter with nothing marked)."""
        self.threshold_pct = threshold_pct
        """A watched field must change by more than this many percent to count as a regression."""
        self.diff: SnapshotDiff = diff_snapshots(a, b, threshold_pct=threshold_pct)
        """The comparison shown."""
        self.swapped = False
        """True after `x`: A and B are shown the other way round."""

    def compose(self) -> ComposeResult:
        yield Static(id="compare-heading")
        yield Static(id="compare-summary")
        yield DataTable(id="compare-fields", cursor_type="row", zebra_stripes=False)
        yield Static(id="compare-detail")
        yield Footer()

    def on_mount(self) -> None:
        self._draw()
        self.query_one("#compare-fields", DataTable).focus()

    @property
    def table(self) -> DataTable[Text]:
        """The fields."""
        return self.query_one("#compare-fields", DataTable)

    def on_resize(self) -> None:
        self._draw_table()

    def _draw(self) -> None:
        self._draw_heading()
        self._draw_summary()
        self._draw_table()
        self._draw_detail()

    def _draw_heading(self) -> None:
        a, b = self.diff.a, self.diff.b
        if self.against_previous:
            newer = a if self.swapped else b
            title = Text.assemble(("Snapshot ", "bold"), (f"#{newer.id} ", "bold"), safe_text(newer.plugin_id, "bold"),
                                  (" against the plugin's previous snapshot", "bold"))
        else:
            title = Text("Marked snapshot A against snapshot B", style="bold")
        if self.swapped:
            title.append(" (swapped: x swaps back)", "dim")
        seconds = self.diff.seconds_between
        heading = Text.assemble(
            title, "\n",
            (" A ", "reverse"), f" #{a.id}  ", safe_text(a.plugin_id, "bold"), "  ", (_when(a), "dim"), "\n",
            (" B ", "reverse"), f" #{b.id}  ", safe_text(b.plugin_id, "bold"), "  ", (_when(b), "dim"), "  ",
            (f"{duration(seconds)} {'after' if seconds >= 0 else 'before'} A" if seconds else "same time as A",
             "italic"),
        )
        self.query_one("#compare-heading", Static).update(heading)

    def _draw_summary(self) -> None:
        """The verdict first, then the rule behind it, so the marks need no guessing."""
        regressions, improvements = self.diff.regressions, self.diff.improvements
        line = Text()
        if regressions:
            line.append(f"{REGRESSION_MARK} {len(regressions)} regression{'s' if len(regressions) > 1 else ''}: ",
                        REGRESSION_STYLE)
            line.append_text(Text(", ").join(safe_text(row.path) for row in regressions))
        else:
            line.append("no regression", "green")
        if improvements:
            line.append("  ")
            line.append(f"{IMPROVEMENT_MARK} {len(improvements)} improvement{'s' if len(improvements) > 1 else ''}",
                        IMPROVEMENT_STYLE)
        limit = f"{self.threshold_pct:g}%"
        line.append(f"\n{REGRESSION_MARK} = cpu, memory, response time or error rate up >{limit}  "
                    f"{IMPROVEMENT_MARK} = down >{limit}", "dim")
        self.query_one("#compare-summary", Static).update(line)

    def _draw_table(self) -> None:
        """Columns sized to their content; on a narrow screen values are cut first, then the field path."""
        if not self.is_mounted:
            return
        table = self.table
        cursor = table.cursor_row
        rows = [diff_cells(row) for row in self.diff.rows]
        keys = list(_LABELS)
        widths = {key: max([len(_LABELS[key]), *(cells[key].cell_len for cells in rows)]) for key in keys}
        room = (table.size.width or self.size.width or 80) - 2 * table.cell_padding * len(keys) - 2
        cap = max(10, (room - widths["mark"] - 16) // 4)
        for key in _VALUE_COLUMNS:
            widths[key] = min(widths[key], cap)
        widths["field"] = max(12, min(widths["field"], room - sum(widths[key] for key in keys if key != "field")))
        table.clear(columns=True)
        for key in keys:
            table.add_column(Text(_LABELS[key], justify="right" if key in _VALUE_COLUMNS else "left"),
                             width=widths[key], key=key)
        for diff_row, cells in zip(self.diff.rows, rows):
            for key, cell in cells.items():
                cell.truncate(widths[key], overflow="ellipsis")
            table.add_row(*(cells[key] for key in keys), key=diff_row.path)
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1), animate=False)

    def _draw_detail(self) -> None:
        """The highlighted field in full: long text values are cut in the table."""
        table = self.table
        detail = Text()
        if table.row_count and 0 <= table.cursor_row < len(self.diff.rows):
            row = self.diff.rows[table.cursor_row]
            cells = diff_cells(row)
            detail = Text.assemble(safe_text(row.path, "bold"), ": ", ("A ", "dim"), _value_cell(row, row.a),
                                   ("  →  B ", "dim"), _value_cell(row, row.b), "  ", cells["delta"])
            if row.pct_change is not None:
                detail.append_text(Text.assemble(" (", cells["pct"], ")"))
        self.query_one("#compare-detail", Static).update(detail)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._draw_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()

    def action_first_field(self) -> None:
        """Home: the first field."""
        self.table.move_cursor(row=0, animate=False)

    def action_last_field(self) -> None:
        """End: the last field (custom metrics sort last)."""
        self.table.move_cursor(row=self.table.row_count - 1, animate=False)

    def action_swap(self) -> None:
        """`x`: B becomes A and A becomes B."""
        self.diff = diff_snapshots(self.diff.b, self.diff.a, threshold_pct=self.threshold_pct)
        self.swapped = not self.swapped
        self._draw()

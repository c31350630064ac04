"""Metrics: one plugin's metric over a time range as a line chart, with min / avg / p95 / max beside it."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.data_table import RowDoesNotExist

from pmon.tui import units
from pmon.tui.live_panel import LivePanel
from pmon.tui.messages import OpenPlugin, RefreshWanted
from pmon.tui.metrics_data import (
    DEFAULT_RANGE,
    RANGES,
    MetricsQuery,
    MetricsReading,
    MetricStats,
    metric_kind,
)
from pmon.tui.safe_text import safe_text
from pmon.tui.widgets.metric_chart import MetricChart

RANGE_NAMES = ("last 5 minutes", "last 15 minutes", "last hour", "last 6 hours", "last 24 hours", "last 7 days",
               "last 30 days")
"""What each of RANGES covers, in words, for the range list."""
WIDE = 110
"""From this many columns the statistics stand beside the chart; below, on one line under it."""
_SIDE_WIDTH = 25


def _duration(seconds: float) -> str:
    """A bucket width: ``2.5 s``, ``12 min``, ``1.4 h``."""
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


class RangeScreen(ModalScreen[int | None]):
    """`T`: the time ranges as a list; Enter (or a click) picks one, Esc keeps the current one."""

    DEFAULT_CSS = """
    RangeScreen {
        align: center middle;
    }
    RangeScreen > Vertical {
        width: 32;
        height: auto;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    RangeScreen OptionList, RangeScreen OptionList:focus {
        height: auto;
        border: none;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Keep the current range")]

    def __init__(self, current: int) -> None:
        super().__init__()
        self.current = current
        """Index in RANGES of the range shown now (highlighted when the list opens)."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Time range", style="bold"))
            yield OptionList(*(Text.assemble((r.label.ljust(4), "bold"), " ", name)
                               for r, name in zip(RANGES, RANGE_NAMES)))

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = self.current
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option_index)

    def action_cancel(self) -> None:
        """Esc: close without changing the range."""
        self.dismiss(None)


class MetricsTab(Horizontal, LivePanel):
    """Plugins and their metric types on the left, the chart and its statistics on the right.

    Every choice (plugin, metric type, range) bumps ``generation`` and asks
    for a read at once; readings for an older generation are dropped.
    """

    DEFAULT_CSS = f"""
    MetricsTab #metrics-side {{
        width: {_SIDE_WIDTH};
        height: 1fr;
        border-right: vkey $foreground 20%;
    }}
    MetricsTab .metrics-heading {{
        height: 1;
        padding: 0 1;
        color: $text-muted;
        text-style: bold;
    }}
    MetricsTab #metrics-plugins {{
        height: 1fr;
        min-height: 3;
    }}
    MetricsTab #metrics-types {{
        height: auto;
        max-height: 8;
    }}
    MetricsTab #metrics-ranges {{
        height: 1;
    }}
    MetricsTab #metrics-main {{
        width: 1fr;
        height: 1fr;
    }}
    MetricsTab #metrics-title {{
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }}
    MetricsTab #metrics-body {{
        height: 1fr;
    }}
    MetricsTab #metrics-stats-side {{
        display: none;
        width: 22;
        height: 1fr;
        padding: 1 1 1 2;
    }}
    MetricsTab #metrics-stats-line {{
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }}
    MetricsTab.-wide #metrics-stats-side {{
        display: block;
    }}
    MetricsTab.-wide #metrics-stats-line {{
        display: none;
    }}
    """

    BINDINGS = [
        Binding("t", "next_range", "Range", tooltip="Next time range: 5m 15m 1h 6h 24h 7d 30d"),
        Binding("T", "choose_range", "Ranges", tooltip="Choose the time range from a list"),
        Binding("m", "next_metric", "Metric", tooltip="Next metric type of the plugin"),
        Binding("M", "previous_metric", "Previous metric", show=False, tooltip="Previous metric type"),
    ]

    panel_key = "metrics"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.generation = 0
        """Bumped on every choice, so readings for an older one are ignored."""
        self.plugin_id: str | None = None
        """The plugin chosen (None: the first, until the first reading says which that is)."""
        self.metric_type: str | None = None
        """The metric type chosen (None, or one the plugin lacks: its first)."""
        self.range_index = DEFAULT_RANGE
        """Position in RANGES."""
        self.reading: MetricsReading | None = None
        """The reading on screen."""

    def compose(self) -> ComposeResult:
        with Vertical(id="metrics-side"):
            yield Static(Text("Plugins  Enter opens"), classes="metrics-heading")
            plugins: DataTable[Text] = DataTable(id="metrics-plugins", cursor_type="row", show_header=False)
            yield plugins
            yield Static(Text("Metric  m M"), classes="metrics-heading")
            types: DataTable[Text] = DataTable(id="metrics-types", cursor_type="row", show_header=False)
            yield types
            yield Static(Text("Range  t T"), classes="metrics-heading")
            yield Static(id="metrics-ranges")
        with Vertical(id="metrics-main"):
            yield Static(id="metrics-title")
            with Horizontal(id="metrics-body"):
                yield MetricChart(id="metrics-chart")
                yield Static(id="metrics-stats-side")
            yield Static(id="metrics-stats-line")

    def on_mount(self) -> None:
        for table_id, label in (("#metrics-plugins", "plugin"), ("#metrics-types", "metric")):
            self.query_one(table_id, DataTable).add_column(label, key=label, width=_SIDE_WIDTH - 4)
        self._draw_choice()

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "-wide")
        if self.reading is not None:
            self.call_after_refresh(self._draw_reading)  # tick counts and the stats line follow the new size

    # -- the refresh contract -----------------------------------------------------

    def current_query(self) -> MetricsQuery:
        """What the current choices ask for."""
        return MetricsQuery(self.generation, self.plugin_id, self.metric_type, RANGES[self.range_index])

    def panel_query(self) -> MetricsQuery | None:
        """The current query, or None while the reading on screen is fresh enough for its range."""
        query = self.current_query()
        last = self.reading
        now: float = getattr(self.app, "clock", time.time)()
        if last is not None and last.query == query and now - last.read_at < query.time_range.fresh_for:
            return None
        return query

    def show_panel(self, result: object) -> None:
        """Take a reading for the current generation (older ones are dropped) and redraw."""
        if not isinstance(result, MetricsReading) or result.query.generation != self.generation:
            return
        self.reading = result
        self.plugin_id = result.plugin_id
        self.metric_type = result.metric_type
        self._fill_plugins()
        self._fill_types()
        self._draw_choice()
        self._draw_reading()

    # -- choosing -----------------------------------------------------------------

    def select_plugin(self, plugin_id: str) -> None:
        """Show ``plugin_id``'s metrics (called by the plugin screen's `m`)."""
        if plugin_id != self.plugin_id:
            self.plugin_id = plugin_id
            self._move_cursor("#metrics-plugins", plugin_id)
            self._fill_types()
            self._changed()

    def _changed(self) -> None:
        self.generation += 1
        self._draw_choice()
        self.query_one("#metrics-stats-line", Static).update(Text("reading…", style="dim"))
        self.post_message(RefreshWanted())

    def _plugin_types(self) -> tuple[str, ...]:
        if self.reading is None:
            return ()
        entry = next((p for p in self.reading.plugins if p.plugin_id == self.plugin_id), None)
        return entry.metric_types if entry else ()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Arrows (or a click) in either list choose; cursor moves made by a redraw change nothing."""
        event.stop()
        key = self._cursor_key(event.data_table)
        if key is None:
            return
        if event.data_table.id == "metrics-plugins" and key != self.plugin_id:
            self.plugin_id = key
            self._fill_types()
            self._changed()
        elif event.data_table.id == "metrics-types" and key != self.metric_type:
            self.metric_type = key
            self._changed()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: the plugin's own screen."""
        event.stop()
        if self.plugin_id is not None:
            self.post_message(OpenPlugin(self.plugin_id))

    def action_next_range(self) -> None:
        """`t`: the next longer range (30d wraps to 5m)."""
        self._set_range((self.range_index + 1) % len(RANGES))

    def action_choose_range(self) -> None:
        """`T`: pick the range from a list."""
        self.app.push_screen(RangeScreen(self.range_index), self._range_chosen)

    def _range_chosen(self, index: int | None) -> None:
        if index is not None:
            self._set_range(index)

    def _set_range(self, index: int) -> None:
        if index != self.range_index:
            self.range_index = index
            self._changed()

    def action_next_metric(self) -> None:
        """`m`: the plugin's next metric type."""
        self._step_metric(1)

    def action_previous_metric(self) -> None:
        """`M`: the plugin's previous metric type."""
        self._step_metric(-1)

    def _step_metric(self, step: int) -> None:
        types = self._plugin_types()
        if not types:
            return
        index = types.index(self.metric_type) if self.metric_type in types else 0
        self.metric_type = types[(index + step) % len(types)]
        self._move_cursor("#metrics-types", self.metric_type)
        self._changed()

    # -- drawing ------------------------------------------------------------------

    @staticmethod
    def _cursor_key(table: DataTable[Text]) -> str | None:
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _move_cursor(self, table_id: str, key: str | None) -> None:
        if key is None:
            return
        table = self.query_one(table_id, DataTable)
        try:
            table.move_cursor(row=table.get_row_index(key), animate=False)
        except RowDoesNotExist:  # not listed yet: the next reading lists it
            return

    def _fill_plugins(self) -> None:
        """Relist the plugins when they changed, keeping the cursor on the chosen one."""
        assert self.reading is not None
        table = self.query_one("#metrics-plugins", DataTable)
        ids = tuple(p.plugin_id for p in self.reading.plugins)
        if ids != tuple(str(row.key.value) for row in table.ordered_rows):
            table.clear()
            for plugin_id in ids:
                cell = safe_text(plugin_id)
                cell.truncate(_SIDE_WIDTH - 4, overflow="ellipsis")
                table.add_row(cell, key=plugin_id)
        self._move_cursor("#metrics-plugins", self.plugin_id)

    def _fill_types(self) -> None:
        """List the chosen plugin's metric types with their units."""
        table = self.query_one("#metrics-types", DataTable)
        types = self._plugin_types()
        if types != tuple(str(row.key.value) for row in table.ordered_rows):
            table.clear()
            for metric_type in types:
                kind = metric_kind(metric_type)
                cell = Text.assemble(safe_text(kind.name), (f" {kind.unit}" if kind.unit else "", "dim"))
                cell.truncate(_SIDE_WIDTH - 4, overflow="ellipsis")
                table.add_row(cell, key=metric_type)
        self._move_cursor("#metrics-types", self.metric_type)

    def _draw_choice(self) -> None:
        """The title and range bar: they follow a key press at once, before the data arrives."""
        ranges = Text()
        for index, time_range in enumerate(RANGES):
            ranges.append(time_range.label, "reverse bold" if index == self.range_index else "dim")
            ranges.append(" ")
        self.query_one("#metrics-ranges", Static).update(ranges)
        title = Text()
        if self.plugin_id is not None:
            title.append_text(safe_text(self.plugin_id, "bold"))
            if self.metric_type is not None:
                kind = metric_kind(self.metric_type)
                title.append(" · ")
                title.append_text(safe_text(kind.name, "bold"))
                if kind.unit:
                    title.append(f" ({kind.unit})", "dim")
            title.append(" · ")
        title.append(RANGE_NAMES[self.range_index])
        self.query_one("#metrics-title", Static).update(title)

    def _draw_reading(self) -> None:
        reading = self.reading
        assert reading is not None
        chart = self.query_one(MetricChart)
        line = self.query_one("#metrics-stats-line", Static)
        side = self.query_one("#metrics-stats-side", Static)
        if reading.plugin_id is None or reading.metric_type is None:
            message = Text("No metrics recorded yet.") if reading.plugin_id is None else Text.assemble(
                safe_text(reading.plugin_id, "bold"), " has recorded no metrics.")
            chart.show_message(message)
            line.update("")
            side.update("")
            return
        kind = metric_kind(reading.metric_type)
        stats = reading.stats
        if stats is None:
            plugin = reading.plugin
            range_name = RANGE_NAMES[RANGES.index(reading.query.time_range)]
            message = Text.assemble("No ", safe_text(kind.name), f" values in the {range_name}.")
            if plugin is not None:
                message.append(f"\n{units.age(reading.read_at - plugin.last_seen)} since ")
                message.append_text(safe_text(reading.plugin_id, "bold"))
                message.append(" last recorded anything: t shows a longer range.")
            chart.show_message(message)
            line.update(Text("no values in this range", style="dim"))
            side.update(Text("no values\nin this range", style="dim"))
            return
        bucket = reading.query.time_range.seconds / reading.query.points
        chart.draw(reading.points, reading.since, reading.until, bucket, kind)
        line.update(self._stats_line(stats, kind.format))
        line.tooltip = None if stats.p95_exact else f"p95≈: ranked over an even sample of {stats.p95_count:,} values"
        side.update(self._stats_block(stats, kind.format))

    @staticmethod
    def _stat_rows(stats: MetricStats, fmt: Callable[[float], str]) -> list[tuple[str, str]]:
        p95 = "-" if stats.p95 is None else fmt(stats.p95)
        return [("min", fmt(stats.min)), ("avg", fmt(stats.avg)), ("p95" if stats.p95_exact else "p95≈", p95),
                ("max", fmt(stats.max))]

    def _stats_line(self, stats: MetricStats, fmt: Callable[[float], str]) -> Text:
        """The four statistics on one line, and how many values they cover when there is room."""
        line = Text()
        for name, value in self._stat_rows(stats, fmt):
            if line:
                line.append("  ")
            line.append(f"{name} ", "dim")
            line.append(value, "bold")
        count = f"  {stats.count:,} values"
        if line.cell_len + len(count) <= self.query_one("#metrics-stats-line").content_size.width:
            line.append(count, "dim")
        return line

    def _stats_block(self, stats: MetricStats, fmt: Callable[[float], str]) -> Text:
        block = Text()
        for name, value in self._stat_rows(stats, fmt):
            block.append(f"{name:<5}", "dim")
            block.append(value.rjust(10), "bold")
            block.append("\n")
        block.append(f"\n{stats.count:,} values", "dim")
        assert self.reading is not None
        bucket = self.reading.query.time_range.seconds / self.reading.query.points
        block.append(f"\nline: avg per {_duration(bucket)}", "dim")
        if not stats.p95_exact:
            block.append(f"\n\np95≈: ranked over an even sample of {stats.p95_count:,}", "dim")
        return block

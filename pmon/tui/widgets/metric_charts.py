"""A plugin's five metrics as block-character charts, each with its last, min, avg and max beside it.

Rich text rather than plotext: the plugin screen must draw within 150 ms of
Enter, and importing plotext alone costs about as much. The Metrics tab has
the full chart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from pmon.models import MetricType
from pmon.tui import units
from pmon.tui.plugin_data import MetricChart, PluginView, range_label
from pmon.tui.sparkline_text import sparkline_rows

LABEL_WIDTH = 9
"""Cells for the metric's name, left of its chart."""
VALUE_WIDTH = 8
"""Cells for each of last / min / avg / max (a space, then up to seven characters)."""
VALUE_NAMES = ("last", "min", "avg", "max")
PADDING = 2
"""The widget's horizontal padding (one cell each side)."""


def chart_columns(total_width: int) -> int:
    """How many cells (one bucket each) a chart gets in a widget ``total_width`` cells wide."""
    return max(10, total_width - PADDING - LABEL_WIDTH - VALUE_WIDTH * len(VALUE_NAMES))


def _megabytes(value: float | None) -> str:
    return "-" if value is None else f"{units.compact(value)}MB"


@dataclass(frozen=True)
class MetricLook:
    """How one metric is labelled, coloured and formatted."""

    label: str
    style: str
    format: Callable[[float | None], str]


LOOKS = {
    MetricType.CPU_USAGE: MetricLook("CPU", "green", units.percent),
    MetricType.MEMORY_USAGE: MetricLook("memory", "blue", _megabytes),
    MetricType.RESPONSE_TIME: MetricLook("response", "yellow", units.milliseconds),
    MetricType.ERROR_RATE: MetricLook("errors", "red", units.fraction_percent),
    MetricType.THROUGHPUT: MetricLook("req/s", "cyan", units.rate),
}
"""Label, colour and unit of each charted metric (error rate is a 0-1 fraction shown as %)."""


def _edge_time(epoch: float, range_seconds: float) -> str:
    """The chart's left edge: a clock time, with the date for ranges of a day or more."""
    return time.strftime("%m-%d %H:%M" if range_seconds >= 86400 else "%H:%M", time.localtime(epoch))


class MetricCharts(Widget):
    """Charts of CPU, memory, response time, error rate and throughput over the screen's time range."""

    DEFAULT_CSS = """
    MetricCharts {
        height: auto;
        padding: 0 1;
    }
    """

    chart_height: reactive[int] = reactive(1, layout=True)
    """Rows per chart (1 at 80x24, up to 4 on tall terminals)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: PluginView | None = None
        """The data drawn (None until the first read arrives)."""

    def show(self, view: PluginView | None) -> None:
        """Draw ``view`` (None: "loading…" until the first read for a plugin arrives)."""
        self.view = view
        self.refresh(layout=True)

    def render(self) -> Text:
        view = self.view
        if view is None:
            return Text("loading charts…", style="dim")
        columns = max(10, self.content_size.width - LABEL_WIDTH - VALUE_WIDTH * len(VALUE_NAMES))
        lines = [self._heading(view, columns)]
        for chart in view.charts:
            lines.extend(self._chart(view, chart, columns))
        return Text("\n").join(lines)

    def _heading(self, view: PluginView, columns: int) -> Text:
        since = view.grid.until - view.range_seconds
        left = f"{_edge_time(since, view.range_seconds)} ({range_label(view.range_seconds)} ago)"
        axis = left + "now".rjust(max(1, columns - len(left)))
        line = Text(" " * LABEL_WIDTH, style="dim", no_wrap=True, overflow="crop")
        line.append(axis[:columns].ljust(columns))
        for name in VALUE_NAMES:
            line.append(name.rjust(VALUE_WIDTH))
        return line

    def _chart(self, view: PluginView, chart: MetricChart, columns: int) -> list[Text]:
        look = LOOKS[chart.metric]
        height = self.chart_height
        if chart.count:
            rows = sparkline_rows(chart.columns(view.grid, columns), height)
        else:
            rows = [" " * columns for _ in range(height)]
            rows[-1] = f"no data in the last {range_label(view.range_seconds)}".ljust(columns)[:columns]
        figures = [chart.latest, chart.low, chart.mean, chart.high]
        lines = []
        for index, row in enumerate(rows):
            line = Text(no_wrap=True, overflow="crop")
            line.append((look.label if index == 0 else "").ljust(LABEL_WIDTH), "bold" if index == 0 else "")
            line.append(row, look.style if chart.count else "dim")
            if index == 0:
                for figure in figures:
                    line.append(look.format(figure).rjust(VALUE_WIDTH))
            lines.append(line)
        return lines

"""The Metrics tab's line chart: a plotext plot mounted the first time there is something to draw.

textual-plotext (and plotext under it) costs ~0.15 s to import, so nothing
here imports it at module level: ``_ensure_plot`` does, on first use, and
the console opens without it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from pmon.store.queries import SeriesPoint
from pmon.tui import units
from pmon.tui.metrics_data import MetricKind

if TYPE_CHECKING:
    from textual_plotext import PlotextPlot

LINE_COLOR = "cyan+"
"""The average line; under NO_COLOR it is the terminal's own colour, and still the only line."""

_TICK_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
               86400, 2 * 86400, 7 * 86400, 14 * 86400)
_DAY = 86400
_LABEL_ROOM = 11
"""Columns a time label needs, its gap included."""
_Y_LABEL_ROOM = 3
"""Rows per y-axis label."""


def time_ticks(since: float, until: float, max_labels: int) -> list[tuple[float, str]]:
    """Tick positions in (since, until) on round local times, at most ``max_labels`` of them.

    Labels are local ``HH:MM``; a tick on midnight, and every tick when
    ticks are days apart, shows the date instead (``Nov 14``).
    """
    span = until - since
    step = next((s for s in _TICK_STEPS if span / s <= max(1, max_labels)), _TICK_STEPS[-1])
    ticks: list[float] = []
    if step < _DAY:
        offset = time.localtime(since).tm_gmtoff
        tick = math.ceil((since + offset) / step) * step - offset
        while tick < until:
            ticks.append(tick)
            tick += step
    else:
        day = time.localtime(since)
        tick = time.mktime((day.tm_year, day.tm_mon, day.tm_mday + 1, 0, 0, 0, 0, 0, -1))
        while tick < until:
            ticks.append(tick)
            day = time.localtime(tick)
            tick = time.mktime((day.tm_year, day.tm_mon, day.tm_mday + step // _DAY, 0, 0, 0, 0, 0, -1))
    return [(t, _time_label(t)) for t in ticks]


def _time_label(epoch: float) -> str:
    local = time.localtime(epoch)
    if local.tm_hour == 0 and local.tm_min == 0:
        return time.strftime("%b %d", local)
    return time.strftime("%H:%M", local)


def value_ticks(low: float, high: float, max_labels: int) -> list[float]:
    """Round values (steps of 1, 2, 2.5 or 5 times a power of ten) from ``low`` to ``high``."""
    raw = (high - low) / max(1, max_labels)
    if raw <= 0:
        return [low]
    power = 10 ** math.floor(math.log10(raw))
    step = next((m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw), 10 * power)
    first = math.ceil(low / step - 1e-9)
    return [n * step for n in range(first, math.floor(high / step + 1e-9) + 1)]


def tick_label(value: float, step: float, kind: MetricKind) -> str:
    """An axis value with just the decimals its step needs (2.5 steps: one), in the metric's unit."""
    shown, shown_step = value * kind.scale, step * kind.scale
    if shown_step >= 1000:
        return f"{units.compact(shown)}{kind.unit}"
    decimals = 0
    while decimals < 4 and abs(round(shown_step, decimals) - shown_step) > 1e-9 * max(1.0, shown_step):
        decimals += 1
    return f"{shown:.{decimals}f}{kind.unit}"


def y_limits(values: Sequence[float], min_span: float) -> tuple[float, float]:
    """The y-axis range: the values with a little room, never below zero when they are not."""
    low, high = min(values), max(values)
    span = max(high - low, min_span)
    middle = (low + high) / 2
    low, high = middle - span * 0.55, middle + span * 0.55
    if min(values) >= 0 and low < 0:
        low, high = 0.0, high - low
    return low, high


def segments(points: Sequence[SeriesPoint], width: float) -> list[list[SeriesPoint]]:
    """Split the buckets where data stops for a while, so a gap (plugin down, idle) is not drawn as a line.

    A gap is more than three times the usual spacing, and more than two
    buckets: sparse history recorded every 20 s still draws as a line.
    """
    if len(points) < 2:
        return [list(points)] if points else []
    steps = [(b.timestamp - a.timestamp) / width for a, b in zip(points, points[1:])]
    limit = max(2.5, 3 * statistics.median(steps))
    parts = [[points[0]]]
    for point, step in zip(points[1:], steps):
        if step > limit:
            parts.append([])
        parts[-1].append(point)
    return parts


class MetricChart(Vertical):
    """A message until data comes, then the line chart (or the message again when the range is empty)."""

    DEFAULT_CSS = """
    MetricChart {
        height: 1fr;
    }
    MetricChart #chart-message {
        height: 1fr;
        padding: 1 2;
        content-align: center middle;
        color: $text-muted;
    }
    MetricChart.-plotted #chart-message {
        display: none;
    }
    MetricChart #chart-plot {
        display: none;
    }
    MetricChart.-plotted #chart-plot {
        display: block;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.plot: PlotextPlot | None = None
        """The plotext widget, once the first chart is drawn."""

    def compose(self) -> ComposeResult:
        yield Static(Text("loading…"), id="chart-message")

    def show_message(self, message: Text) -> None:
        """Show ``message`` in place of the chart."""
        self.remove_class("-plotted")
        self.query_one("#chart-message", Static).update(message)

    def draw(self, points: Sequence[SeriesPoint], since: float, until: float, bucket: float,
             kind: MetricKind) -> None:
        """Plot the averages of ``bucket``-second buckets over [since, until), round times and values on the axes."""
        plot = self._ensure_plot()
        plt = plot.plt
        plt.clear_figure()
        for part in segments(points, bucket):
            plt.plot([p.timestamp + bucket / 2 for p in part], [p.avg for p in part],
                     marker="braille" if len(part) > 1 else "•", color=LINE_COLOR)
        plt.xlim(since, until)
        columns = max(20, (self.size.width or 60) - 10)
        times = time_ticks(since, until, columns // _LABEL_ROOM)
        plt.xticks([t for t, _ in times], [label for _, label in times])
        low, high = y_limits([p.avg for p in points], kind.min_span)
        plt.ylim(low, high)
        ticks = value_ticks(low, high, max(2, (self.size.height or 12) // _Y_LABEL_ROOM))
        step = ticks[1] - ticks[0] if len(ticks) > 1 else kind.min_span
        plt.yticks(ticks, [tick_label(t, step, kind) for t in ticks])
        self.add_class("-plotted")
        plot.refresh()

    def _ensure_plot(self) -> PlotextPlot:
        if self.plot is None:
            from textual_plotext import PlotextPlot

            self.plot = PlotextPlot(id="chart-plot")
            self.mount(self.plot)
        return self.plot


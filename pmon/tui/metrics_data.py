"""What the Metrics tab reads: one plugin's metric over a time range, bucketed, with its statistics.

This module imports no Textual: the query runs on the refresh worker thread
and its result is a frozen dataclass, so it can be tested and timed alone.
The line and min / avg / max come from per-bucket aggregates (exact, and
cheap however long the range); p95 needs the values themselves, ranked
exactly up to ``EXACT_P95_LIMIT`` points and over an even sample beyond.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from pmon.store import metric_queries, queries
from pmon.store.metric_queries import PluginMetricTypes
from pmon.store.queries import SeriesPoint
from pmon.tui import units


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A range the chart can show, ending now."""

    label: str
    seconds: int
    fresh_for: float
    """Seconds a reading of this range is shown before it is read again (long ranges scan many rows)."""


RANGES = (
    TimeRange("5m", 300, 0),
    TimeRange("15m", 900, 0),
    TimeRange("1h", 3600, 0),
    TimeRange("6h", 6 * 3600, 10),
    TimeRange("24h", 24 * 3600, 30),
    TimeRange("7d", 7 * 86400, 60),
    TimeRange("30d", 30 * 86400, 60),
)
"""The ranges in the order `t` cycles them."""
DEFAULT_RANGE = 2
"""1h: long enough to see a trend, short enough to see a spike."""
POINTS = 120
"""Buckets per range: every range's bucket width is a whole multiple of 0.5 s, so window edges are exact floats."""
EXACT_P95_LIMIT = 100_000
"""Up to this many values p95 is ranked exactly; above it, over a sample of about this many (shown as ``p95≈``)."""


@dataclass(frozen=True, slots=True)
class MetricKind:
    """How one metric type is named and its values written (on the axis and in the statistics)."""

    name: str
    unit: str
    """Written after axis values, and after the name in titles."""
    format: Callable[[float], str]
    """A value as the statistics show it."""
    min_span: float
    """The smallest y-axis span worth drawing, so a flat line sits mid-chart instead of on noise."""
    scale: float = 1.0
    """Recorded value to displayed value (100 for a fraction shown as a percentage)."""


def _fraction(value: float) -> str:
    pct = value * 100
    if pct == 0:
        return "0%"
    return f"{pct:.2f}%" if abs(pct) < 1 else f"{pct:.1f}%" if abs(pct) < 10 else f"{pct:.0f}%"


def _milliseconds(value: float) -> str:
    return f"{value:.1f}ms" if abs(value) < 100 else units.milliseconds(value)


def _megabytes(value: float) -> str:
    return f"{units.compact(value)}MB"


def _with_unit(unit: str) -> Callable[[float], str]:
    return lambda value: f"{units.compact(value)}{unit}"


KINDS = {
    "cpu_usage": MetricKind("CPU", "%", lambda v: f"{v:.1f}%", 1.0),
    "memory_usage": MetricKind("memory", "MB", _megabytes, 1.0),
    "response_time": MetricKind("response time", "ms", _milliseconds, 1.0),
    "error_rate": MetricKind("error rate", "%", _fraction, 0.01, 100.0),
    "throughput": MetricKind("throughput", "/s", units.rate, 1.0),
    "disk_io": MetricKind("disk I/O", "B/s", _with_unit("B/s"), 1.0),
    "network_io": MetricKind("network I/O", "B/s", _with_unit("B/s"), 1.0),
}
"""Known metric types; error_rate is recorded as a 0-1 fraction and shown as a percentage."""


# Custom metrics (`process.disk_read_bytes_per_s`, `pmon.flush_ms`...) get a unit from their name's ending.
_SUFFIX_KINDS = (
    ("_bytes_per_s", MetricKind("", "B/s", _with_unit("B/s"), 1.0)),
    ("_bytes", MetricKind("", "B", _with_unit("B"), 1.0)),
    ("_percent", MetricKind("", "%", lambda v: f"{v:.1f}%", 1.0)),
    ("_ms", MetricKind("", "ms", _milliseconds, 1.0)),
    ("_per_s", MetricKind("", "/s", units.rate, 1.0)),
)


def metric_kind(metric_type: str) -> MetricKind:
    """The kind of ``metric_type``; a custom metric is shown by its own name, with a unit its name implies."""
    known = KINDS.get(metric_type)
    if known is not None:
        return known
    for suffix, kind in _SUFFIX_KINDS:
        if metric_type.endswith(suffix):
            return MetricKind(metric_type, kind.unit, kind.format, kind.min_span)
    return MetricKind(metric_type, "", units.compact, 1.0)


@dataclass(frozen=True, slots=True)
class MetricStats:
    """Statistics over every value in the range (not over the bucket averages)."""

    count: int
    min: float
    avg: float
    max: float
    p95: float | None
    p95_exact: bool
    p95_count: int
    """How many values p95 was ranked over: ``count`` when exact, the sample's size when not."""


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    """What the Metrics tab wants; ``generation`` changes with each choice so stale answers are dropped.

    ``plugin_id`` / ``metric_type`` None (or no longer recorded) means the
    first plugin / its first metric type: the reading says which it showed.
    """

    generation: int = 0
    plugin_id: str | None = None
    metric_type: str | None = None
    time_range: TimeRange = RANGES[DEFAULT_RANGE]
    points: int = POINTS
    exact_limit: int = EXACT_P95_LIMIT

    def window(self, now: float) -> tuple[float, float]:
        """[since, until): ``points`` whole buckets, the last one holding ``now``.

        Aligning buckets to multiples of their width keeps them still from
        one refresh to the next, so the line does not shimmer as time passes.
        """
        width = self.time_range.seconds / self.points
        until = (math.floor(now / width) + 1) * width
        return until - self.points * width, until

    def read(self, conn: sqlite3.Connection, now: float) -> MetricsReading:
        """The plugin list, then the chosen series and its statistics."""
        plugins = tuple(metric_queries.plugin_metric_types(conn))
        plugin = next((p for p in plugins if p.plugin_id == self.plugin_id), plugins[0] if plugins else None)
        metric_type = None
        if plugin is not None and plugin.metric_types:
            metric_type = self.metric_type if self.metric_type in plugin.metric_types else plugin.metric_types[0]
        since, until = self.window(now)
        points: tuple[SeriesPoint, ...] = ()
        stats = None
        if plugin is not None and metric_type is not None:
            points = tuple(queries.series(conn, plugin.plugin_id, metric_type, since, until,
                                                        self.points))
            stats = self._stats(conn, plugin.plugin_id, metric_type, since, until, points)
        return MetricsReading(self, plugins, plugin.plugin_id if plugin else None, metric_type, since, until, now,
                              points, stats)

    def _stats(self, conn: sqlite3.Connection, plugin_id: str, metric_type: str, since: float, until: float,
               points: tuple[SeriesPoint, ...]) -> MetricStats | None:
        count = sum(p.count for p in points)
        if not count:
            return None
        low = min(p.min for p in points)
        high = max(p.max for p in points)
        avg = sum(p.avg * p.count for p in points) / count
        keep = min(1.0, self.exact_limit / count)
        p95 = metric_queries.percentile(conn, plugin_id, metric_type, since, until, 0.95, keep)
        if p95 is None:  # the values were pruned between the two reads
            return MetricStats(count, low, avg, high, None, True, 0)
        return MetricStats(count, low, avg, high, p95.value, p95.exact, p95.count)


@dataclass(frozen=True, slots=True)
class MetricsReading:
    """One answer to a ``MetricsQuery``."""

    query: MetricsQuery
    plugins: tuple[PluginMetricTypes, ...]
    plugin_id: str | None
    """The plugin shown: the query's, or the first when it named none or one that is gone."""
    metric_type: str | None
    """The metric type shown: the query's when the plugin has it, else the plugin's first."""
    since: float
    until: float
    read_at: float
    points: tuple[SeriesPoint, ...]
    """Non-empty buckets, oldest first."""
    stats: MetricStats | None
    """None when the range holds no values."""

    @property
    def plugin(self) -> PluginMetricTypes | None:
        """The shown plugin's entry in ``plugins``."""
        return next((p for p in self.plugins if p.plugin_id == self.plugin_id), None)

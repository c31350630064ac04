"""What the plugin screen reads (``PluginQuery``) and what it gets back (``PluginView``).

This module imports no Textual, so the screen's data layer can be tested and
timed alone. A refresh is incremental: the query carries the previous view, and
only what can have changed since is read again: chart buckets from a few
seconds before the last read (the grid is fixed to the epoch, so older buckets
keep their meaning), logs and events after the last id, snapshots only when
the plugin's newest snapshot id moved, percentiles only when the response
times changed.
"""

from __future__ import annotations

import math
import sqlite3
import statistics
from dataclasses import dataclass

from pmon.analysis.performance import downtime
from pmon.models import LIFECYCLE_STATUS, MetricType, PerformanceSnapshot, PluginEvent, PluginLog
from pmon.store import analysis_queries, plugin_queries, queries
from pmon.store.plugin_queries import MetricBucket
from pmon.store.queries import PluginSummary
from pmon.tui.error_groups_data import ShownGroup, read_groups
from pmon.tui.findings_data import ShownFinding, read_findings
from pmon.tui.reader import percentile, status_of

RANGES: tuple[tuple[str, float], ...] = (
    ("5m", 300.0), ("15m", 900.0), ("1h", 3600.0), ("6h", 21600.0), ("24h", 86400.0), ("7d", 604800.0),
    ("30d", 2592000.0),
)
"""(label, seconds) in the order `t` cycles them."""
DEFAULT_RANGE = 2
"""Index into RANGES of the range a plugin screen opens with (1h)."""
CHART_METRICS = (MetricType.CPU_USAGE, MetricType.MEMORY_USAGE, MetricType.RESPONSE_TIME, MetricType.ERROR_RATE,
                 MetricType.THROUGHPUT)
"""The charts, top to bottom."""
RECENT_LOGS = 200
"""Logs read when the screen opens, and the most read per refresh after that."""
RECENT_EVENTS = 100
"""Events read when the screen opens, and the most read per refresh after that."""
RECENT_SNAPSHOTS = 50
"""Snapshots listed (newest first)."""
EXACT_PERCENTILES = 100_000
"""Up to this many response times in the range, percentiles are exact; above, estimated from the chart buckets."""
ALWAYS_RECOMPUTE = 10_000
"""Up to this many response times, percentiles are recomputed whenever they change (a few ms)."""
SETTLE_SECONDS = 10.0
"""Buckets this close to the previous read are read again: points reach the store a flush interval late."""
ERROR_LEVELS = ("error", "critical")
"""Log levels counted as error logs."""
SERIOUS_SEVERITIES = ("high", "critical")
"""Event severities counted as high+ events."""
TOP_GROUPS = 5
"""Error groups the plugin screen lists (the largest over its range)."""


def range_label(seconds: float) -> str:
    """``1h`` for 3600, or the seconds when not one of RANGES."""
    return next((label for label, length in RANGES if length == seconds), f"{seconds:g}s")


@dataclass(frozen=True, slots=True)
class ChartGrid:
    """The time window as ``columns`` buckets of ``width_ms``: bucket ``i`` holds ``i*width_ms <= ts_ms < (i+1)*width_ms``."""

    width_ms: int
    first: int
    """Index of the leftmost bucket."""
    columns: int

    @classmethod
    def ending_at(cls, now: float, range_seconds: float, columns: int) -> ChartGrid:
        """The grid whose last bucket holds ``now`` and whose buckets span at least ``range_seconds``."""
        columns = max(1, columns)
        width_ms = max(1, -(-int(range_seconds * 1000) // columns))
        last = int(now * 1000) // width_ms
        return cls(width_ms, last - columns + 1, columns)

    @property
    def last(self) -> int:
        """Index of the rightmost bucket (the one holding now)."""
        return self.first + self.columns - 1

    @property
    def since(self) -> float:
        """Start of the window, epoch seconds (inclusive)."""
        return self.first * self.width_ms / 1000

    @property
    def until(self) -> float:
        """End of the window, epoch seconds (exclusive)."""
        return (self.last + 1) * self.width_ms / 1000


@dataclass(frozen=True, slots=True)
class MetricChart:
    """One metric over the window: its non-empty buckets (oldest first) and its latest recorded value."""

    metric: MetricType
    buckets: tuple[MetricBucket, ...]
    latest: float | None
    """The newest value ever recorded (it may be older than the window when the plugin went quiet)."""

    @property
    def count(self) -> int:
        """Points in the window."""
        return sum(b.count for b in self.buckets)

    @property
    def low(self) -> float | None:
        """Smallest point in the window."""
        return min((b.min for b in self.buckets), default=None)

    @property
    def high(self) -> float | None:
        """Largest point in the window."""
        return max((b.max for b in self.buckets), default=None)

    @property
    def mean(self) -> float | None:
        """Mean of the points in the window (exact: weighted by each bucket's count)."""
        count = self.count
        return sum(b.avg * b.count for b in self.buckets) / count if count else None

    def columns(self, grid: ChartGrid, columns: int) -> list[float | None]:
        """Bucket averages for the newest ``columns`` buckets of ``grid``, None where nothing was recorded."""
        values: list[float | None] = [None] * columns
        start = grid.last - columns + 1
        for b in self.buckets:
            if b.index >= start:
                values[b.index - start] = b.avg
        return values


@dataclass(frozen=True, slots=True)
class RangeStats:
    """The plugin's figures over the window."""

    requests: float | None
    """≈ Σ throughput samples × their spacing: the requests the recorded req/s imply (None: too few samples)."""
    response_mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    percentiles_exact: bool
    """False when the percentiles were estimated from the chart buckets (more than EXACT_PERCENTILES points)."""
    response_count: int
    """Response times the percentiles were computed from."""
    error_rate: float | None
    """Mean of the recorded error rates (a 0-1 fraction)."""
    throughput: float | None
    """Mean of the recorded req/s."""
    error_logs: int
    serious_events: int
    uptime_pct: float = 100.0
    """Share of the range not spent down, from the lifecycle events, as `pmon analytics performance` counts it."""


@dataclass(frozen=True, slots=True)
class PluginView:
    """One refresh of the plugin screen. ``logs`` and ``events`` are only what is new since the query's ids."""

    plugin_id: str
    generation: int
    range_seconds: float
    read_at: float
    summary: PluginSummary | None
    """None when the store has no such plugin."""
    status: str
    """active / idle / down (see ``reader.status_of``); ``unknown`` when the plugin is not in the store."""
    grid: ChartGrid
    charts: tuple[MetricChart, ...]
    """One per CHART_METRICS, in that order."""
    stats: RangeStats
    percentiles_at: float
    """When the percentiles were last computed (they are reused while the response times stay the same)."""
    log_after: int | None
    """The query's log position: None for a first page."""
    logs: tuple[PluginLog, ...]
    """New logs, oldest first."""
    event_after: int | None
    """The query's event position: None for a first page."""
    events: tuple[PluginEvent, ...]
    """New events, oldest first."""
    snapshots: tuple[PerformanceSnapshot, ...] | None
    """The newest snapshots (newest first), or None when unchanged since the query's ``snapshot_newest``."""
    newest_snapshot_id: int
    groups: tuple[ShownGroup, ...] | None = None
    """The largest error groups over the range, or None when not regrouped this time (see ``groups_due``)."""
    findings: tuple[ShownFinding, ...] = ()
    """Recent alert-category events, newest first, with their states."""

    def chart(self, metric: MetricType) -> MetricChart:
        """The chart of ``metric``."""
        return self.charts[CHART_METRICS.index(metric)]


@dataclass(frozen=True, slots=True)
class PluginQuery:
    """What the plugin screen wants next. ``generation`` changes with the range, so stale answers are dropped."""

    plugin_id: str
    generation: int
    range_seconds: float
    columns: int
    """Chart width in cells: one bucket per cell."""
    log_after: int | None = None
    """Read logs after this id (None: the newest RECENT_LOGS)."""
    event_after: int | None = None
    """Read events after this id (None: the newest RECENT_EVENTS)."""
    snapshot_newest: int | None = None
    """The newest snapshot id already shown (None: read them)."""
    previous: PluginView | None = None
    """The last view shown: its buckets and percentiles are reused where nothing can have changed."""
    groups_due: bool = True
    """Group the range's error logs again (a second for 100 000 of them: the screen asks every few seconds)."""

    def read(self, conn: sqlite3.Connection, now: float) -> PluginView:
        """Read on the worker thread; every query is an index seek or a scan of this plugin's window."""
        pid = self.plugin_id
        ids = plugin_queries.series_ids(conn, pid)
        summary = plugin_queries.plugin_summary(conn, pid, ids)
        grid = ChartGrid.ending_at(now, self.range_seconds, self.columns)
        previous = self.previous
        if previous is not None and (previous.plugin_id != pid or previous.grid.width_ms != grid.width_ms
                                     or previous.grid.columns != grid.columns or previous.read_at > now):
            previous = None
        charts = self._charts(conn, ids, summary, grid, previous, now)
        stats, percentiles_at = self._stats(conn, ids, grid, charts, previous, now)
        snapshots, newest_snapshot = self._snapshots(conn)
        return PluginView(
            plugin_id=pid, generation=self.generation, range_seconds=self.range_seconds, read_at=now,
            summary=summary, status=status_of(summary, now) if summary else "unknown", grid=grid, charts=charts,
            stats=stats, percentiles_at=percentiles_at,
            log_after=self.log_after, logs=self._logs(conn),
            event_after=self.event_after, events=self._events(conn),
            snapshots=snapshots, newest_snapshot_id=newest_snapshot,
            groups=read_groups(conn, now - self.range_seconds, now, pid, TOP_GROUPS) if self.groups_due else None,
            findings=read_findings(conn, pid),
        )

    def _charts(self, conn: sqlite3.Connection, ids: dict[str, int], summary: PluginSummary | None,
                grid: ChartGrid, previous: PluginView | None, now: float) -> tuple[MetricChart, ...]:
        reread_from = grid.first
        if previous is not None:
            settled = int((previous.read_at - SETTLE_SECONDS) * 1000) // grid.width_ms
            reread_from = min(max(grid.first, settled), grid.last)
        charts = []
        for metric in CHART_METRICS:
            kept: tuple[MetricBucket, ...] = ()
            if previous is not None:
                kept = tuple(b for b in previous.chart(metric).buckets if grid.first <= b.index < reread_from)
            sid = ids.get(metric.value)
            fresh = plugin_queries.buckets(conn, sid, grid.width_ms, reread_from, grid.last) if sid else []
            latest = summary.latest.get(metric.value) if summary else None
            charts.append(MetricChart(metric, kept + tuple(fresh), latest.value if latest else None))
        return tuple(charts)

    def _stats(self, conn: sqlite3.Connection, ids: dict[str, int], grid: ChartGrid,
               charts: tuple[MetricChart, ...], previous: PluginView | None, now: float) -> tuple[RangeStats, float]:
        response = charts[CHART_METRICS.index(MetricType.RESPONSE_TIME)]
        count = response.count
        reuse = previous is not None and previous.stats.response_count == count and (
            count <= ALWAYS_RECOMPUTE or now - previous.percentiles_at < self.range_seconds / 360)
        exact, percentiles_at = count <= EXACT_PERCENTILES, now
        if previous is not None and reuse:
            old = previous.stats
            p50, p95, p99 = old.p50, old.p95, old.p99
            exact, percentiles_at = old.percentiles_exact, previous.percentiles_at
        elif exact:
            sid = ids.get(MetricType.RESPONSE_TIME.value)
            values = plugin_queries.values_between(conn, sid, grid.since, grid.until, EXACT_PERCENTILES) if sid else []
            p50, p95, p99 = (percentile(values, f) for f in (0.5, 0.95, 0.99))
        else:
            p50, p95, p99 = (bucket_percentile(response.buckets, f) for f in (0.5, 0.95, 0.99))
        pid = self.plugin_id
        stats = RangeStats(
            requests=implied_requests(charts[CHART_METRICS.index(MetricType.THROUGHPUT)].buckets),
            response_mean=response.mean, p50=p50, p95=p95, p99=p99, percentiles_exact=exact, response_count=count,
            error_rate=charts[CHART_METRICS.index(MetricType.ERROR_RATE)].mean,
            throughput=charts[CHART_METRICS.index(MetricType.THROUGHPUT)].mean,
            error_logs=plugin_queries.count_logs_between(conn, pid, ERROR_LEVELS, grid.since, grid.until),
            serious_events=plugin_queries.count_events_between(conn, pid, SERIOUS_SEVERITIES, grid.since, grid.until),
            uptime_pct=self._uptime(conn, now),
        )
        return stats, percentiles_at

    def _uptime(self, conn: sqlite3.Connection, now: float) -> float:
        """Percent of [now - range, now) the plugin was not down (two index seeks on the lifecycle events)."""
        since, pid = now - self.range_seconds, self.plugin_id
        before = analysis_queries.lifecycle_before(conn, [pid], since).get(pid, "")
        events = [(e.event_type, e.timestamp) for e in analysis_queries.lifecycle_events(conn, since, now, pid)]
        down = downtime(LIFECYCLE_STATUS.get(before, "active") == "down", events, since, now)
        return 100.0 * (1 - down / self.range_seconds)

    def _logs(self, conn: sqlite3.Connection) -> tuple[PluginLog, ...]:
        if self.log_after is None:
            return tuple(reversed(queries.logs(conn, plugin_id=self.plugin_id, limit=RECENT_LOGS)))
        return tuple(queries.logs(conn, plugin_id=self.plugin_id, after_id=self.log_after, limit=RECENT_LOGS,
                                  newest_first=False))

    def _events(self, conn: sqlite3.Connection) -> tuple[PluginEvent, ...]:
        if self.event_after is None:
            return tuple(reversed(queries.events(conn, plugin_id=self.plugin_id, limit=RECENT_EVENTS)))
        return tuple(queries.events(conn, plugin_id=self.plugin_id, after_id=self.event_after, limit=RECENT_EVENTS,
                                    newest_first=False))

    def _snapshots(self, conn: sqlite3.Connection) -> tuple[tuple[PerformanceSnapshot, ...] | None, int]:
        newest = plugin_queries.newest_snapshot_id(conn, self.plugin_id)
        if newest == self.snapshot_newest:
            return None, newest
        return tuple(queries.snapshots(conn, plugin_id=self.plugin_id, limit=RECENT_SNAPSHOTS)), newest


def implied_requests(buckets: tuple[MetricBucket, ...]) -> float | None:
    """Requests implied by throughput samples: Σ req/s × the spacing of the samples in their bucket.

    A bucket with one sample borrows the median spacing of the others; with no
    bucket holding two samples the spacing is unknown and so is the answer.
    """
    spacing = {b.index: (b.last - b.first) / (b.count - 1) for b in buckets if b.count >= 2}
    if not spacing:
        return None
    usual = statistics.median(spacing.values())
    return sum(b.avg * b.count * spacing.get(b.index, usual) for b in buckets)


def bucket_percentile(buckets: tuple[MetricBucket, ...], fraction: float) -> float | None:
    """A nearest-rank percentile estimated from bucket averages weighted by their counts."""
    total = sum(b.count for b in buckets)
    if not total:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for b in sorted(buckets, key=lambda b: b.avg):
        seen += b.count
        if seen >= rank:
            return b.avg
    return None

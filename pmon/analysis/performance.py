"""Performance statistics for a time range, per plugin and overall: requests, response-time percentiles, errors, uptime.

Percentiles are exact (nearest rank) while a range holds at most
``EXACT_LIMIT`` response times; beyond that they come from a
``LogHistogram`` (within 1 % of the exact value). Reading a million values
into Python alone takes longer than the 200 ms budget, so the histogram's
bucket keys are computed by SQLite over slices of the range, in several
threads with their own read-only connections (a statement runs without the
GIL); only the keys' counting is Python's.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Final

from pmon.analysis.histogram import LogHistogram, exact_quantile
from pmon.models import LIFECYCLE_STATUS, MetricType
from pmon.store import analysis_queries as aq
from pmon.store.schema import open_reader

EXACT_LIMIT: Final = 100_000
"""Up to this many response times in a range (per plugin, and overall) the percentiles are exact."""
SLICES: Final = 8
"""Equal time slices a long range is cut into, so the reader threads share the work."""
MAX_READERS: Final = 4
"""Threads (each with its own read-only connection) counting histogram buckets at once."""
READER_MMAP_BYTES: Final = 256 * 1024 * 1024
"""The reader threads map the file instead of copying pages: with copies they mostly wait on each other."""
QUANTILES: Final = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class PluginPerformance:
    """One plugin's figures over the range (``plugin_id`` None: every plugin together)."""

    plugin_id: str | None
    requests: int
    """Response times recorded in the range: one per request the plugin timed."""
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    exact: bool
    """False when the percentiles come from the histogram (more than ``EXACT_LIMIT`` response times)."""
    error_rate: float | None
    """Mean of the recorded error rates (0-1). The recorded rate is all pmon knows of errors: error logs are
    not requests, and a rate per sample cannot be weighted by requests it does not name. Overall: the mean
    of every plugin's error-rate points together."""
    throughput: float | None
    """Mean of the recorded req/s. Overall: the sum of the plugins' means (the application's req/s)."""
    uptime_pct: float
    """Share of the range not spent down. Down runs from a stopped / not_found event to the next
    started / restarted one (or the range's end); a plugin with no lifecycle events is up. Overall: the
    mean over the plugins."""
    downtime_s: float
    """Seconds down in the range (overall: plugin-seconds, summed)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PerformanceStats:
    """Every plugin's figures over [since, until), by plugin id, and the overall ones."""

    since: float
    until: float
    plugins: tuple[PluginPerformance, ...]
    overall: PluginPerformance

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {"since": self.since, "until": self.until, "plugins": [p.to_dict() for p in self.plugins],
                "overall": self.overall.to_dict()}


@dataclass(slots=True)
class _Distribution:
    """A plugin's response times: sorted values (exact) or a histogram, with the exact count and sum."""

    count: int
    total: float
    values: list[float] | None
    histogram: LogHistogram | None

    def quantiles(self) -> tuple[float | None, ...]:
        if self.values is not None:
            return tuple(exact_quantile(self.values, q) for q in QUANTILES)
        assert self.histogram is not None
        return tuple(self.histogram.quantile(q) for q in QUANTILES)


def downtime(initially_down: bool, events: Iterable[tuple[str, float]], since: float, until: float) -> float:
    """Seconds down in [since, until) given the state at ``since`` and the lifecycle events (type, time) in order."""
    down_from = since if initially_down else None
    total = 0.0
    for event_type, at in events:
        status = LIFECYCLE_STATUS.get(event_type)
        if status == "down" and down_from is None:
            down_from = at
        elif status == "active" and down_from is not None:
            total += at - down_from
            down_from = None
    if down_from is not None:
        total += until - down_from
    return total


def _slices(start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """[start_ms, end_ms) cut into ``SLICES`` equal time slices."""
    pieces = max(1, min(SLICES, end_ms - start_ms))
    edges = [start_ms + (end_ms - start_ms) * i // pieces for i in range(pieces + 1)]
    return list(zip(edges, edges[1:]))


def _count_slice(conn: sqlite3.Connection, template: LogHistogram, series_id: int, start_ms: int,
                 end_ms: int) -> aq.LogBucketCounts:
    try:
        return aq.log_bucket_counts(conn, series_id, start_ms, end_ms, template.inv_log_gamma, template.min_value)
    except sqlite3.OperationalError as exc:
        if "no such function" not in str(exc):
            raise
    # An SQLite built without math functions: stream the values through Python instead (slower, same buckets).
    values = aq.point_values(conn, series_id, start_ms, end_ms)
    histogram = LogHistogram(template.relative_accuracy, template.min_value)
    histogram.extend(values)
    return aq.LogBucketCounts(len(values), math.fsum(values), dict(histogram.positive), dict(histogram.negative),
                              histogram.zero)


def _run_parallel(conn: sqlite3.Connection, tasks: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
    """Run each task with a connection: spread over reader threads for a file, on ``conn`` otherwise."""
    path = aq.database_file(conn)
    workers = min(MAX_READERS, os.cpu_count() or 1, len(tasks))
    if path is None or workers < 2:
        return [task(conn) for task in tasks]
    shares = [list(range(i, len(tasks), workers)) for i in range(workers)]

    def work(share: list[int]) -> list[tuple[int, Any]]:
        reader = open_reader(path)
        reader.execute(f"PRAGMA mmap_size = {READER_MMAP_BYTES}")
        try:
            return [(i, tasks[i](reader)) for i in share]
        finally:
            reader.close()

    results: list[Any] = [None] * len(tasks)
    with ThreadPoolExecutor(workers, thread_name_prefix="pmon-performance") as pool:
        for done in pool.map(work, shares):
            for i, result in done:
                results[i] = result
    return results


def _distributions(conn: sqlite3.Connection, series: dict[str, int], start_ms: int, end_ms: int,
                   exact_limit: int) -> dict[str, _Distribution]:
    """Each plugin's response times in the range: sorted values up to ``exact_limit``, else bucketed."""
    found: dict[str, _Distribution] = {}
    tasks: list[Callable[[sqlite3.Connection], aq.LogBucketCounts]] = []
    owners: list[str] = []
    template = LogHistogram()
    for plugin_id, series_id in series.items():
        count = aq.point_count(conn, series_id, start_ms, end_ms, exact_limit + 1)
        if not count:
            continue
        if count <= exact_limit:
            values = sorted(aq.point_values(conn, series_id, start_ms, end_ms))
            found[plugin_id] = _Distribution(len(values), math.fsum(values), values, None)
            continue
        found[plugin_id] = _Distribution(0, 0.0, None, LogHistogram())
        for low, high in _slices(start_ms, end_ms):
            tasks.append(lambda c, sid=series_id, lo=low, hi=high: _count_slice(c, template, sid, lo, hi))
            owners.append(plugin_id)
    for plugin_id, counts in zip(owners, _run_parallel(conn, tasks)):
        dist = found[plugin_id]
        assert dist.histogram is not None
        dist.histogram.add_buckets(counts.positive, counts.negative, counts.zero)
        dist.count += counts.count
        dist.total += counts.total
    return found


def _overall_distribution(parts: Iterable[_Distribution], exact_limit: int) -> _Distribution:
    parts = list(parts)
    count, total = sum(p.count for p in parts), sum(p.total for p in parts)
    if count <= exact_limit and all(p.values is not None for p in parts):
        return _Distribution(count, total, sorted(v for p in parts for v in p.values or ()), None)
    histogram = LogHistogram()
    for part in parts:
        if part.histogram is not None:
            histogram.merge(part.histogram)
        else:
            histogram.extend(part.values or ())
    return _Distribution(count, total, None, histogram)


def _figures(plugin_id: str | None, dist: _Distribution | None, error_rate: float | None, throughput: float | None,
             uptime_pct: float, downtime_s: float) -> PluginPerformance:
    if dist is None or not dist.count:
        return PluginPerformance(plugin_id, 0, None, None, None, None, True, error_rate, throughput, uptime_pct,
                                 downtime_s)
    p50, p95, p99 = dist.quantiles()
    return PluginPerformance(plugin_id, dist.count, dist.total / dist.count, p50, p95, p99, dist.values is not None,
                             error_rate, throughput, uptime_pct, downtime_s)


def performance(conn: sqlite3.Connection, since: float, until: float, plugin_id: str | None = None, *,
                exact_limit: int = EXACT_LIMIT) -> PerformanceStats:
    """Requests, mean and p50/p95/p99 response time, error rate, throughput and uptime over [since, until).

    A plugin is listed when it recorded a response time, error rate or
    throughput in the range or had a lifecycle event in it (``plugin_id``:
    that plugin only, listed even with nothing recorded).
    """
    if until <= since:
        raise ValueError(f"until ({until}) must be after since ({since})")
    start_ms, end_ms = int(since * 1000), int(until * 1000)
    distributions = _distributions(conn, aq.series_by_plugin(conn, MetricType.RESPONSE_TIME.value, plugin_id),
                                   start_ms, end_ms, exact_limit)
    errors = aq.means_by_plugin(conn, MetricType.ERROR_RATE.value, start_ms, end_ms, plugin_id)
    rates = aq.means_by_plugin(conn, MetricType.THROUGHPUT.value, start_ms, end_ms, plugin_id)
    events: dict[str, list[tuple[str, float]]] = {}
    for event in aq.lifecycle_events(conn, since, until, plugin_id):
        events.setdefault(event.plugin_id, []).append((event.event_type, event.timestamp))
    ids = set(distributions) | set(errors) | set(rates) | set(events)
    if plugin_id is not None:
        ids.add(plugin_id)
    before = aq.lifecycle_before(conn, sorted(ids), since)
    length = until - since
    plugins = []
    for pid in sorted(ids):
        down = downtime(LIFECYCLE_STATUS.get(before.get(pid, ""), "active") == "down", events.get(pid, ()),
                        since, until)
        error, rate = errors.get(pid), rates.get(pid)
        plugins.append(_figures(pid, distributions.get(pid), error.total / error.count if error else None,
                                rate.total / rate.count if rate else None, 100.0 * (1 - down / length), down))
    error_points = sum(e.count for e in errors.values())
    overall = _figures(
        None, _overall_distribution(distributions.values(), exact_limit),
        sum(e.total for e in errors.values()) / error_points if error_points else None,
        sum(r.total / r.count for r in rates.values()) if rates else None,
        sum(p.uptime_pct for p in plugins) / len(plugins) if plugins else 100.0,
        sum(p.downtime_s for p in plugins))
    return PerformanceStats(since, until, tuple(plugins), overall)

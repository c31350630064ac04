"""A metric's trend over a range: bucketed avg / min / max / p95, and its change against the previous equal range.

The buckets are ``queries.series``'s, so long ranges come from the minute
and hour rollups as the charts' do. The rollups keep count, sum, min and
max, not a distribution, so a bucket's p95 is ranked over its raw points and
is None where those were pruned (the raw count falls short of the bucket's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from pmon.models import MetricType
from pmon.store import analysis_queries as aq
from pmon.store import queries
from pmon.store.metric_queries import percentile

SUMMARY_POINTS: Final = 24
"""Buckets each range is read in for a summary row: enough that long ranges are read from the rollups."""


@dataclass(frozen=True, slots=True)
class TrendBucket:
    """One bucket: [start, start + width) of the trend's range."""

    start: float
    count: int
    avg: float
    min: float
    max: float
    p95: float | None
    """Nearest-rank p95 of the bucket's raw points; None where they were pruned (only rollups remain)."""


@dataclass(frozen=True, slots=True)
class TrendSummary:
    """A metric over [since, until) against the equal range just before it."""

    plugin_id: str
    metric: str
    since: float
    until: float
    count: int
    avg: float | None
    min: float | None
    max: float | None
    previous_count: int
    previous_avg: float | None
    """Mean over [since - (until - since), since)."""
    change: float | None
    """``avg - previous_avg``; None when either range is empty."""
    change_pct: float | None
    """``change`` as a percentage of ``|previous_avg|``; None also when ``previous_avg`` is 0."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Trend:
    """A metric's buckets over the range and its summary."""

    summary: TrendSummary
    width_s: float
    """Width of every bucket (the last one may be cut short by ``until``)."""
    buckets: tuple[TrendBucket, ...]
    """Oldest first; empty buckets left out."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {"summary": self.summary.to_dict(), "width_s": self.width_s,
                "buckets": [asdict(bucket) for bucket in self.buckets]}


def _aggregate(points: Sequence[queries.SeriesPoint]) -> tuple[int, float | None, float | None, float | None]:
    count = sum(p.count for p in points)
    if not count:
        return 0, None, None, None
    return (count, sum(p.avg * p.count for p in points) / count, min(p.min for p in points),
            max(p.max for p in points))


def _summary(conn: sqlite3.Connection, plugin_id: str, metric: str, since: float, until: float, points: int,
             current: Sequence[queries.SeriesPoint]) -> TrendSummary:
    previous = queries.series(conn, plugin_id, metric, 2 * since - until, since, points)
    count, avg, low, high = _aggregate(current)
    previous_count, previous_avg, _, _ = _aggregate(previous)
    change = change_pct = None
    if avg is not None and previous_avg is not None:
        change = avg - previous_avg
        change_pct = change / abs(previous_avg) * 100 if previous_avg else None
    return TrendSummary(plugin_id, metric, since, until, count, avg, low, high, previous_count, previous_avg,
                        change, change_pct)


def _check_range(since: float, until: float) -> None:
    if until <= since:
        raise ValueError(f"until ({until}) must be after since ({since})")


def trend(conn: sqlite3.Connection, plugin_id: str, metric: MetricType | str, since: float, until: float,
          points: int = 60) -> Trend:
    """``metric`` of ``plugin_id`` over [since, until) in ``points`` buckets, with its change against the range before."""
    _check_range(since, until)
    metric = str(metric)
    current = queries.series(conn, plugin_id, metric, since, until, points)
    start, end = int(since * 1000), int(until * 1000)
    width = max(1, -(-(end - start) // points))  # the same edges as queries.series
    buckets = []
    for point in current:
        low = round(point.timestamp * 1000)
        # Half a millisecond in: percentile() truncates to whole ms, and low / 1000 * 1000 may fall just short.
        ranked = percentile(conn, plugin_id, metric, (low + 0.5) / 1000, (min(end, low + width) + 0.5) / 1000, 0.95)
        p95 = ranked.value if ranked is not None and ranked.count == point.count else None
        buckets.append(TrendBucket(point.timestamp, point.count, point.avg, point.min, point.max, p95))
    return Trend(_summary(conn, plugin_id, metric, since, until, points, current), width / 1000, tuple(buckets))


def trends(conn: sqlite3.Connection, since: float, until: float, plugin_id: str | None = None) -> list[TrendSummary]:
    """A summary row for every plugin x metric with points in the range or the one before it."""
    _check_range(since, until)
    found = []
    for pid, metric in aq.all_series(conn, plugin_id):
        current = queries.series(conn, pid, metric, since, until, SUMMARY_POINTS)
        summary = _summary(conn, pid, metric, since, until, SUMMARY_POINTS, current)
        if summary.count or summary.previous_count:
            found.append(summary)
    return found

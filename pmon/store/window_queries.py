"""Per-series aggregates over a time window: what the daemon's periodic snapshots are made of."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowAggregate:
    """One plugin's metric over a window: how many points, their mean and sum, and the newest value."""

    plugin_id: str
    metric_type: str
    count: int
    avg: float
    total: float
    last: float


def window_aggregates(conn: sqlite3.Connection, since: float, until: float) -> list[WindowAggregate]:
    """Every series with points in [since, until), one statement off the covering index.

    SQLite gives the bare ``value`` column from the row that holds ``max(ts_ms)``,
    so the newest value comes with the aggregate, no second query.
    """
    rows = conn.execute(
        "SELECT s.plugin_id, s.metric_type, count(*), avg(p.value), sum(p.value), max(p.ts_ms), p.value "
        "FROM metric_series s JOIN metric_points p ON p.series_id = s.id AND p.ts_ms >= ? AND p.ts_ms < ? "
        "GROUP BY s.id ORDER BY s.plugin_id, s.metric_type",
        (int(since * 1000), int(until * 1000)))
    return [WindowAggregate(plugin, metric, count, avg, total, last)
            for plugin, metric, count, avg, total, _, last in rows]

"""Read queries for one plugin's screen: its series on a fixed time grid, its values, its counts in a window.

Each is an index seek or a range scan of one plugin's rows inside the shown
time window, so opening a plugin costs the same on a small store and on a
10 M-row one: ``metric_points`` is read through its covering index
(series, time, value), logs and events through their (plugin, level/severity,
id) indexes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from pmon.store.queries import LatestValue, PluginSummary


@dataclass(frozen=True, slots=True)
class MetricBucket:
    """One cell of a chart: the points whose ``ts_ms // width_ms == index``, aggregated."""

    index: int
    avg: float
    min: float
    max: float
    count: int
    first: float
    """Epoch seconds of the bucket's first point."""
    last: float
    """Epoch seconds of the bucket's last point."""


def series_ids(conn: sqlite3.Connection, plugin_id: str) -> dict[str, int]:
    """The plugin's series ids by metric type (the key into ``metric_points``)."""
    return {metric: sid for sid, metric in conn.execute(
        "SELECT id, metric_type FROM metric_series WHERE plugin_id = ?", (plugin_id,))}


def plugin_summary(conn: sqlite3.Connection, plugin_id: str, ids: dict[str, int]) -> PluginSummary | None:
    """One plugin with the latest value of each of its series (one index seek per series), or None."""
    row = conn.execute("SELECT first_seen, last_seen, status FROM plugins WHERE id = ?", (plugin_id,)).fetchone()
    if row is None:
        return None
    latest: dict[str, LatestValue] = {}
    for metric, sid in ids.items():
        point = conn.execute("SELECT ts_ms, value FROM metric_points WHERE series_id = ? ORDER BY ts_ms DESC LIMIT 1",
                             (sid,)).fetchone()
        if point is not None:
            latest[metric] = LatestValue(point[1], point[0] / 1000)
    return PluginSummary(plugin_id, row[0], row[1], row[2], latest)


def buckets(conn: sqlite3.Connection, series_id: int, width_ms: int, first: int, last: int) -> list[MetricBucket]:
    """Buckets ``first``..``last`` (inclusive) of one series on the grid ``ts_ms // width_ms``; empty ones omitted.

    The grid is anchored at the epoch, not at the window's start, so a bucket
    read once keeps its meaning and a refresh only re-reads the newest ones.
    """
    if width_ms < 1:
        raise ValueError(f"width_ms: must be at least 1, got {width_ms}")
    return [
        MetricBucket(index, avg, low, high, count, first_ms / 1000, last_ms / 1000)
        for index, avg, low, high, count, first_ms, last_ms in conn.execute(
            "SELECT ts_ms / ?1 AS bucket, avg(value), min(value), max(value), count(*), min(ts_ms), max(ts_ms) "
            "FROM metric_points WHERE series_id = ?2 AND ts_ms >= ?3 AND ts_ms < ?4 GROUP BY bucket ORDER BY bucket",
            (width_ms, series_id, first * width_ms, (last + 1) * width_ms),
        )
    ]


def values_between(conn: sqlite3.Connection, series_id: int, since: float, until: float,
                   limit: int = 100_000) -> list[float]:
    """Up to ``limit`` values of one series with ``since <= time < until`` (read from the index alone)."""
    rows = conn.execute(
        "SELECT value FROM metric_points WHERE series_id = ? AND ts_ms >= ? AND ts_ms < ? LIMIT ?",
        (series_id, int(since * 1000), int(until * 1000), limit),
    ).fetchall()
    return [value for (value,) in rows]


def _count_by_rank(conn: sqlite3.Connection, table: str, rank_column: str, plugin_id: str, ranks: Iterable[str],
                   since: float, until: float) -> int:
    """One count per level/severity, each walking the (plugin, rank, id) index: the cost is the plugin's
    rows of those ranks, however many other plugins and quieter rows the store holds."""
    return sum(conn.execute(
        f"SELECT count(*) FROM {table} INDEXED BY {table}_plugin_{rank_column} "
        f"WHERE plugin_id = ? AND {rank_column} = ? AND timestamp >= ? AND timestamp < ?",
        (plugin_id, rank, since, until)).fetchone()[0] for rank in ranks)


def count_logs_between(conn: sqlite3.Connection, plugin_id: str, levels: Iterable[str], since: float,
                       until: float) -> int:
    """The plugin's logs at one of ``levels`` with ``since <= timestamp < until``."""
    return _count_by_rank(conn, "plugin_logs", "level", plugin_id, levels, since, until)


def count_events_between(conn: sqlite3.Connection, plugin_id: str, severities: Iterable[str], since: float,
                         until: float) -> int:
    """The plugin's events of one of ``severities`` with ``since <= timestamp < until``."""
    return _count_by_rank(conn, "plugin_events", "severity", plugin_id, severities, since, until)


def newest_snapshot_id(conn: sqlite3.Connection, plugin_id: str) -> int:
    """The plugin's highest snapshot id (0 when it has none): unchanged means its snapshots need no re-read."""
    row = conn.execute("SELECT max(id) FROM performance_snapshots WHERE plugin_id = ?", (plugin_id,)).fetchone()
    return row[0] or 0


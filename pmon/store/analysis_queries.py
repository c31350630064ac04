"""Read queries the analyses in ``pmon.analysis`` need: range reads of points, lifecycle events, error logs, snapshots.

Points are read through the covering index (series_id, ts_ms, value), so a
range costs its own points, never the table. Time arguments are epoch
milliseconds for points (what ``metric_points`` stores) and epoch seconds
for logs, events and snapshots (what those tables store).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from pmon.models import LIFECYCLE_STATUS, PerformanceSnapshot
from pmon.store.queries import SNAPSHOT_SELECT, snapshot_from_row

STARTS = ("started", "restarted")
"""Lifecycle event types after which a plugin is up."""


@dataclass(frozen=True, slots=True)
class PointTotals:
    """How many points a range holds and their sum: an exact mean without reading the values."""

    count: int
    total: float


@dataclass(frozen=True, slots=True)
class LogBucketCounts:
    """A range's points counted in logarithmic buckets (see ``pmon.analysis.histogram``), plus their exact sum."""

    count: int
    total: float
    positive: dict[int, int]
    """Bucket key of ``value`` -> points, for values above ``min_value``."""
    negative: dict[int, int]
    """Bucket key of ``-value`` -> points, for values below ``-min_value``."""
    zero: int
    """Points with ``|value| <= min_value``."""


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One started / restarted / stopped / not_found event."""

    plugin_id: str
    event_type: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class ErrorLogRow:
    """An ERROR or CRITICAL log line, as error grouping reads it."""

    id: int
    plugin_id: str
    level: str
    message: str
    timestamp: float
    traceback: str | None


def database_file(conn: sqlite3.Connection) -> str | None:
    """The file behind ``conn``'s main database (None for an in-memory one): what extra readers open."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or None
    return None


def series_by_plugin(conn: sqlite3.Connection, metric_type: str, plugin_id: str | None = None) -> dict[str, int]:
    """Plugin id -> series id of its ``metric_type`` series."""
    if plugin_id is None:
        rows = conn.execute("SELECT plugin_id, id FROM metric_series WHERE metric_type = ?", (metric_type,))
    else:
        rows = conn.execute("SELECT plugin_id, id FROM metric_series WHERE metric_type = ? AND plugin_id = ?",
                            (metric_type, plugin_id))
    return dict(rows.fetchall())


def all_series(conn: sqlite3.Connection, plugin_id: str | None = None) -> list[tuple[str, str]]:
    """Every (plugin_id, metric_type) with a series, sorted."""
    if plugin_id is None:
        rows = conn.execute("SELECT plugin_id, metric_type FROM metric_series ORDER BY plugin_id, metric_type")
    else:
        rows = conn.execute("SELECT plugin_id, metric_type FROM metric_series WHERE plugin_id = ? "
                            "ORDER BY metric_type", (plugin_id,))
    return rows.fetchall()


def point_count(conn: sqlite3.Connection, series_id: int, start_ms: int, end_ms: int, at_most: int) -> int:
    """Points of one series with ``start_ms <= ts_ms < end_ms``, counting no further than ``at_most``.

    Enough to choose between sorting the values and bucketing them, for the
    cost of ``at_most`` index entries however long the range is.
    """
    return conn.execute("SELECT count(*) FROM (SELECT 1 FROM metric_points WHERE series_id = ? AND ts_ms >= ? "
                        "AND ts_ms < ? LIMIT ?)", (series_id, start_ms, end_ms, at_most)).fetchone()[0]


def point_totals(conn: sqlite3.Connection, series_id: int, start_ms: int, end_ms: int) -> PointTotals:
    """Count and sum of one series' points in [start_ms, end_ms)."""
    count, total = conn.execute(
        "SELECT count(*), total(value) FROM metric_points WHERE series_id = ? AND ts_ms >= ? AND ts_ms < ?",
        (series_id, start_ms, end_ms)).fetchone()
    return PointTotals(count, total)


def point_values(conn: sqlite3.Connection, series_id: int, start_ms: int, end_ms: int) -> list[float]:
    """One series' values in [start_ms, end_ms), in time order."""
    return [value for (value,) in conn.execute(
        "SELECT value FROM metric_points WHERE series_id = ? AND ts_ms >= ? AND ts_ms < ?",
        (series_id, start_ms, end_ms))]


def sorted_point_values(conn: sqlite3.Connection, series_id: int, start_ms: int, end_ms: int) -> list[float]:
    """One series' values in [start_ms, end_ms), smallest first, sorted by SQLite (the benchmark's naive way)."""
    return [value for (value,) in conn.execute(
        "SELECT value FROM metric_points WHERE series_id = ? AND ts_ms >= ? AND ts_ms < ? ORDER BY value",
        (series_id, start_ms, end_ms))]


def log_bucket_counts(conn: sqlite3.Connection, series_id: int, start_ms: int, end_ms: int,
                      inv_log_gamma: float, min_value: float) -> LogBucketCounts:
    """One series' points in [start_ms, end_ms) counted by ``ceil(ln|value| * inv_log_gamma)``.

    SQLite computes every key and joins them into one text (``GROUP BY`` on
    the key would sort every point: 2.6x slower); Python counts the keys. The
    statement runs without the GIL, so several ranges can be counted at
    once from several threads. Needs SQLite's math functions (3.35+, on in
    the standard builds); without them this raises ``sqlite3.OperationalError``.
    """
    count, total, keys = conn.execute(
        "SELECT count(*), total(value), group_concat(CASE "
        "WHEN value > ?5 THEN CAST(ceil(ln(value) * ?4) AS INTEGER) "
        "WHEN value < -?5 THEN 'n' || CAST(ceil(ln(-value) * ?4) AS INTEGER) "
        "ELSE 'z' END) "
        "FROM metric_points WHERE series_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
        (series_id, start_ms, end_ms, inv_log_gamma, min_value)).fetchone()
    positive: dict[int, int] = {}
    negative: dict[int, int] = {}
    zero = 0
    for key, n in Counter(keys.split(",") if keys else ()).items():
        if key == "z":
            zero = n
        elif key[0] == "n":
            negative[int(key[1:])] = n
        else:
            positive[int(key)] = n
    return LogBucketCounts(count, total, positive, negative, zero)


def means_by_plugin(conn: sqlite3.Connection, metric_type: str, start_ms: int, end_ms: int,
                    plugin_id: str | None = None) -> dict[str, PointTotals]:
    """Plugin id -> count and sum of its ``metric_type`` points in [start_ms, end_ms) (plugins with none left out)."""
    where, params = "s.metric_type = ?", [metric_type]
    if plugin_id is not None:
        where += " AND s.plugin_id = ?"
        params.append(plugin_id)
    rows = conn.execute(
        "SELECT s.plugin_id, count(*), total(p.value) FROM metric_series s "
        f"JOIN metric_points p ON p.series_id = s.id AND p.ts_ms >= ? AND p.ts_ms < ? WHERE {where} "
        "GROUP BY s.id", (start_ms, end_ms, *params))
    return {plugin: PointTotals(count, total) for plugin, count, total in rows}


def _lifecycle_marks() -> tuple[str, tuple[str, ...]]:
    types = tuple(LIFECYCLE_STATUS)
    return ", ".join("?" * len(types)), types


def lifecycle_events(conn: sqlite3.Connection, since: float, until: float,
                     plugin_id: str | None = None) -> list[LifecycleEvent]:
    """Lifecycle events with ``since <= timestamp < until``, oldest first (ties in the order recorded)."""
    marks, types = _lifecycle_marks()
    where, params = f"event_type IN ({marks}) AND timestamp >= ? AND timestamp < ?", [*types, since, until]
    if plugin_id is not None:
        where += " AND plugin_id = ?"
        params.append(plugin_id)
    rows = conn.execute(f"SELECT plugin_id, event_type, timestamp FROM plugin_events WHERE {where} "
                        "ORDER BY timestamp, id", params)
    return [LifecycleEvent(*row) for row in rows]


def lifecycle_before(conn: sqlite3.Connection, plugin_ids: Iterable[str], at: float) -> dict[str, str]:
    """Plugin id -> type of its last lifecycle event before ``at`` (plugins with none left out)."""
    marks, types = _lifecycle_marks()
    found = {}
    for plugin_id in plugin_ids:
        row = conn.execute(f"SELECT event_type FROM plugin_events WHERE plugin_id = ? AND event_type IN ({marks}) "
                           "AND timestamp < ? ORDER BY timestamp DESC, id DESC LIMIT 1",
                           (plugin_id, *types, at)).fetchone()
        if row is not None:
            found[plugin_id] = row[0]
    return found


def last_start(conn: sqlite3.Connection, plugin_id: str) -> float | None:
    """When the plugin was last started or restarted (epoch seconds), or None."""
    row = conn.execute("SELECT max(timestamp) FROM plugin_events WHERE plugin_id = ? AND event_type IN (?, ?)",
                       (plugin_id, *STARTS)).fetchone()
    return None if row[0] is None else float(row[0])


def snapshot_before(conn: sqlite3.Connection, plugin_id: str, at: float) -> PerformanceSnapshot | None:
    """The plugin's newest snapshot taken before ``at``."""
    row = conn.execute(f"{SNAPSHOT_SELECT} WHERE plugin_id = ? AND timestamp < ? ORDER BY timestamp DESC, id DESC "
                       "LIMIT 1", (plugin_id, at)).fetchone()
    return snapshot_from_row(row) if row else None


def oldest_snapshot_since(conn: sqlite3.Connection, plugin_id: str, at: float) -> PerformanceSnapshot | None:
    """The plugin's oldest snapshot taken at or after ``at``."""
    row = conn.execute(f"{SNAPSHOT_SELECT} WHERE plugin_id = ? AND timestamp >= ? ORDER BY timestamp, id LIMIT 1",
                       (plugin_id, at)).fetchone()
    return snapshot_from_row(row) if row else None


def newest_snapshot(conn: sqlite3.Connection, plugin_id: str) -> PerformanceSnapshot | None:
    """The plugin's most recent snapshot by its timestamp (backfilled ones can have lower ids)."""
    row = conn.execute(f"{SNAPSHOT_SELECT} WHERE plugin_id = ? ORDER BY timestamp DESC, id DESC LIMIT 1",
                       (plugin_id,)).fetchone()
    return snapshot_from_row(row) if row else None


def error_logs(conn: sqlite3.Connection, since: float, until: float, plugin_id: str | None = None,
               levels: Collection[str] = ("error", "critical")) -> list[ErrorLogRow]:
    """Logs at one of ``levels`` with ``since <= timestamp < until``, in id order.

    One statement per level through the (plugin, level, id) or (level, id)
    index, so the quieter levels (usually most of the table) are never read.
    """
    found: list[ErrorLogRow] = []
    for level in levels:
        if plugin_id is None:
            rows = conn.execute("SELECT id, plugin_id, level, message, timestamp, traceback FROM plugin_logs "
                                "WHERE level = ? AND timestamp >= ? AND timestamp < ?", (level, since, until))
        else:
            rows = conn.execute("SELECT id, plugin_id, level, message, timestamp, traceback FROM plugin_logs "
                                "WHERE plugin_id = ? AND level = ? AND timestamp >= ? AND timestamp < ?",
                                (plugin_id, level, since, until))
        found.extend(ErrorLogRow(*row) for row in rows)
    found.sort(key=lambda row: row.id)
    return found

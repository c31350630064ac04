"""Read queries only the console needs: sparklines, recent percentiles, per-plugin last event, totals.

Each is an index seek or a short range scan, so an overview refresh costs the
same however large the store grows. The ``*_for`` queries answer for every
plugin in one statement (a ``UNION ALL`` of the per-plugin seeks): each
statement releases and retakes the GIL, and while the UI thread is busy
drawing, retaking it can wait milliseconds, so hundreds of small statements
per refresh turned 15 ms of reading into 250 ms.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from pmon.models import LogLevel, MetricType, PluginEvent, Severity
from pmon.store.queries import EVENT_SELECT, event_from_row, events

_MAX_TERMS = 400
"""SELECTs per UNION ALL statement (SQLite allows 500)."""


def count_logs_since(conn: sqlite3.Connection, since: float, min_level: LogLevel | str = LogLevel.ERROR) -> int:
    """Logs at or above ``min_level`` with a timestamp at or after ``since``.

    ``+level`` keeps SQLite on the time index: a minute of logs is small, every
    error ever recorded is not.
    """
    floor = LogLevel(str(min_level).lower()).rank
    levels = [lvl.value for lvl in LogLevel if lvl.rank >= floor]
    marks = ", ".join("?" * len(levels))
    return conn.execute(f"SELECT count(*) FROM plugin_logs WHERE timestamp >= ? AND +level IN ({marks})",
                        (since, *levels)).fetchone()[0]


def count_events_since(conn: sqlite3.Connection, since: float, min_severity: Severity | str = Severity.HIGH) -> int:
    """Events at or above ``min_severity`` with a timestamp at or after ``since``."""
    floor = Severity(str(min_severity).lower()).rank
    severities = [sev.value for sev in Severity if sev.rank >= floor]
    marks = ", ".join("?" * len(severities))
    return conn.execute(f"SELECT count(*) FROM plugin_events WHERE timestamp >= ? AND +severity IN ({marks})",
                        (since, *severities)).fetchone()[0]


def newest_log_id(conn: sqlite3.Connection) -> int:
    """The highest log id (0 when empty): a tail can start after it even when no log matches its filter."""
    return conn.execute("SELECT coalesce(max(id), 0) FROM plugin_logs").fetchone()[0]


def _chunks(items: Sequence, size: int = _MAX_TERMS) -> list[Sequence]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def recent_values_for(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]],
                      limit: int = 60) -> dict[tuple[str, str], list[float]]:
    """The last ``limit`` values of each (plugin, metric type) pair, oldest first; pairs with no series are left out."""
    ids = _series_ids(conn, keys)
    found: dict[tuple[str, str], list[float]] = {}
    by_id = {series_id: key for key, series_id in ids.items()}
    # One text row per series (values newest first, exact: %!.17g round-trips a double), not a row per
    # value: making 6,000 row tuples was most of a live refresh's reading time.
    for chunk in _chunks(list(by_id)):
        sql = " UNION ALL ".join(
            "SELECT ?, (SELECT group_concat(printf('%!.17g', value), ' ') FROM (SELECT value FROM metric_points "
            "WHERE series_id = ? ORDER BY ts_ms DESC LIMIT ?))" for _ in chunk)
        params = [p for series_id in chunk for p in (series_id, series_id, limit)]
        for series_id, text in conn.execute(sql, params):
            if text:
                values = [float(v) for v in text.split(" ")]
                values.reverse()
                found[by_id[series_id]] = values
    return found


def percentile_since_for(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]], since: float,
                         fraction: float) -> dict[tuple[str, str], float]:
    """The nearest-rank percentile of each pair's values at or after ``since``, ranked inside SQLite.

    Why not ``values_since_for`` and a sort in Python: five minutes of a
    metric recorded twice a second is 600 rows a plugin, 30,000 rows a
    refresh for 50 plugins, most of a tick's CPU spent making Python floats.
    """
    ids = _series_ids(conn, keys)
    by_id = {series_id: key for key, series_id in ids.items()}
    per_mille = round(fraction * 1000)
    found: dict[tuple[str, str], float] = {}
    for chunk in _chunks(list(by_id)):
        sql = " UNION ALL ".join(
            f"SELECT * FROM (SELECT series_id, value FROM metric_points WHERE series_id = ?{3 * i + 1} "
            f"AND ts_ms >= ?{3 * i + 2} ORDER BY value LIMIT 1 OFFSET (SELECT max(0, (count(*) * ?{3 * i + 3} + 999) "
            f"/ 1000 - 1) FROM metric_points WHERE series_id = ?{3 * i + 1} AND ts_ms >= ?{3 * i + 2}))"
            for i in range(len(chunk)))
        params = [p for series_id in chunk for p in (series_id, int(since * 1000), per_mille)]
        for series_id, value in conn.execute(sql, params):
            found[by_id[series_id]] = value
    return found


def last_events_for(conn: sqlite3.Connection, plugin_ids: Sequence[str]) -> dict[str, PluginEvent]:
    """Each plugin's most recent event (by insertion order); plugins without events are left out."""
    found: dict[str, PluginEvent] = {}
    for chunk in _chunks(list(plugin_ids)):
        sql = " UNION ALL ".join(f"SELECT * FROM ({EVENT_SELECT} WHERE plugin_id = ? ORDER BY id DESC LIMIT 1)"
                                 for _ in chunk)
        for row in conn.execute(sql, list(chunk)):
            event = event_from_row(row)
            found[event.plugin_id] = event
    return found


def _series_ids(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    wanted = {(plugin, str(metric)) for plugin, metric in keys}
    return {(plugin, metric): series_id
            for series_id, plugin, metric in conn.execute("SELECT id, plugin_id, metric_type FROM metric_series")
            if (plugin, metric) in wanted}

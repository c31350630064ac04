"""Read queries only the console needs: sparklines, recent percentiles, per-plugin last event, totals.

Each is an index seek or a short range scan, so one overview refresh costs a
few queries per plugin however large the store grows.
"""

from __future__ import annotations

import sqlite3

from pmon.models import LogLevel, MetricType, PluginEvent, Severity
from pmon.store.queries import events


def recent_values(conn: sqlite3.Connection, plugin_id: str, metric_type: MetricType | str,
                  limit: int = 60) -> list[float]:
    """The last ``limit`` values of one metric, oldest first (for a sparkline)."""
    rows = conn.execute(
        "SELECT p.value FROM metric_points p WHERE p.series_id = "
        "(SELECT id FROM metric_series WHERE plugin_id = ? AND metric_type = ?) ORDER BY p.ts_ms DESC LIMIT ?",
        (plugin_id, str(metric_type), limit),
    ).fetchall()
    return [value for (value,) in reversed(rows)]


def values_since(conn: sqlite3.Connection, plugin_id: str, metric_type: MetricType | str, since: float,
                 limit: int = 100_000) -> list[float]:
    """Every value of one metric at or after ``since`` (epoch seconds), for percentiles over a short window."""
    rows = conn.execute(
        "SELECT p.value FROM metric_points p WHERE p.series_id = "
        "(SELECT id FROM metric_series WHERE plugin_id = ? AND metric_type = ?) AND p.ts_ms >= ? LIMIT ?",
        (plugin_id, str(metric_type), int(since * 1000), limit),
    ).fetchall()
    return [value for (value,) in rows]


def last_event(conn: sqlite3.Connection, plugin_id: str) -> PluginEvent | None:
    """The plugin's most recent event (by insertion order), or None."""
    found = events(conn, plugin_id=plugin_id, limit=1)
    return found[0] if found else None


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

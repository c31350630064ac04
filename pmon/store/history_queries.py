"""Stored history in time order, for replaying it through the detectors (``pmon analytics detect``).

Points come series by series off the (series, time, value) index and in
batches, so a backtest over months holds one batch per series in memory, not
the months.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pmon.models import LIFECYCLE_STATUS

BATCH = 5000
"""Points fetched at a time from each series."""


@dataclass(frozen=True, slots=True)
class HistorySeries:
    """A stored series: its id in the store, whose it is and which metric."""

    series_id: int
    plugin_id: str
    metric_type: str


@dataclass(frozen=True, slots=True)
class LifecycleRecord:
    """A stored lifecycle event (started, restarted, stopped, not_found)."""

    plugin_id: str
    event_type: str
    timestamp: float
    data: dict[str, Any] | None


def _ms(seconds: float | None, default: int) -> int:
    return default if seconds is None else int(round(seconds * 1000))


def history_series(conn: sqlite3.Connection, plugin_id: str | None = None,
                   metrics: tuple[str, ...] | None = None) -> list[HistorySeries]:
    """The series of one plugin (None: every plugin), optionally only these metrics."""
    sql = "SELECT id, plugin_id, metric_type FROM metric_series"
    where, params = [], []
    if plugin_id is not None:
        where.append("plugin_id = ?")
        params.append(plugin_id)
    if metrics is not None:
        where.append(f"metric_type IN ({', '.join('?' * len(metrics))})")
        params.extend(metrics)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [HistorySeries(*row) for row in conn.execute(sql + " ORDER BY plugin_id, metric_type", params)]


def series_points(conn: sqlite3.Connection, series_id: int, since: float | None = None,
                  until: float | None = None) -> Iterator[tuple[float, float]]:
    """A series' points in [since, until) as (epoch seconds, value), oldest first, fetched in batches."""
    low, high = _ms(since, -(2**62)), _ms(until, 2**62)
    while True:
        rows = conn.execute("SELECT ts_ms, value FROM metric_points WHERE series_id = ? AND ts_ms >= ? AND ts_ms < ? "
                            "ORDER BY ts_ms, id LIMIT ?", (series_id, low, high, BATCH)).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        if len(rows) == BATCH:
            # Resume after the last whole millisecond: points sharing it are re-read together.
            whole = [r for r in rows if r[0] < last]
            if whole:
                rows = whole
                last = rows[-1][0]
            else:  # one millisecond holds a whole batch: take it all
                rows = conn.execute("SELECT ts_ms, value FROM metric_points WHERE series_id = ? AND ts_ms = ? "
                                    "ORDER BY id", (series_id, last)).fetchall()
        for ts_ms, value in rows:
            yield ts_ms / 1000.0, value
        low = last + 1


def lifecycle_history(conn: sqlite3.Connection, plugin_id: str | None = None, since: float | None = None,
                      until: float | None = None) -> list[LifecycleRecord]:
    """Lifecycle events in [since, until), oldest first (ties in the order they were recorded)."""
    types = tuple(LIFECYCLE_STATUS)
    sql = (f"SELECT plugin_id, event_type, timestamp, data FROM plugin_events "
           f"WHERE event_type IN ({', '.join('?' * len(types))}) AND timestamp >= ? AND timestamp < ?")
    params: list[Any] = [*types, -1e18 if since is None else since, 1e18 if until is None else until]
    if plugin_id is not None:
        sql += " AND plugin_id = ?"
        params.append(plugin_id)
    found = []
    for plugin, event_type, timestamp, data in conn.execute(sql + " ORDER BY timestamp, id", params):
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        found.append(LifecycleRecord(plugin, event_type, float(timestamp), parsed if isinstance(parsed, dict) else None))
    return found

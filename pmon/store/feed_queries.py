"""What was recorded since the last look: new metric points and new lifecycle events, by id.

The analysis runner (daemon or in-process) reads these each pass and feeds
them to the detectors and alert rules, so analysis sees exactly what was
stored, in the order it was stored, whoever recorded it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from pmon.models import LIFECYCLE_STATUS


@dataclass(frozen=True, slots=True)
class NewPoint:
    """One stored metric point."""

    id: int
    plugin_id: str
    metric_type: str
    timestamp: float
    value: float


@dataclass(frozen=True, slots=True)
class NewLifecycleEvent:
    """One stored lifecycle event (started / stopped / restarted / not_found)."""

    id: int
    plugin_id: str
    event_type: str
    timestamp: float
    data: str | None

    def data_dict(self) -> dict[str, Any] | None:
        """The event's data as a dict (None when absent or not a JSON object)."""
        try:
            value = json.loads(self.data) if self.data else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def down_plugins(conn: sqlite3.Connection) -> set[str]:
    """Plugins whose stored status is down (their alerts are muted)."""
    return {plugin for (plugin,) in conn.execute("SELECT id FROM plugins WHERE status = 'down'")}


def last_point_id(conn: sqlite3.Connection) -> int:
    """The newest point's id (0 for none): where a runner that starts now begins."""
    return conn.execute("SELECT coalesce(max(id), 0) FROM metric_points").fetchone()[0]


def last_event_id(conn: sqlite3.Connection) -> int:
    """The newest event's id (0 for none)."""
    return conn.execute("SELECT coalesce(max(id), 0) FROM plugin_events").fetchone()[0]


def points_after(conn: sqlite3.Connection, after_id: int, limit: int = 50_000) -> list[NewPoint]:
    """Points with id > after_id, oldest first (a rowid range: cheap however large the table)."""
    return [NewPoint(*row) for row in conn.execute(
        "SELECT p.id, s.plugin_id, s.metric_type, p.ts_ms / 1000.0, p.value FROM metric_points p "
        "JOIN metric_series s ON s.id = p.series_id WHERE p.id > ? ORDER BY p.id LIMIT ?", (after_id, limit))]


def lifecycle_events_after(conn: sqlite3.Connection, after_id: int, limit: int = 10_000) -> list[NewLifecycleEvent]:
    """Lifecycle events with id > after_id, oldest first."""
    types = tuple(LIFECYCLE_STATUS)
    return [NewLifecycleEvent(*row) for row in conn.execute(
        f"SELECT id, plugin_id, event_type, timestamp, data FROM plugin_events WHERE id > ? "
        f"AND event_type IN ({', '.join('?' * len(types))}) ORDER BY id LIMIT ?", (after_id, *types, limit))]


POINT_KEY, EVENT_KEY = "analysis_point_id", "analysis_event_id"


def load_cursor(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """Where the last analysis pass stopped (point id, event id), or None if no pass ever ran here."""
    try:
        found = dict(conn.execute("SELECT key, value FROM pmon_state WHERE key IN (?, ?)", (POINT_KEY, EVENT_KEY)))
    except sqlite3.OperationalError:  # an old file without pmon_state
        return None
    if POINT_KEY not in found or EVENT_KEY not in found:
        return None
    return int(found[POINT_KEY]), int(found[EVENT_KEY])


def save_cursor(conn: sqlite3.Connection, point_id: int, event_id: int) -> None:
    """Remember how far analysis got, so a restarted analyser neither repeats nor skips anything."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT INTO pmon_state (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         [(POINT_KEY, point_id), (EVENT_KEY, event_id)])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def point_time(conn: sqlite3.Connection, point_id: int) -> float | None:
    """The timestamp of a point by id (None if it is gone)."""
    row = conn.execute("SELECT ts_ms FROM metric_points WHERE id = ?", (point_id,)).fetchone()
    return None if row is None else row[0] / 1000


def event_time(conn: sqlite3.Connection, event_id: int) -> float | None:
    """The timestamp of an event by id (None if it is gone)."""
    row = conn.execute("SELECT timestamp FROM plugin_events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else row[0]


def last_lifecycle_before(conn: sqlite3.Connection, before: float) -> list[NewLifecycleEvent]:
    """Each plugin's last lifecycle event before a time: a plugin down for days is still known to be down."""
    types = tuple(LIFECYCLE_STATUS)
    marks = ", ".join("?" * len(types))
    return [NewLifecycleEvent(*row) for row in conn.execute(
        f"SELECT id, plugin_id, event_type, timestamp, data FROM plugin_events WHERE id IN ("
        f"SELECT max(id) FROM plugin_events WHERE event_type IN ({marks}) AND timestamp < ? GROUP BY plugin_id) "
        "ORDER BY timestamp", (*types, before))]

"""What the live stream reads: the newest ids ("now"), then every row written after them, by id, in bounded chunks.

Ids grow in commit order whoever writes (the daemon, a plugin in another
process, a batch POST), so ``id > cursor`` sees each committed row exactly
once, and a rowid range costs the same however large the table is.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from pmon.models import PluginEvent, PluginLog
from pmon.store import queries
from pmon.store.api_queries import EVENT_TEXT, LOG_TEXT, METRIC_TEXT, MetricRow, fitting
from pmon.store.queries import stored_json as metadata_value
from pmon.store.console_queries import newest_log_id
from pmon.store.feed_queries import last_event_id, last_point_id

KINDS = ("logs", "events", "metrics")
"""What the stream can follow, in the order a read returns them."""


@dataclass(frozen=True, slots=True)
class PluginPoint:
    """A stored metric point and the plugin it belongs to."""

    plugin_id: str
    point: MetricRow


@dataclass(slots=True)
class NewRows:
    """One read's worth of new rows per kind, oldest first; a kind not followed stays empty."""

    logs: list[PluginLog] = field(default_factory=list)
    events: list[PluginEvent] = field(default_factory=list)
    metrics: list[PluginPoint] = field(default_factory=list)
    more: bool = False
    """Some kind filled its chunk (by rows or by ``PAGE_TEXT_BYTES``): more may be waiting already."""


def newest_ids(conn: sqlite3.Connection) -> dict[str, int]:
    """The highest id of each kind (0 when empty): a stream that starts now follows from here."""
    return {"logs": newest_log_id(conn), "events": last_event_id(conn), "metrics": last_point_id(conn)}


def points_with_metadata_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[PluginPoint]:
    """Metric points with id > after_id, oldest first, with their metadata (the stream shows it, analysis does not)."""
    rows = conn.execute(
        "SELECT p.id, s.plugin_id, s.metric_type, p.value, p.ts_ms, p.metadata FROM metric_points p "
        "JOIN metric_series s ON s.id = p.series_id WHERE p.id > ? ORDER BY p.id LIMIT ?", (after_id, limit))
    return [PluginPoint(plugin_id, MetricRow(rid, metric, value, ts_ms / 1000, metadata_value(meta)))
            for rid, plugin_id, metric, value, ts_ms, meta in rows]


def rows_after(conn: sqlite3.Connection, cursors: dict[str, int | None], limit: int) -> NewRows:
    """Up to ``limit`` rows of each kind newer than its cursor, and at most ``PAGE_TEXT_BYTES`` of their text.

    Why the text bound: a plugin that writes a thousand logs with a megabyte
    of context each would otherwise be read, decoded and encoded in one go,
    gigabytes for one poll.
    """
    found = NewRows()
    logs_after, events_after, points_after = (cursors.get(kind) for kind in KINDS)
    if logs_after is not None:
        count = _chunk(conn, "plugin_logs", LOG_TEXT, logs_after, limit, found)
        found.logs = queries.logs(conn, after_id=logs_after, newest_first=False, limit=count)
    if events_after is not None:
        count = _chunk(conn, "plugin_events", EVENT_TEXT, events_after, limit, found)
        found.events = queries.events(conn, after_id=events_after, newest_first=False, limit=count)
    if points_after is not None:
        count = _chunk(conn, "metric_points", METRIC_TEXT, points_after, limit, found)
        found.metrics = points_with_metadata_after(conn, points_after, count)
    return found


def _chunk(conn: sqlite3.Connection, table: str, size_sql: str, after_id: int, limit: int, found: NewRows) -> int:
    """How many rows after ``after_id`` to read: ``limit``, or fewer to stay within the text bound."""
    sizes = [size for (size,) in conn.execute(f"SELECT {size_sql} FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                                               (after_id, limit))]
    count = fitting(sizes)
    if count == limit or count < len(sizes):
        found.more = True
    return count

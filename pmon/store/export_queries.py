"""The reads behind `pmon export`: every row of one table, in id order, streamed.

Each table is read with one SELECT on a read-only connection and fetched
``batch`` rows at a time (``cursor.fetchmany``), so memory stays flat however
many rows the table holds; the single statement also reads one consistent
snapshot of the file while writers carry on (WAL).

Rows come out as tuples in the order of ``EXPORT_TABLES[name].columns``.
``timestamp`` is Unix epoch seconds (UTC), as in the seed tables and the
``plugin_metrics`` view. Filters: ``since <= timestamp < until`` and
``plugin_id = plugin``; any of them may be None (no bound).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

FETCH_BATCH = 5000


@dataclass(frozen=True)
class ExportTable:
    """One exportable table: its public columns, which of them hold JSON text, and how it is read."""

    name: str
    source: str
    columns: tuple[str, ...]
    json_columns: tuple[str, ...]
    select: str
    id_column: str
    time_column: str
    plugin_column: str
    time_scale: float = 1.0  # the stored time column is timestamp * time_scale


EXPORT_TABLES: dict[str, ExportTable] = {
    "metrics": ExportTable(
        name="metrics", source="plugin_metrics",
        columns=("id", "plugin_id", "metric_type", "value", "timestamp", "metadata"),
        json_columns=("metadata",),
        # The plugin_metrics view, spelled out so the time filter compares the stored integer ms.
        select=("SELECT p.id, s.plugin_id, s.metric_type, p.value, p.ts_ms / 1000.0, p.metadata "
                "FROM metric_points p JOIN metric_series s ON s.id = p.series_id"),
        id_column="p.id", time_column="p.ts_ms", plugin_column="s.plugin_id", time_scale=1000.0),
    "logs": ExportTable(
        name="logs", source="plugin_logs",
        columns=("id", "plugin_id", "level", "message", "timestamp", "context", "traceback"),
        json_columns=("context",),
        select="SELECT id, plugin_id, level, message, timestamp, context, traceback FROM plugin_logs",
        id_column="id", time_column="timestamp", plugin_column="plugin_id"),
    "events": ExportTable(
        name="events", source="plugin_events",
        columns=("id", "plugin_id", "event_type", "category", "severity", "timestamp", "description", "data"),
        json_columns=("data",),
        select=("SELECT id, plugin_id, event_type, category, severity, timestamp, description, data "
                "FROM plugin_events"),
        id_column="id", time_column="timestamp", plugin_column="plugin_id"),
    "snapshots": ExportTable(
        name="snapshots", source="performance_snapshots",
        columns=("id", "plugin_id", "timestamp", "cpu_usage", "memory_usage", "response_time", "error_rate",
                 "request_count", "throughput", "disk_io", "network_io", "custom_metrics"),
        json_columns=("disk_io", "network_io", "custom_metrics"),
        select=("SELECT id, plugin_id, timestamp, cpu_usage, memory_usage, response_time, error_rate, "
                "request_count, throughput, disk_io, network_io, custom_metrics FROM performance_snapshots"),
        id_column="id", time_column="timestamp", plugin_column="plugin_id"),
}


def export_sql(table: str, *, since: float | None = None, until: float | None = None,
               plugin_id: str | None = None) -> tuple[str, list[Any]]:
    """The SELECT (and its parameters) that reads ``table`` in id order with the filters applied."""
    try:
        spec = EXPORT_TABLES[table]
    except KeyError:
        raise ValueError(f"unknown table {table!r} (tables: {', '.join(EXPORT_TABLES)})") from None
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append(f"{spec.time_column} >= ?")
        params.append(since * spec.time_scale)
    if until is not None:
        where.append(f"{spec.time_column} < ?")
        params.append(until * spec.time_scale)
    if plugin_id is not None:
        where.append(f"{spec.plugin_column} = ?")
        params.append(plugin_id)
    sql = spec.select
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {spec.id_column}"
    return sql, params


def iter_export_rows(conn: sqlite3.Connection, table: str, *, since: float | None = None,
                     until: float | None = None, plugin_id: str | None = None,
                     batch: int = FETCH_BATCH) -> Iterator[tuple[Any, ...]]:
    """Every row of ``table`` matching the filters, in id order, fetched ``batch`` at a time."""
    sql, params = export_sql(table, since=since, until=until, plugin_id=plugin_id)
    cursor = conn.execute(sql, params)
    try:
        while True:
            chunk = cursor.fetchmany(batch)
            if not chunk:
                return
            yield from chunk
    finally:
        try:
            cursor.close()
        except sqlite3.ProgrammingError:  # the connection was closed first
            pass

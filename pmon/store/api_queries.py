"""Pages for the HTTP API: newest first, resumed from an opaque cursor, each an index range scan.

Metrics page by (time, id) per series and merge, so a rare plugin's page
costs a seek per series rather than a walk over every point in the store.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from pmon.models import PerformanceSnapshot
from pmon.store.queries import SNAPSHOT_SELECT, snapshot_from_row


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One stored metric point."""

    id: int
    metric_type: str
    value: float
    timestamp: float
    metadata: Any


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def plugin_exists(conn: sqlite3.Connection, plugin_id: str) -> bool:
    """Whether the store has ever heard of ``plugin_id``."""
    return conn.execute("SELECT 1 FROM plugins WHERE id = ?", (plugin_id,)).fetchone() is not None


def metric_page(conn: sqlite3.Connection, plugin_id: str, *, metric_type: str | None = None,
                since: float | None = None, until: float | None = None,
                before: tuple[int, int] | None = None, limit: int = 100) -> list[MetricRow]:
    """Up to ``limit`` points of a plugin, newest first, older than the ``before`` (ts_ms, id) cursor."""
    sql = "SELECT id, metric_type FROM metric_series WHERE plugin_id = ?"
    params: list[Any] = [plugin_id]
    if metric_type is not None:
        sql += " AND metric_type = ?"
        params.append(metric_type)
    series = conn.execute(sql, params).fetchall()
    low = -(2**62) if since is None else int(since * 1000)
    high = 2**62 if until is None else int(until * 1000)
    pages = []
    for series_id, metric in series:
        where = "series_id = ? AND ts_ms >= ? AND ts_ms < ?"
        args: list[Any] = [series_id, low, high]
        if before is not None:
            where += " AND ts_ms <= ? AND NOT (ts_ms = ? AND id >= ?)"  # a range on the index, then a filter
            args += [before[0], before[0], before[1]]
        rows = conn.execute(f"SELECT ts_ms, id, value, metadata FROM metric_points WHERE {where} "
                            "ORDER BY ts_ms DESC, id DESC LIMIT ?", (*args, limit)).fetchall()
        pages.append([(ts_ms, rid, metric, value, meta) for ts_ms, rid, value, meta in rows])
    merged = heapq.merge(*pages, key=lambda row: (row[0], row[1]), reverse=True)
    return [MetricRow(rid, metric, value, ts_ms / 1000, _loads(meta))
            for _, (ts_ms, rid, metric, value, meta) in zip(range(limit), merged)]


def snapshot_page(conn: sqlite3.Connection, plugin_id: str, *, since: float | None = None,
                  until: float | None = None, before_id: int | None = None,
                  limit: int = 100) -> list[PerformanceSnapshot]:
    """Up to ``limit`` snapshots of a plugin, newest first, with ids below ``before_id``."""
    where, params = ["plugin_id = ?"], [plugin_id]
    if since is not None:
        where.append("timestamp >= ?")
        params.append(since)
    if until is not None:
        where.append("timestamp < ?")
        params.append(until)
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    rows = conn.execute(f"{SNAPSHOT_SELECT} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                        (*params, limit)).fetchall()
    return [snapshot_from_row(row) for row in rows]

"""Pages for the HTTP API: newest first, resumed from an opaque cursor, each an index range scan.

Metrics page by (time, id) per series and merge, so a rare plugin's page
costs a seek per series rather than a walk over every point in the store.

A page also stops at ``PAGE_TEXT_BYTES`` of stored text: a thousand logs
with a megabyte of context each would otherwise be a gigabyte of JSON,
and several times that in Python objects, for one GET. The sizes are read
first (SQLite counts them without Python), then only the rows that fit.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, TypeVar

from pmon.models import LogLevel, PerformanceSnapshot, PluginEvent, PluginLog, Severity
from pmon.store import queries
from pmon.store.queries import SNAPSHOT_SELECT, snapshot_from_row, stored_json

T = TypeVar("T")

PAGE_TEXT_BYTES = 4 * 1024 * 1024
"""Stored text (messages, contexts, metadata) one page holds at most; a page has at least one row."""
LOG_TEXT = "length(message) + ifnull(length(context), 0) + ifnull(length(traceback), 0)"
EVENT_TEXT = "length(event_type) + length(description) + ifnull(length(data), 0)"
METRIC_TEXT = "ifnull(length(metadata), 0)"
SNAPSHOT_TEXT = "ifnull(length(disk_io), 0) + ifnull(length(network_io), 0) + ifnull(length(custom_metrics), 0)"
"""What a row of each kind weighs, as SQL over its text columns."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Rows newest first, and whether older ones may follow."""

    rows: list[T]
    more: bool
    """The page is full, or was cut short at ``PAGE_TEXT_BYTES``: ask again from its last row."""


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One stored metric point."""

    id: int
    metric_type: str
    value: float
    timestamp: float
    metadata: Any


def plugin_exists(conn: sqlite3.Connection, plugin_id: str) -> bool:
    """Whether the store has ever heard of ``plugin_id``."""
    return conn.execute("SELECT 1 FROM plugins WHERE id = ?", (plugin_id,)).fetchone() is not None


def metric_page(conn: sqlite3.Connection, plugin_id: str, *, metric_type: str | None = None,
                since: float | None = None, until: float | None = None,
                before: tuple[int, int] | None = None, limit: int = 100) -> Page[MetricRow]:
    """Up to ``limit`` points of a plugin, newest first, older than the ``before`` (ts_ms, id) cursor."""
    sql = "SELECT id, metric_type FROM metric_series WHERE plugin_id = ?"
    params: list[Any] = [plugin_id]
    if metric_type is not None:
        sql += " AND metric_type = ?"
        params.append(metric_type)
    low = -(2**62) if since is None else int(since * 1000)
    high = 2**62 if until is None else int(until * 1000)
    with _one_read(conn):
        pages = []
        for series_id, metric in conn.execute(sql, params).fetchall():
            where = "series_id = ? AND ts_ms >= ? AND ts_ms < ?"
            args: list[Any] = [series_id, low, high]
            if before is not None:
                where += " AND ts_ms <= ? AND NOT (ts_ms = ? AND id >= ?)"  # a range on the index, then a filter
                args += [before[0], before[0], before[1]]
            rows = conn.execute(f"SELECT ts_ms, id, {METRIC_TEXT} FROM metric_points WHERE {where} "
                                "ORDER BY ts_ms DESC, id DESC LIMIT ?", (*args, limit)).fetchall()
            pages.append([(ts_ms, rid, metric, size) for ts_ms, rid, size in rows])
        merged = heapq.merge(*pages, key=lambda row: (row[0], row[1]), reverse=True)
        newest = list(islice(merged, limit))
        chosen = newest[:fitting([size for *_, size in newest])]
        stored = _by_id(conn, "SELECT id, value, metadata FROM metric_points", [rid for _, rid, _, _ in chosen])
    points = [MetricRow(rid, metric, stored[rid][1], ts_ms / 1000, stored_json(stored[rid][2]))
              for ts_ms, rid, metric, _ in chosen]
    return Page(points, len(points) == limit or len(chosen) < len(newest))


def log_page(conn: sqlite3.Connection, plugin_id: str, *, min_level: str | None = None, text: str | None = None,
             since: float | None = None, until: float | None = None, before_id: int | None = None,
             limit: int = 100) -> Page[PluginLog]:
    """A plugin's logs at or above ``min_level``, newest first, with ids below ``before_id``."""
    where, params = queries.common_filters(plugin_id, text, "message", since, until, None, before_id)
    return _sized_page(conn, "plugin_logs", LOG_TEXT, where, params, "level", _at_least(LogLevel, min_level), limit,
                       lambda fits: queries.logs(conn, plugin_id=plugin_id, min_level=min_level, text=text,
                                                 since=since, until=until, before_id=before_id, limit=fits))


def event_page(conn: sqlite3.Connection, plugin_id: str, *, min_severity: str | None = None, text: str | None = None,
               since: float | None = None, until: float | None = None, before_id: int | None = None,
               limit: int = 100) -> Page[PluginEvent]:
    """A plugin's events at or above ``min_severity``, newest first, with ids below ``before_id``."""
    where, params = queries.common_filters(plugin_id, text, "description", since, until, None, before_id)
    return _sized_page(conn, "plugin_events", EVENT_TEXT, where, params, "severity",
                       _at_least(Severity, min_severity), limit,
                       lambda fits: queries.events(conn, plugin_id=plugin_id, min_severity=min_severity, text=text,
                                                   since=since, until=until, before_id=before_id, limit=fits))


def snapshot_page(conn: sqlite3.Connection, plugin_id: str, *, since: float | None = None,
                  until: float | None = None, before_id: int | None = None,
                  limit: int = 100) -> Page[PerformanceSnapshot]:
    """Up to ``limit`` snapshots of a plugin, newest first, with ids below ``before_id``."""
    where, params = queries.common_filters(plugin_id, None, "", since, until, None, before_id)

    def read(fits: int) -> list[PerformanceSnapshot]:
        rows = conn.execute(f"{SNAPSHOT_SELECT} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                            (*params, fits)).fetchall()
        return [snapshot_from_row(row) for row in rows]

    return _sized_page(conn, "performance_snapshots", SNAPSHOT_TEXT, where, params, "", None, limit, read)


def _at_least(enum: type[LogLevel] | type[Severity], floor: str | None) -> list[str] | None:
    """The values ranked at or above ``floor`` (None: every value, no filter)."""
    return None if floor is None else [member.value for member in enum if member.rank >= enum(floor).rank]


def _sized_page(conn: sqlite3.Connection, table: str, size_sql: str, where: list[str], params: list[object],
                rank_column: str, ranks: list[str] | None, limit: int, read: Callable[[int], list[T]]) -> Page[T]:
    """``read(n)`` with ``n`` the limit, or fewer where the newest rows would exceed ``PAGE_TEXT_BYTES``.

    The sizes come from the same per-level queries the page runs, reading
    two columns instead of the text, in the same snapshot.
    """
    with _one_read(conn):
        sizes = queries.filtered_by_rank(conn, f"SELECT id, {size_sql} FROM {table}", where, params, rank_column, ranks,
                                  limit, True)
        fits = fitting([size for _, size in sizes])
        if fits == len(sizes):
            fits = limit
        rows = read(fits)
    return Page(rows, len(rows) == fits)


@contextmanager
def _one_read(conn: sqlite3.Connection) -> Iterator[None]:
    """The sizes and the rows come from one snapshot, whatever the writer commits in between."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.rollback()  # read only: nothing to keep


def fitting(sizes: list[int | None]) -> int:
    """How many rows, in order, fit in ``PAGE_TEXT_BYTES`` (at least one, when there is one)."""
    total = 0
    for count, size in enumerate(sizes):
        total += size or 0
        if count and total > PAGE_TEXT_BYTES:
            return count
    return len(sizes)


def _by_id(conn: sqlite3.Connection, select: str, ids: list[int]) -> dict[int, tuple]:
    """Rows of ``select`` (its first column the id) for these ids, by id."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    return {row[0]: row for row in conn.execute(f"{select} WHERE id IN ({marks})", ids)}

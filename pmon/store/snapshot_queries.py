"""Snapshot reads the console's Snapshots tab needs beyond ``queries.snapshots``: tails, filters, neighbours.

Each is an index seek or a short range scan over ``performance_snapshots``
(its rowid, or the (plugin_id, id) index), so a refresh costs the same on a
store of a thousand snapshots or ten million.
"""

from __future__ import annotations

import sqlite3

from pmon.models import PerformanceSnapshot
from pmon.store.queries import SNAPSHOT_SELECT, common_filters, snapshot_from_row


def snapshot_page(conn: sqlite3.Connection, *, plugin_id: str | None = None, plugin_contains: str | None = None,
                  after_id: int | None = None, limit: int = 500) -> list[PerformanceSnapshot]:
    """Snapshots oldest first: the newest ``limit`` (``after_id`` None) or the first ``limit`` after ``after_id``.

    ``plugin_id`` keeps one plugin (by its index); ``plugin_contains`` keeps
    plugins whose id contains a text (a scan by id, newest first, that stops
    after ``limit`` matches).
    """
    where, params = common_filters(plugin_id, plugin_contains, "plugin_id", None, None, after_id, None)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    order = "DESC" if after_id is None else "ASC"
    rows = conn.execute(f"{SNAPSHOT_SELECT}{clause} ORDER BY id {order} LIMIT ?", (*params, limit)).fetchall()
    if after_id is None:
        rows.reverse()
    return [snapshot_from_row(row) for row in rows]


def previous_snapshot(conn: sqlite3.Connection, snapshot_id: int) -> PerformanceSnapshot | None:
    """The same plugin's snapshot recorded just before ``snapshot_id``, or None (first one, or unknown id)."""
    row = conn.execute(
        f"{SNAPSHOT_SELECT} WHERE plugin_id = (SELECT plugin_id FROM performance_snapshots WHERE id = ?1) "
        "AND id < ?1 ORDER BY id DESC LIMIT 1",
        (snapshot_id,),
    ).fetchone()
    return snapshot_from_row(row) if row else None


def snapshot_plugins(conn: sqlite3.Connection) -> list[str]:
    """Every plugin with at least one snapshot, sorted.

    A skip scan: one seek into the (plugin_id, id) index per plugin instead
    of ``SELECT DISTINCT``'s walk over every snapshot.
    """
    rows = conn.execute(
        "WITH RECURSIVE seen(plugin_id) AS ("
        " SELECT min(plugin_id) FROM performance_snapshots"
        " UNION ALL"
        " SELECT (SELECT min(plugin_id) FROM performance_snapshots WHERE plugin_id > seen.plugin_id)"
        " FROM seen WHERE seen.plugin_id IS NOT NULL)"
        " SELECT plugin_id FROM seen WHERE plugin_id IS NOT NULL"
    ).fetchall()
    return [plugin_id for (plugin_id,) in rows]


def newest_snapshot_id(conn: sqlite3.Connection) -> int:
    """The highest snapshot id (0 when there is none): a tail need not rescan rows up to it."""
    return conn.execute("SELECT coalesce(max(id), 0) FROM performance_snapshots").fetchone()[0]

"""Read queries the Events tab needs besides ``queries.events``: where the tail ends, which plugins have events.

Both are index seeks, so a refresh costs the same on a small store and a
10 M-row one.
"""

from __future__ import annotations

import sqlite3


def newest_event_id(conn: sqlite3.Connection) -> int:
    """The highest event id (0 when empty): a tail can start after it even when no event matches its filter."""
    return conn.execute("SELECT coalesce(max(id), 0) FROM plugin_events").fetchone()[0]


def event_plugins(conn: sqlite3.Connection) -> list[str]:
    """Every plugin id that has at least one event, sorted.

    A skip scan of the (plugin_id, id) index: one seek per plugin, where
    ``SELECT DISTINCT`` would read every event.
    """
    rows = conn.execute(
        "WITH RECURSIVE ids(plugin_id) AS ("
        " SELECT min(plugin_id) FROM plugin_events"
        " UNION ALL"
        " SELECT (SELECT min(plugin_id) FROM plugin_events WHERE plugin_id > ids.plugin_id)"
        " FROM ids WHERE ids.plugin_id IS NOT NULL"
        ") SELECT plugin_id FROM ids WHERE plugin_id IS NOT NULL"
    ).fetchall()
    return [plugin_id for (plugin_id,) in rows]

"""Row counts for the Prometheus endpoint, read in steps so a scrape costs the rows recorded since the last one.

A scrape every 15 s must not count a 10 M-row table each time. The first
count walks the covering (plugin, level/severity, id) index once; every later
one reads only the ids past the previous high-water mark, a rowid range of the
table itself. The caller adds the steps up, so its counters never go down when
retention deletes old rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CountStep:
    """Rows with ``after < id <= last_id``, by (plugin, level or severity)."""

    counts: dict[tuple[str, str], int]
    last_id: int
    """The high-water mark to pass as ``after`` next time (``after`` itself when nothing is new)."""


def _count_since(conn: sqlite3.Connection, table: str, rank_column: str, after: int) -> CountStep:
    top = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    if top is None or top <= after:
        return CountStep({}, after)
    # Bounded by ``top`` so the counts and the mark agree while the writer keeps inserting.
    if after <= 0:
        source = f"{table} INDEXED BY {table}_plugin_{rank_column} WHERE id <= ?2"
    else:
        source = f"{table} NOT INDEXED WHERE id > ?1 AND id <= ?2"  # NOT INDEXED still seeks the rowid range
    rows = conn.execute(f"SELECT plugin_id, {rank_column}, count(*) FROM {source} GROUP BY 1, 2", (after, top))
    return CountStep({(plugin, rank): count for plugin, rank, count in rows}, top)


def log_counts_since(conn: sqlite3.Connection, after: int = 0) -> CountStep:
    """Logs by (plugin, level) with an id past ``after`` (0: all of them)."""
    return _count_since(conn, "plugin_logs", "level", after)


def event_counts_since(conn: sqlite3.Connection, after: int = 0) -> CountStep:
    """Events by (plugin, severity) with an id past ``after`` (0: all of them)."""
    return _count_since(conn, "plugin_events", "severity", after)

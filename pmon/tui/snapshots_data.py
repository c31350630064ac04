"""What the Snapshots tab reads on each refresh, as plain frozen dataclasses (no Textual here).

The tab asks for the newest page once per filter, then only for what came
after the newest snapshot it holds, so an idle refresh costs three index seeks.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from pmon.models import PerformanceSnapshot
from pmon.store import snapshot_queries

SNAPSHOT_PAGE = 500
"""Snapshots loaded when the tab (re)starts, and the most read per refresh after that."""


@dataclass(frozen=True, slots=True)
class SnapshotQuery:
    """The Snapshots tab's next read; ``generation`` changes with the filter so stale answers are dropped."""

    generation: int = 0
    plugin_id: str | None = None
    """Only this plugin's snapshots."""
    plugin_contains: str | None = None
    """Only plugins whose id contains this text."""
    after_id: int | None = None
    """None: the newest page; else what came after this id."""
    previous_of: int | None = None
    """Also look up the snapshot the same plugin recorded before this one (Enter without a mark)."""

    def read(self, conn: sqlite3.Connection, now: float) -> SnapshotBatch:
        """Runs on the refresh worker thread."""
        newest = snapshot_queries.newest_snapshot_id(conn)
        found = snapshot_queries.snapshot_page(conn, plugin_id=self.plugin_id, plugin_contains=self.plugin_contains,
                                               after_id=self.after_id, limit=SNAPSHOT_PAGE)
        previous = None if self.previous_of is None else snapshot_queries.previous_snapshot(conn, self.previous_of)
        return SnapshotBatch(self, tuple(found), newest, tuple(snapshot_queries.snapshot_plugins(conn)), previous,
                             now)


@dataclass(frozen=True, slots=True)
class SnapshotBatch:
    """The answer to one ``SnapshotQuery``."""

    query: SnapshotQuery
    snapshots: tuple[PerformanceSnapshot, ...]
    """Oldest first."""
    newest_id: int
    """The store's highest snapshot id just before reading: a tail need not rescan rows up to it."""
    plugins: tuple[str, ...]
    """Every plugin that has snapshots, sorted (what the plugin filter cycles through)."""
    previous: PerformanceSnapshot | None
    """The answer to ``query.previous_of`` (None also when there is no earlier snapshot)."""
    read_at: float


def previous_listed(snapshots: list[PerformanceSnapshot], target: PerformanceSnapshot) -> PerformanceSnapshot | None:
    """The same plugin's snapshot just before ``target`` among ``snapshots`` (oldest first), if listed.

    A listing holds a plugin's snapshots without gaps (filters keep or drop
    whole plugins), so a hit is the true previous one; a miss means it may be
    older than the page and must be read.
    """
    found = None
    for snapshot in snapshots:
        if snapshot.id is not None and target.id is not None and snapshot.id >= target.id:
            break
        if snapshot.plugin_id == target.plugin_id:
            found = snapshot
    return found

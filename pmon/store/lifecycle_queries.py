"""What the store remembers of a plugin's lifecycle: its status and the pids of its last lifecycle event.

A daemon that starts again (after a reboot, an upgrade, or a `--once` run
from cron) compares with this instead of announcing every plugin as newly
started or newly missing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from pmon.models import LIFECYCLE_STATUS


@dataclass(frozen=True, slots=True)
class StoredLifecycle:
    """A plugin's stored status and the pids its last lifecycle event named (None: unknown)."""

    status: str
    pids: frozenset[int] | None


def stored_lifecycle(conn: sqlite3.Connection, plugin_ids: Iterable[str]) -> dict[str, StoredLifecycle]:
    """The stored state of each of these plugins that the store knows."""
    types = tuple(LIFECYCLE_STATUS)
    marks = ", ".join("?" * len(types))
    found = {}
    for plugin_id in plugin_ids:
        row = conn.execute("SELECT status FROM plugins WHERE id = ?", (plugin_id,)).fetchone()
        if row is None:
            continue
        event = conn.execute(f"SELECT data FROM plugin_events WHERE plugin_id = ? AND event_type IN ({marks}) "
                             "ORDER BY id DESC LIMIT 1", (plugin_id, *types)).fetchone()
        pids = None
        if event is not None:
            try:
                listed = json.loads(event[0] or "{}").get("pids")
                if isinstance(listed, list) and all(isinstance(p, int) for p in listed):
                    pids = frozenset(listed)
            except (ValueError, AttributeError):
                pids = None
        found[plugin_id] = StoredLifecycle(row[0], pids)
    return found

"""Reading what the daemon or the monitor wrote, with plain sqlite3."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def values(db: Path, plugin: str, metric: str) -> list[float]:
    """A plugin's metric values, oldest first ([] when there is no file or no schema yet)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [v for (v,) in conn.execute("SELECT value FROM plugin_metrics WHERE plugin_id = ? AND metric_type = ? "
                                           "ORDER BY timestamp", (plugin, metric))]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()

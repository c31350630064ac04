"""The daemon watching itself (the seed's "system monitoring"), recorded as plugin ``pmon``.

An operator sees in the console, like for any plugin, whether the collector
keeps up: its queue, how long a batch takes to commit, rows written per
second, rows it had to drop, the size of the database, how long a tick takes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pmon.collect.sampler import ProcessSampler
from pmon.monitor import Monitor

SELF_PLUGIN = "pmon"
MIB = 1024 * 1024


def database_bytes(path: Path) -> int:
    """The database file plus its WAL, in bytes (0 for what does not exist yet)."""
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.stat(f"{path}{suffix}").st_size
        except OSError:
            pass
    return total


class SelfMonitor:
    """Records the daemon's health figures every tick."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.sampler = ProcessSampler()
        self._me = self._own_key()
        self.sampler.sample([self._me])  # the baseline: CPU is a rate, so the first record already has one
        self._rows_before: int | None = None
        self._at: float | None = None
        self.last_prune_lock_ms: float | None = None
        """Longest write-lock hold of the last retention pass, set by the daemon."""
        self.last_analysis_ms: float | None = None
        """How long the last analysis pass took, set by the daemon."""

    @staticmethod
    def _own_key() -> tuple[int, float]:
        import psutil

        me = psutil.Process()
        return (me.pid, me.create_time())

    def record(self, tick_seconds: float, now: float | None = None) -> None:
        """Record one set of figures; rates are against the previous call."""
        now = time.time() if now is None else now
        status = self.monitor.status()
        rows = sum(status["rows_written"].values())
        figures: dict[str, float | None] = {
            "pmon.queue_depth": status["queue_depth"],
            "pmon.flush_ms": status["last_flush_ms"],
            "pmon.dropped_rows": status["dropped"],
            "pmon.write_errors": status["write_errors"],
            "pmon.db_size_bytes": database_bytes(self.monitor.db_path),
            "pmon.sample_ms": tick_seconds * 1000,
            "pmon.prune_max_lock_ms": self.last_prune_lock_ms,
            "pmon.analysis_ms": self.last_analysis_ms,
        }
        if self._rows_before is not None and self._at is not None and now > self._at:
            figures["pmon.rows_written_per_s"] = (rows - self._rows_before) / (now - self._at)
        self._rows_before, self._at = rows, now
        own = self.sampler.sample([self._me])
        figures["cpu_usage"] = own.cpu_percent
        figures["memory_usage"] = own.rss_bytes / MIB if own.rss_bytes is not None else None
        for metric, value in figures.items():
            if value is not None:
                self.monitor.record_metric(SELF_PLUGIN, metric, value, timestamp=now)

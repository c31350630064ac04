""""Now vs baseline": a plugin's newest snapshot against a chosen one, with the fields that regressed.

By default the baseline is the last snapshot before the plugin's last
(re)start, so a deploy or a restart is judged against how the plugin ran
before it; without a restart, the oldest snapshot of the 24 h before the
newest one. The diff itself is ``snapshot_diff.diff_snapshots``'s, so the
console, the CLI and this agree about every field.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pmon.analysis.snapshot_diff import MISSING, WATCHED_FIELDS, Direction, SnapshotDiff, diff_snapshots
from pmon.models import PerformanceSnapshot
from pmon.store import analysis_queries as aq
from pmon.store import queries

LOWER_IS_WORSE: Final = ("throughput",)
"""Fields where a fall beyond the threshold is a regression (``diff_snapshots`` only knows rises)."""
FALLBACK_WINDOW_S: Final = 86400.0
"""Without a restart to compare against, the baseline is the oldest snapshot this long before the newest."""


class BaselineChoice(StrEnum):
    """How the baseline snapshot was chosen."""

    GIVEN = "given"
    BEFORE_RESTART = "before_restart"
    """The last snapshot before the plugin's last started / restarted event."""
    OLDEST_RECENT = "oldest_recent"
    """The oldest snapshot within ``FALLBACK_WINDOW_S`` of the newest."""


@dataclass(frozen=True, slots=True)
class BaselineComparison:
    """The plugin's newest snapshot (``diff.b``) against its baseline (``diff.a``)."""

    plugin_id: str
    choice: BaselineChoice
    restart_at: float | None
    """When the plugin last started or restarted (epoch seconds), if it ever did."""
    diff: SnapshotDiff
    regression_pct: float
    regressions: tuple[str, ...]
    """Dotted paths that got worse by more than ``regression_pct``: higher cpu / memory / response time /
    error rate, lower throughput."""

    @property
    def baseline(self) -> PerformanceSnapshot:
        """The snapshot compared against."""
        return self.diff.a

    @property
    def now(self) -> PerformanceSnapshot:
        """The plugin's newest snapshot."""
        return self.diff.b

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON (values present on one side only are null on the other)."""
        def plain(value: object) -> object:
            return None if value is MISSING else value
        return {
            "plugin_id": self.plugin_id, "choice": str(self.choice), "restart_at": self.restart_at,
            "baseline_id": self.baseline.id, "baseline_at": self.baseline.timestamp.timestamp(),
            "now_id": self.now.id, "now_at": self.now.timestamp.timestamp(),
            "regression_pct": self.regression_pct, "regressions": list(self.regressions),
            "fields": [{"path": row.path, "a": plain(row.a), "b": plain(row.b), "delta": row.delta,
                        "pct_change": row.pct_change, "direction": str(row.direction)} for row in self.diff.rows],
        }


def regressed_fields(diff: SnapshotDiff) -> tuple[str, ...]:
    """The rows ``diff`` flags, plus watched-for-falls fields (throughput) that fell beyond its threshold."""
    found = []
    for row in diff.rows:
        fell = (row.path in LOWER_IS_WORSE and row.direction is Direction.DOWN
                and (row.pct_change is None or row.pct_change < -diff.threshold_pct))
        if row.regression or fell:
            found.append(row.path)
    return tuple(found)


def choose_baseline(conn: sqlite3.Connection, plugin_id: str, now: PerformanceSnapshot,
                    restart_at: float | None) -> tuple[PerformanceSnapshot, BaselineChoice]:
    """The default baseline for ``now``: before the last restart, else the oldest of the last 24 h (maybe ``now``)."""
    if restart_at is not None:
        before = aq.snapshot_before(conn, plugin_id, restart_at)
        if before is not None:
            return before, BaselineChoice.BEFORE_RESTART
    oldest = aq.oldest_snapshot_since(conn, plugin_id, now.timestamp.timestamp() - FALLBACK_WINDOW_S)
    return oldest or now, BaselineChoice.OLDEST_RECENT


def compare_to_baseline(conn: sqlite3.Connection, plugin_id: str, baseline_id: int | None = None,
                        regression_pct: float = 10.0) -> BaselineComparison | None:
    """The plugin's newest snapshot against ``baseline_id`` (default: see ``choose_baseline``); None without snapshots.

    Raises ValueError when ``baseline_id`` is not a snapshot of this plugin.
    """
    now = aq.newest_snapshot(conn, plugin_id)
    if now is None:
        return None
    restart_at = aq.last_start(conn, plugin_id)
    if baseline_id is None:
        baseline, choice = choose_baseline(conn, plugin_id, now, restart_at)
    else:
        given = queries.snapshot(conn, baseline_id)
        if given is None or given.plugin_id != plugin_id:
            raise ValueError(f"baseline_id: {baseline_id} is not a snapshot of {plugin_id!r}")
        baseline, choice = given, BaselineChoice.GIVEN
    diff = diff_snapshots(baseline, now, threshold_pct=regression_pct, watched=WATCHED_FIELDS)
    return BaselineComparison(plugin_id, choice, restart_at, diff, regression_pct, regressed_fields(diff))

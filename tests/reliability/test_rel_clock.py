"""The wall clock jumps a day forward or back while pmon records and prunes: nothing recent is pruned, order is kept.

The system clock cannot be moved here, so the jump is injected where pmon
reads wall time: rows are stamped with ``timestamp=`` (what ``time.time()``
would have said) and retention passes get ``now=``. Rows go through the real
writer into a real file; the order is read back by `pmon logs` / `pmon events`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmon.config import RetentionConfig
from pmon.monitor import Monitor
from pmon.store.retention import prune

pytestmark = pytest.mark.reliability

DAY = 86_400.0
HOUR = 3_600.0


def record(db: Path, at: float, label: str, count: int = 5) -> None:
    """``count`` metrics, logs and events stamped ``at`` (+ a millisecond each), committed."""
    monitor = Monitor(db, flush_interval=0.05)
    for i in range(count):
        when = at + i / 1000
        monitor.record_metric(plugin_id="billing", metric_type="cpu_usage", value=float(i), timestamp=when)
        monitor.record_log(plugin_id="billing", level="warning", message=f"{label} {i}", timestamp=when)
        monitor.record_event(plugin_id="billing", event_type="deploy", description=f"{label} {i}", severity="low",
                             timestamp=when)
    assert monitor.flush(timeout=10)
    monitor.stop_monitoring()


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("metric_points", "plugin_logs", "plugin_events")}


def rolled_up_points(db: Path) -> tuple[int, int]:
    """Points counted in the minute rollups and in the hour rollups."""
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT coalesce(sum(count), 0) FROM metric_rollups_1m").fetchone()[0],
                conn.execute("SELECT coalesce(sum(count), 0) FROM metric_rollups_1h").fetchone()[0])


def pmon_json(db: Path, *args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("PMON_CONFIG", "PMON_DB")}
    done = subprocess.run([sys.executable, "-m", "pmon", "--db", str(db), *args, "--json", "--limit", "1000"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_day_forward_then_back_prunes_nothing_recent_and_rolls_up_every_point(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    now = time.time()
    for hours_ago in range(48):  # two days of history by the true clock
        record(db, now - hours_ago * HOUR, f"history {hours_ago}h", count=2)
    record(db, now, "before the jump")
    recorded = counts(db)

    forward = prune(db, RetentionConfig(), now=now + DAY)  # the clock jumps a day ahead
    assert forward.deleted_total == 0 and not forward.errors, forward.summary()
    record(db, now + DAY, "after jumping forward")
    back = prune(db, RetentionConfig(), now=now + 60)  # and comes back
    assert back.deleted_total == 0 and not back.errors, back.summary()
    record(db, now + 60, "after jumping back")
    again = prune(db, RetentionConfig(), now=now + 120)
    assert again.deleted_total == 0, again.summary()

    assert counts(db) == {table: count + 10 for table, count in recorded.items()}
    # Points stamped before the watermark the forward jump set are folded in late, once each.
    prune(db, RetentionConfig(), now=now + DAY + 600)
    assert rolled_up_points(db) == (counts(db)["metric_points"],) * 2


def test_what_is_old_by_either_clock_is_still_pruned(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    now = time.time()
    record(db, now - 40 * DAY, "old")
    record(db, now, "recent")
    for jump in (+DAY, -DAY):
        report = prune(db, RetentionConfig(), now=now + jump)
        if jump > 0:
            assert report.deleted["plugin_logs"] == 5 and report.deleted["plugin_events"] == 5, report.summary()
    assert counts(db)["plugin_logs"] == 5
    logs = pmon_json(db, "logs")
    assert [log["message"] for log in logs] == [f"recent {i}" for i in range(5)]


def test_a_day_back_keeps_the_order_things_happened_in(tmp_path: Path) -> None:
    """Rows stamped a day earlier after the jump still come after the rows recorded before it."""
    db = tmp_path / "pmon.db"
    now = time.time()
    record(db, now, "before")
    record(db, now - DAY, "after")  # the clock went back a day
    report = prune(db, RetentionConfig(days=1.5), now=now - DAY + 60)
    assert report.deleted_total == 0, report.summary()  # rows "from the future" are not old
    expected = [f"before {i}" for i in range(5)] + [f"after {i}" for i in range(5)]
    assert [log["message"] for log in pmon_json(db, "logs")] == expected
    assert [event["description"] for event in pmon_json(db, "events")] == expected

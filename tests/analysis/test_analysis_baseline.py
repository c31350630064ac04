"""Now vs baseline: the newest snapshot against the one before the last restart, regressions flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pmon import Monitor
from pmon.analysis.baseline import BaselineChoice, compare_to_baseline
from pmon.store import queries
from pmon.store.schema import open_reader

T0 = 1_700_000_000.0
BASE = {"cpu_usage": 20.0, "memory_usage": 200.0, "response_time": 40.0, "error_rate": 0.01, "request_count": 100,
        "throughput": 50.0, "custom_metrics": {"queue": {"depth": 3}}}


def snapshot(monitor: Monitor, at: float, **changes: object) -> None:
    monitor.create_snapshot("api", {**BASE, **changes}, timestamp=at)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05)
    snapshot(monitor, T0, cpu_usage=5.0)                         # the oldest
    snapshot(monitor, T0 + 3000, cpu_usage=21.0)                # the last one before the restart
    monitor.record_event("api", "restarted", "deployed", timestamp=T0 + 3600)
    snapshot(monitor, T0 + 4000, cpu_usage=40.0)
    snapshot(monitor, T0 + 7000, response_time=60.0, throughput=40.0, cpu_usage=22.0,
             custom_metrics={"queue": {"depth": 9}})            # now
    snapshot(monitor, T0 - 90000)                                # a day older still: ignored
    monitor.create_snapshot("other", BASE, timestamp=T0)
    monitor.stop_monitoring()
    return db


def test_the_default_baseline_is_the_last_snapshot_before_the_restart(path: Path) -> None:
    result = compare_to_baseline(open_reader(path), "api")
    assert result is not None and result.choice is BaselineChoice.BEFORE_RESTART
    assert result.baseline.cpu_usage == 21.0 and result.now.timestamp.timestamp() == T0 + 7000
    assert result.restart_at == T0 + 3600


def test_rises_in_response_time_and_falls_in_throughput_beyond_the_threshold_are_regressions(path: Path) -> None:
    result = compare_to_baseline(open_reader(path), "api")
    assert result is not None
    assert result.regressions == ("response_time", "throughput")  # cpu 21 -> 22 is under 10 %
    rows = {row.path: row for row in result.diff.rows}
    assert rows["custom_metrics.queue.depth"].delta == 6  # nested fields are compared too
    strict = compare_to_baseline(open_reader(path), "api", regression_pct=4.0)
    assert strict is not None and strict.regressions == ("cpu_usage", "response_time", "throughput")


def test_a_given_baseline_is_used_and_one_of_another_plugin_refused(path: Path) -> None:
    conn = open_reader(path)
    oldest = next(s for s in queries.snapshots(conn, plugin_id="api") if s.cpu_usage == 5.0)
    result = compare_to_baseline(conn, "api", oldest.id)
    assert result is not None and result.choice is BaselineChoice.GIVEN and result.baseline.id == oldest.id
    assert "cpu_usage" in result.regressions
    other = queries.snapshots(conn, plugin_id="other")[0]
    with pytest.raises(ValueError, match="not a snapshot of 'api'"):
        compare_to_baseline(conn, "api", other.id)


def test_without_a_restart_the_baseline_is_the_oldest_snapshot_of_the_last_day(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05)
    snapshot(monitor, T0 - 90000, cpu_usage=1.0)
    snapshot(monitor, T0, cpu_usage=10.0)
    snapshot(monitor, T0 + 600, cpu_usage=30.0)
    monitor.stop_monitoring()
    result = compare_to_baseline(open_reader(db), "api")
    assert result is not None and result.choice is BaselineChoice.OLDEST_RECENT
    assert (result.baseline.cpu_usage, result.now.cpu_usage) == (10.0, 30.0)
    assert json.loads(json.dumps(result.to_dict()))["regressions"] == ["cpu_usage"]


def test_a_plugin_without_snapshots_has_no_comparison(path: Path) -> None:
    assert compare_to_baseline(open_reader(path), "nobody") is None

"""Trends: a metric bucketed over a range with avg / min / max / p95, and its change against the range before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pmon import Monitor
from pmon.analysis.trends import trend, trends
from pmon.store.rollups import roll_up
from pmon.store.schema import open_reader, open_writer

T0 = 1_699_999_200.0  # a whole hour, so two-minute buckets start on whole minutes


def build(path: Path) -> None:
    monitor = Monitor(path, flush_interval=0.05)
    for s in range(600):
        monitor.record_metric("api", "response_time", float(s), timestamp=T0 + s)
        monitor.record_metric("api", "response_time", 100.0, timestamp=T0 - 600 + s)
    monitor.record_metric("api", "cpu_usage", 10.0, timestamp=T0 - 10)
    monitor.record_metric("api", "cpu_usage", 0.0, timestamp=T0 + 10)
    monitor.record_metric("db", "memory_usage", 5.0, timestamp=T0 - 5000)  # in neither range
    monitor.stop_monitoring()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    db = tmp_path / "pmon.db"
    build(db)
    return db


def test_buckets_hold_avg_min_max_and_p95_of_their_points(path: Path) -> None:
    result = trend(open_reader(path), "api", "response_time", T0, T0 + 600, points=6)
    assert result.width_s == 100.0
    assert [b.start for b in result.buckets] == [T0 + 100 * i for i in range(6)]
    for i, bucket in enumerate(result.buckets):
        assert (bucket.count, bucket.avg, bucket.min, bucket.max) == (100, i * 100 + 49.5, i * 100, i * 100 + 99)
        assert bucket.p95 == i * 100 + 94  # nearest rank 95 of 100


def test_change_compares_the_mean_with_the_previous_equal_range(path: Path) -> None:
    summary = trend(open_reader(path), "api", "response_time", T0, T0 + 600, points=6).summary
    assert (summary.count, summary.avg, summary.previous_count, summary.previous_avg) == (600, 299.5, 600, 100.0)
    assert summary.change == 199.5 and summary.change_pct == pytest.approx(199.5)


def test_a_fall_to_zero_is_minus_100_percent_and_no_previous_data_gives_no_change(path: Path) -> None:
    conn = open_reader(path)
    cpu = trend(conn, "api", "cpu_usage", T0, T0 + 600).summary
    assert cpu.change == -10.0 and cpu.change_pct == -100.0
    later = trend(conn, "api", "response_time", T0 + 300, T0 + 600).summary
    assert later.previous_avg == 149.5 and later.change == 300.0 and later.change_pct == pytest.approx(300 / 1.495)
    first = trend(conn, "api", "response_time", T0 - 600, T0).summary
    assert first.previous_avg is None and first.change is None and first.change_pct is None


def test_trends_lists_every_plugin_and_metric_with_data_in_either_range(path: Path) -> None:
    rows = trends(open_reader(path), T0, T0 + 600)
    assert [(r.plugin_id, r.metric) for r in rows] == [("api", "cpu_usage"), ("api", "response_time")]
    assert rows[1].avg == 299.5 and rows[1].change_pct == pytest.approx(199.5)
    assert rows[0].to_dict()["change_pct"] == -100.0


def test_buckets_served_by_rollups_lose_their_p95_once_the_raw_points_are_pruned(path: Path) -> None:
    writer = open_writer(path)
    roll_up(writer, T0 + 3600)
    writer.execute("DELETE FROM metric_points WHERE ts_ms < ?", (int((T0 + 300) * 1000),))  # as retention would
    writer.close()
    conn: sqlite3.Connection = open_reader(path)
    result = trend(conn, "api", "response_time", T0, T0 + 600, points=5)  # two-minute buckets: from the rollups
    assert [b.count for b in result.buckets] == [120] * 5
    assert [b.avg for b in result.buckets] == [59.5 + 120 * i for i in range(5)]
    assert [b.p95 is None for b in result.buckets] == [True, True, True, False, False]
    assert result.buckets[3].p95 == 360 + 113  # rank 114 of 120

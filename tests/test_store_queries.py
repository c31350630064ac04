"""Read queries the console and CLI use, against a real file written through the API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pmon import Monitor
from pmon.store import queries
from pmon.store.schema import StoreError, open_reader, open_writer


@pytest.fixture
def reader(monitor: Monitor, db_path: Path):
    monitor.start_monitoring()
    assert monitor.flush()
    conn = open_reader(db_path)
    yield conn
    conn.close()


def test_plugins_list_their_latest_value_per_metric(monitor: Monitor, db_path: Path) -> None:
    now = time.time()
    for i in range(10):
        monitor.record_metric("alpha", "cpu_usage", float(i), timestamp=now - 10 + i)
    monitor.record_metric("alpha", "cpu_usage", 99.0, timestamp=now - 100)  # late backfill: not the latest
    monitor.record_metric("beta", "memory_usage", 512, timestamp=now)
    assert monitor.flush()
    conn = open_reader(db_path)
    summaries = {p.plugin_id: p for p in queries.plugins(conn)}
    assert set(summaries) == {"alpha", "beta"}
    assert summaries["alpha"].latest["cpu_usage"].value == 9.0
    assert summaries["alpha"].first_seen == pytest.approx(now - 100, abs=0.01)
    assert summaries["alpha"].last_seen == pytest.approx(now - 1, abs=0.01)
    assert summaries["beta"].latest["memory_usage"].value == 512.0
    assert summaries["alpha"].status == "active"


def test_series_is_bucketed_with_avg_min_max(monitor: Monitor, db_path: Path) -> None:
    start = 1_700_000_000.0
    for second in range(600):  # 10 minutes, value = minute number
        monitor.record_metric("p", "response_time", float(second // 60), timestamp=start + second)
    monitor.record_metric("p", "response_time", 1000.0, timestamp=start + 600)  # outside [start, start+600)
    assert monitor.flush()
    conn = open_reader(db_path)
    points = queries.series(conn, "p", "response_time", start, start + 600, points=10)
    assert [p.timestamp for p in points] == [start + 60 * i for i in range(10)]
    assert [p.avg for p in points] == [float(i) for i in range(10)]
    assert all(p.count == 60 for p in points)
    two = queries.series(conn, "p", "response_time", start, start + 600, points=2)
    assert [(p.min, p.max, p.avg) for p in two] == [(0.0, 4.0, 2.0), (5.0, 9.0, 7.0)]
    assert queries.series(conn, "p", "cpu_usage", start, start + 600) == []
    assert queries.series(conn, "nobody", "response_time", start, start + 600) == []


def test_logs_filter_by_level_plugin_text_time_and_tail_after_id(monitor: Monitor, db_path: Path) -> None:
    base = 1_700_000_000.0
    levels = ["debug", "info", "warning", "error", "critical"]
    for i in range(50):
        monitor.record_log(f"plugin_{i % 2}", levels[i % 5], f"message {i} 100%_done" if i == 7 else f"message {i}",
                           timestamp=base + i)
    assert monitor.flush()
    conn = open_reader(db_path)
    newest = queries.logs(conn, limit=5)
    assert [log.message for log in newest] == [f"message {i}" for i in range(49, 44, -1)]
    errors = queries.logs(conn, min_level="error", limit=100)
    assert {log.level for log in errors} == {"error", "critical"} and len(errors) == 20
    assert [log.id for log in errors] == sorted((log.id for log in errors), reverse=True)
    mine = queries.logs(conn, plugin_id="plugin_1", min_level="critical")
    assert {log.plugin_id for log in mine} == {"plugin_1"} and {log.level for log in mine} == {"critical"}
    assert [log.message for log in queries.logs(conn, text="100%_")] == ["message 7 100%_done"]
    assert queries.logs(conn, text="0%x") == []
    assert queries.logs(conn, text="' OR 1=1 --") == []
    window = queries.logs(conn, since=base + 10, until=base + 13)
    assert sorted(log.message for log in window) == ["message 10", "message 11", "message 12"]
    last_id = newest[0].id
    monitor.record_log("plugin_0", "info", "new line")
    assert monitor.flush()
    tail = queries.logs(conn, after_id=last_id, newest_first=False)
    assert [log.message for log in tail] == ["new line"]
    oldest_two = queries.logs(conn, min_level="warning", limit=2, newest_first=False)
    assert [log.message for log in oldest_two] == ["message 2", "message 3"]


def test_events_filter_by_severity_and_category(monitor: Monitor, db_path: Path) -> None:
    monitor.record_event("p", "startup", "boot", "info")
    monitor.record_event("p", "user_login", "alice", "low")
    monitor.record_event("p", "error", "db down", "critical", data={"code": "E001"})
    monitor.record_event("q", "disk_failure", "disk", "high")
    assert monitor.flush()
    conn = open_reader(db_path)
    assert [e.description for e in queries.events(conn, min_severity="high")] == ["disk", "db down"]
    assert [e.description for e in queries.events(conn, category="user")] == ["alice"]
    assert [e.description for e in queries.events(conn, category="error")] == ["disk", "db down"]
    (crit,) = queries.events(conn, min_severity="critical")
    assert crit.data == {"code": "E001"} and crit.severity == "critical" and crit.id is not None


def test_snapshots_by_plugin_and_by_id(monitor: Monitor, db_path: Path) -> None:
    monitor.create_snapshot("p", {"cpu_usage": 1, "disk_io": {"read_bytes": 5}})
    monitor.create_snapshot("q", {"cpu_usage": 2, "request_count": 7})
    assert monitor.flush()
    conn = open_reader(db_path)
    both = queries.snapshots(conn)
    assert [s.plugin_id for s in both] == ["q", "p"]
    (p,) = queries.snapshots(conn, plugin_id="p")
    assert p.disk_io == {"read_bytes": 5} and p.network_io == {} and p.memory_usage == 0.0
    assert queries.snapshot(conn, both[0].id).request_count == 7
    assert queries.snapshot(conn, 12345) is None


def test_reader_is_read_only(monitor: Monitor, db_path: Path, reader) -> None:
    with pytest.raises(Exception, match="readonly"):
        reader.execute("DELETE FROM plugin_logs")


def test_opening_something_that_is_not_a_database_names_the_path(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=str(garbage)):
        open_writer(garbage)
    assert garbage.read_bytes() == b"this is not sqlite" * 100  # never overwritten
    folder = tmp_path / "folder.db"
    folder.mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        open_writer(folder)
    with pytest.raises(StoreError, match="no database here yet"):
        open_reader(tmp_path / "missing.db")
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match="not a pmon database"):
        open_reader(empty)


def test_newer_schema_is_refused(db_path: Path) -> None:
    conn = open_writer(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer than this pmon"):
        open_writer(db_path)


def test_row_counts(monitor: Monitor, db_path: Path) -> None:
    monitor.record_metric("p", "cpu_usage", 1)
    monitor.record_log("p", "info", "x")
    assert monitor.flush()
    conn = open_reader(db_path)
    assert queries.row_counts(conn) == {"metrics": 1, "logs": 1, "events": 0, "snapshots": 0, "plugins": 1}


def _aligned(now: float, span: float, points: int) -> tuple[float, float]:
    """[since, until) with bucket edges on multiples of the bucket width, as the console asks."""
    width = span / points
    until = (int(now // width) + 1) * width
    return until - points * width, until


def test_series_from_rollups_equals_series_from_raw_points(monitor: Monitor, db_path: Path) -> None:
    import random

    from pmon.store.rollups import roll_up

    now = 1_700_000_000.0
    rng = random.Random(3)
    for i in range(3 * 24 * 120):  # three days, a point every 30 s with jitter
        at = now - 3 * 86400 + i * 30 + rng.random()
        monitor.record_metric("p", "response_time", round(rng.uniform(0, 500), 3), timestamp=at)
        if i % 5000 == 0:
            assert monitor.flush()
    assert monitor.flush()
    ranges = [(_aligned(now, span, 120), 120) for span in (6 * 3600, 86400, 3 * 86400, 7 * 86400)]
    ranges.append(((now - 2 * 86400, now - 3600), 10))  # edges on no whole minute: rollup rows by their start
    conn = open_reader(db_path)
    raw = [queries.series(conn, "p", "response_time", since, until, points) for (since, until), points in ranges]
    roll_up(open_writer(db_path), now)
    writer = open_writer(db_path)
    covered = writer.execute("SELECT value FROM pmon_state WHERE key = 'rollup_covered_ms'").fetchone()[0]
    writer.execute("DELETE FROM metric_points WHERE ts_ms < ?", (covered,))  # from now on only the rollups know
    for ((since, until), points), expected in zip(ranges[:-1], raw):
        found = queries.series(conn, "p", "response_time", since, until, points)
        assert [(p.timestamp, pytest.approx(p.avg, rel=1e-12), p.min, p.max, p.count) for p in found] == \
            [(p.timestamp, p.avg, p.min, p.max, p.count) for p in expected]
    (since, until), points = ranges[-1]
    unaligned = queries.series(conn, "p", "response_time", since, until, points)
    assert [p.timestamp for p in unaligned] == [p.timestamp for p in raw[-1]]
    assert abs(sum(p.count for p in unaligned) - sum(p.count for p in raw[-1])) <= 2
    assert queries.series(conn, "p", "response_time", now - 600, now, 20)  # 30 s buckets: raw points, none left


def test_series_of_weeks_whose_points_were_pruned_comes_from_the_rollups(monitor: Monitor, db_path: Path) -> None:
    from pmon.config import RetentionConfig
    from pmon.store.retention import prune

    now = 1_700_000_000.0 - 1_700_000_000.0 % 3600
    for i in range(40 * 144):  # 40 days, a point every 10 minutes
        monitor.record_metric("p", "cpu_usage", float(i % 50), timestamp=now - 40 * 86400 + i * 600)
    assert monitor.flush()
    report = prune(db_path, RetentionConfig(days=30, minute_rollup_days=35), now=now)
    assert report.deleted["metric_points"] == 10 * 144
    conn = open_reader(db_path)
    for points in (96, 64, 480):  # buckets of 1 hour, 90 minutes, 12 minutes over days 40..36 ago
        found = queries.series(conn, "p", "cpu_usage", now - 40 * 86400, now - 36 * 86400, points)
        assert sum(p.count for p in found) == 4 * 144  # minute rollups are gone there: hour rows, by their start
        assert min(p.min for p in found) == 0 and max(p.max for p in found) == 49
    recent = queries.series(conn, "p", "cpu_usage", now - 86400, now, 120)  # 12-minute buckets: minute rollups
    assert sum(p.count for p in recent) == 144 and {p.count for p in recent} == {1, 2}

"""Minute and hour rollups, on real files written through the API: every point counted once, whatever happens."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
from pathlib import Path

import pytest

from pmon import Monitor
from pmon.store import rollups
from pmon.store.rollups import HOUR_MS, MINUTE_MS, WriteSteps, roll_up, rollup_watermark
from pmon.store.schema import SCHEMA_V1, SCHEMA_VERSION, open_reader, open_writer

NOW = 1_700_000_000.0 - 1_700_000_000.0 % 3600 + 1800  # half past an hour


def record(monitor: Monitor, points: list[tuple[str, str, float, float]]) -> None:
    for plugin, metric, value, ts in points:
        monitor.record_metric(plugin, metric, value, timestamp=ts)
    assert monitor.flush()


def some_points(count: int, since: float, until: float, seed: int = 1) -> list[tuple[str, str, float, float]]:
    """Random points of four series, with repeated timestamps (the last value is then the largest)."""
    rng = random.Random(seed)
    series = [("alpha", "cpu_usage"), ("alpha", "memory_usage"), ("beta", "cpu_usage"), ("gamma", "throughput")]
    found = []
    for _ in range(count):
        plugin, metric = rng.choice(series)
        ts = round(rng.uniform(since, until), 3) if rng.random() > 0.1 else round(since + 3600, 3)
        found.append((plugin, metric, round(rng.uniform(-50, 150), 2), ts))
    return found


def raw_aggregate(db_path: Path, width_ms: int) -> dict[tuple[int, int], tuple]:
    """(series, bucket) -> (count, sum, min, max, last, last_ts) straight from metric_points."""
    conn = open_reader(db_path)
    found = {}
    for series_id, bucket, count, total, low, high, last_ts in conn.execute(
            "SELECT series_id, ts_ms - ts_ms % ?1 AS bucket, count(*), sum(value), min(value), max(value), max(ts_ms) "
            "FROM metric_points GROUP BY series_id, bucket", (width_ms,)):
        last = conn.execute("SELECT value FROM metric_points WHERE series_id = ? AND ts_ms = ? "
                            "ORDER BY value DESC LIMIT 1", (series_id, last_ts)).fetchone()[0]
        found[(series_id, bucket)] = (count, pytest.approx(total, rel=1e-12, abs=1e-9), low, high, last, last_ts)
    conn.close()
    return found


def rolled(db_path: Path, table: str) -> dict[tuple[int, int], tuple]:
    conn = open_reader(db_path)
    found = {(series_id, bucket): rest for series_id, bucket, *rest in conn.execute(
        f"SELECT series_id, bucket_ms, count, sum, min, max, last, last_ts_ms FROM {table}")}
    conn.close()
    return {key: tuple(value) for key, value in found.items()}


def assert_rollups_match_raw(db_path: Path) -> None:
    assert rolled(db_path, "metric_rollups_1m") == raw_aggregate(db_path, MINUTE_MS)
    assert rolled(db_path, "metric_rollups_1h") == raw_aggregate(db_path, HOUR_MS)


def test_rollups_hold_count_sum_min_max_and_last_of_the_raw_points(monitor: Monitor, db_path: Path) -> None:
    record(monitor, some_points(3000, NOW - 5 * 3600, NOW - 120))
    conn = open_writer(db_path)
    result = roll_up(conn, NOW)
    assert result.points == 3000 and result.late_points == 0 and result.complete
    assert_rollups_match_raw(db_path)
    assert rollup_watermark(conn) == (int(NOW * 1000) - MINUTE_MS, result.last_id)


def test_running_twice_counts_nothing_twice(monitor: Monitor, db_path: Path) -> None:
    record(monitor, some_points(1000, NOW - 3 * 3600, NOW - 120))
    conn = open_writer(db_path)
    assert roll_up(conn, NOW).points == 1000
    before = rolled(db_path, "metric_rollups_1m"), rolled(db_path, "metric_rollups_1h")
    again = roll_up(conn, NOW)
    assert (again.points, again.rows_written) == (0, 0)
    assert (rolled(db_path, "metric_rollups_1m"), rolled(db_path, "metric_rollups_1h")) == before
    assert_rollups_match_raw(db_path)


def test_points_of_the_last_minute_wait_and_are_then_counted_once(monitor: Monitor, db_path: Path) -> None:
    record(monitor, [("alpha", "cpu_usage", float(i), NOW - 300 + i) for i in range(300)])
    conn = open_writer(db_path)
    first = roll_up(conn, NOW + 30)
    assert first.points == 240  # the current minute and a minute of grace stay raw
    second = roll_up(conn, NOW + 120)
    assert second.points == 60
    assert_rollups_match_raw(db_path)


def test_late_points_backfilled_with_old_timestamps_are_counted_once(monitor: Monitor, db_path: Path) -> None:
    record(monitor, some_points(1500, NOW - 6 * 3600, NOW - 3 * 3600, seed=2))
    conn = open_writer(db_path)
    roll_up(conn, NOW)
    # Backfilled: before the first point, among rolled-up minutes, in the hour being rolled up...
    record(monitor, some_points(400, NOW - 10 * 3600, NOW - 4 * 3600, seed=3))
    record(monitor, some_points(300, NOW - 2 * 3600, NOW - 60 * 5, seed=4))
    record(monitor, some_points(200, NOW + 3600, NOW + 7000, seed=5))  # ...and new points after a gap
    result = roll_up(conn, NOW + 7400)
    assert result.late_points == 700 and result.points == 900
    assert roll_up(conn, NOW + 7400).points == 0
    assert_rollups_match_raw(db_path)


def test_small_steps_give_the_same_rollups(monitor: Monitor, db_path: Path) -> None:
    record(monitor, some_points(2000, NOW - 8 * 3600, NOW - 120, seed=5))
    conn = open_writer(db_path)
    steps = WriteSteps(conn, max_lock_ms=50, max_rows=40, first_rows=40)
    result = roll_up(conn, NOW, steps=steps)
    assert result.points == 2000 and result.steps > 20
    assert steps.max_step_rows <= 40  # four series: a minute of them never needs more than eight rows
    record(monitor, some_points(300, NOW - 7 * 3600, NOW - 2 * 3600, seed=6))
    tiny = WriteSteps(conn, max_lock_ms=50, max_rows=10, first_rows=10)
    roll_up(conn, NOW, steps=tiny)
    assert tiny.max_step_rows <= 10
    assert_rollups_match_raw(db_path)


def _roll_up_in_child(path: str) -> None:
    conn = open_writer(path)
    roll_up(conn, NOW, max_lock_ms=5)
    conn.close()


def test_roll_ups_in_two_processes_at_once_count_every_point_once(monitor: Monitor, db_path: Path) -> None:
    record(monitor, some_points(6000, NOW - 20 * 3600, NOW - 120, seed=7))
    monitor.stop_monitoring()
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_roll_up_in_child, args=(str(db_path),)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    roll_up(open_writer(db_path), NOW)  # finishes whatever a child left when it saw the other's progress
    assert_rollups_match_raw(db_path)


def test_a_version_1_database_is_upgraded_in_place_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode = WAL")
    old.executescript(SCHEMA_V1)
    old.execute("INSERT INTO metric_series (id, plugin_id, metric_type) VALUES (1, 'alpha', 'cpu_usage')")
    old.executemany("INSERT INTO metric_points (series_id, ts_ms, value) VALUES (1, ?, ?)",
                    [(int((NOW - 3600 + i) * 1000), float(i)) for i in range(600)])
    old.execute("INSERT INTO plugin_logs (plugin_id, level, message, timestamp) VALUES ('alpha', 'info', 'kept', ?)",
                (NOW,))
    old.execute("PRAGMA user_version = 1")
    old.close()

    conn = open_writer(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*), sum(value) FROM metric_points").fetchone() == (600, sum(range(600)))
    assert conn.execute("SELECT message FROM plugin_logs").fetchall() == [("kept",)]
    assert rollup_watermark(conn) is None
    assert roll_up(conn, NOW).points == 600
    assert_rollups_match_raw(path)


def test_the_time_pass_reads_points_through_the_covering_index(db_path: Path) -> None:
    conn = open_writer(db_path)
    plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {rollups._TIME_PASS}", (0, 1, 2)))
    assert "COVERING INDEX metric_points_series_time" in plan and "TEMP B-TREE" not in plan


class StepsThatLetAnotherRollUpGoFirst(WriteSteps):
    """Before its first commit, another connection rolls up everything: this run's deltas are then stale."""

    def __init__(self, conn: sqlite3.Connection, other: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.other: sqlite3.Connection | None = other

    def run(self, write):  # type: ignore[no-untyped-def]
        if self.other is not None:
            other, self.other = self.other, None
            assert roll_up(other, NOW).complete
        return super().run(write)


def test_a_roll_up_that_finds_the_watermarks_moved_gives_up_without_counting(monitor: Monitor, db_path: Path) -> None:
    record(monitor, some_points(500, NOW - 3 * 3600, NOW - 3600, seed=8))
    roll_up(open_writer(db_path), NOW - 2 * 3600)
    record(monitor, some_points(500, NOW - 5 * 3600, NOW - 120, seed=9))  # late and new points
    conn = open_writer(db_path)
    stale = roll_up(conn, NOW, steps=StepsThatLetAnotherRollUpGoFirst(conn, open_writer(db_path)))
    assert not stale.complete and stale.rows_written == 0
    assert_rollups_match_raw(db_path)

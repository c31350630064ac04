"""Retention passes on real files: old rows go, recent rows and the rollups of what went stay, steps stay small."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pmon import Monitor
from pmon.config import RetentionConfig
from pmon.store import queries
from pmon.store.retention import HEADROOM_SUFFIX, MB, Pruner, prune
from pmon.store.rollups import MAX_STEP_ROWS, rollup_watermark
from pmon.store.schema import open_reader, open_writer

DAY = 86400.0
NOW = 1_700_000_000.0 - 1_700_000_000.0 % 3600
SERIES = (("alpha", "cpu_usage"), ("alpha", "memory_usage"), ("beta", "response_time"))


def fill(monitor: Monitor, days: float = 40, every: float = 600, message: str = "line") -> None:
    """Three series, one point each ``every`` seconds, and a log, event and snapshot an hour, over ``days``."""
    start = NOW - days * DAY
    ts = start
    step = 0
    while ts < NOW:
        for plugin, metric in SERIES:
            monitor.record_metric(plugin, metric, float(step % 97), timestamp=ts)
        step += 1
        ts = start + step * every
        if step % 10_000 == 0:
            assert monitor.flush(timeout=60)  # keep the queue under max_buffer
    for hour in range(int(days * 24)):
        at = start + hour * 3600
        monitor.record_log("alpha", "info", f"{message} {hour}", timestamp=at)
        monitor.record_event("beta", "tick", f"hour {hour}", timestamp=at)
        monitor.create_snapshot("alpha", {"cpu_usage": hour}, timestamp=at)
    assert monitor.flush(timeout=60)


def count(db_path: Path, sql: str, *params: float) -> int:
    conn = open_reader(db_path)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


TIMED = {"plugin_logs": "timestamp", "plugin_events": "timestamp", "performance_snapshots": "timestamp"}


def test_old_rows_go_from_every_table_and_recent_rows_stay(monitor: Monitor, db_path: Path) -> None:
    fill(monitor)
    cutoff = NOW - 30 * DAY
    recent_points = count(db_path, "SELECT count(*) FROM metric_points WHERE ts_ms >= ?", cutoff * 1000)
    old_points = count(db_path, "SELECT count(*) FROM metric_points WHERE ts_ms < ?", cutoff * 1000)
    recent = {table: count(db_path, f"SELECT count(*) FROM {table} WHERE timestamp >= ?", cutoff) for table in TIMED}

    report = prune(db_path, RetentionConfig(), now=NOW)

    assert report.complete and report.busy == 0 and not report.errors
    assert report.rolled_up == old_points + recent_points
    assert count(db_path, "SELECT count(*) FROM metric_points WHERE ts_ms < ?", cutoff * 1000) == 0
    assert count(db_path, "SELECT count(*) FROM metric_points") == recent_points
    for table in TIMED:
        assert count(db_path, f"SELECT count(*) FROM {table} WHERE timestamp < ?", cutoff) == 0
        assert count(db_path, f"SELECT count(*) FROM {table}") == recent[table]
        assert report.deleted[table] == 40 * 24 - recent[table]
    assert report.deleted["metric_points"] == old_points
    minute_cutoff = (NOW - 35 * DAY) * 1000
    assert count(db_path, "SELECT count(*) FROM metric_rollups_1m WHERE bucket_ms < ?", minute_cutoff) == 0
    assert count(db_path, "SELECT count(*) FROM metric_rollups_1m") > 0
    assert count(db_path, "SELECT sum(count) FROM metric_rollups_1h") == old_points + recent_points
    assert report.deleted["metric_rollups_1h"] == 0
    assert 0 < report.max_step_rows <= MAX_STEP_ROWS
    assert report.steps > 0 and report.max_hold_ms >= report.median_hold_ms > 0
    assert report.deleted_total == sum(report.deleted.values()) and "deleted" in report.summary()

    # The pruned weeks still chart, from the hour rollups.
    conn = open_reader(db_path)
    old = queries.series(conn, "alpha", "cpu_usage", NOW - 40 * DAY, NOW - 30 * DAY, 40)
    assert len(old) == 40 and sum(p.count for p in old) == old_points // 3


def test_pruning_again_finds_nothing_to_do(monitor: Monitor, db_path: Path) -> None:
    fill(monitor, days=33)
    prune(db_path, RetentionConfig(), now=NOW)
    again = prune(db_path, RetentionConfig(), now=NOW)
    assert again.deleted_total == 0 and again.rolled_up == 0 and again.complete


def test_steps_stay_under_the_row_cap(monitor: Monitor, db_path: Path) -> None:
    fill(monitor, days=35, every=300)
    report = Pruner(db_path, RetentionConfig(), max_step_rows=100).prune(now=NOW)
    assert report.complete
    assert report.max_step_rows <= 100
    assert report.steps >= report.deleted_total / 100
    assert report.deleted["metric_points"] == 3 * 5 * 288


def test_older_than_replaces_days_for_raw_rows_only(monitor: Monitor, db_path: Path) -> None:
    fill(monitor, days=12)
    report = prune(db_path, RetentionConfig(days=30, minute_rollup_days=35), now=NOW, older_than=5 * DAY)
    cutoff = NOW - 5 * DAY
    assert count(db_path, "SELECT min(ts_ms) FROM metric_points") >= cutoff * 1000
    assert count(db_path, "SELECT count(*) FROM metric_points") == 3 * 5 * 144
    for table in TIMED:
        assert count(db_path, f"SELECT min(timestamp) FROM {table}") >= cutoff
    assert report.deleted["metric_rollups_1m"] == 0  # rollups keep their own ages
    assert count(db_path, "SELECT sum(count) FROM metric_rollups_1m") == 3 * 12 * 144


def test_pruning_everything_keeps_what_is_not_rolled_up_and_the_rollups_of_the_rest(monitor: Monitor,
                                                                                      db_path: Path) -> None:
    fill(monitor, days=2, every=20)
    for second in range(300):  # the last five minutes, and a late point backfilled last with an old timestamp
        monitor.record_metric("alpha", "cpu_usage", 1.0, timestamp=NOW + second)
    monitor.record_metric("beta", "response_time", 5.0, timestamp=NOW - 3 * DAY)
    assert monitor.flush()
    total = count(db_path, "SELECT count(*) FROM metric_points")
    top = count(db_path, "SELECT max(id) FROM metric_points")

    report = prune(db_path, RetentionConfig(), now=NOW + 300, older_than=0)

    covered, last_id = rollup_watermark(open_reader(db_path))
    assert covered == (NOW + 300 - 60) * 1000 and last_id == top
    left = open_reader(db_path).execute("SELECT id, ts_ms FROM metric_points").fetchall()
    assert sorted(left) == sorted(row for row in left if row[1] >= covered or row[0] >= last_id)
    assert (top, (NOW - 3 * DAY) * 1000) in left  # the newest row stays, so SQLite never reuses its id
    assert len(left) == 61 and report.deleted["metric_points"] == total - 61
    assert count(db_path, "SELECT sum(count) FROM metric_rollups_1h") == total - 60
    assert count(db_path, "SELECT sum(count) FROM metric_rollups_1m") == total - 60


def used_mb(db_path: Path) -> float:
    conn = open_reader(db_path)
    try:
        pages, free, size = (conn.execute(f"PRAGMA {name}").fetchone()[0]
                             for name in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * size / MB
    finally:
        conn.close()


def test_a_size_cap_deletes_the_oldest_rows_first_until_under_ninety_percent(monitor: Monitor,
                                                                              db_path: Path) -> None:
    fill(monitor, days=6, every=10, message="x" * 400)
    prune(db_path, RetentionConfig(days=3650), now=NOW)  # roll up, nothing is old enough
    before = used_mb(db_path)
    cap = round(before / 2, 1)

    report = prune(db_path, RetentionConfig(days=3650, max_db_mb=cap), now=NOW)

    assert report.complete and not report.over_cap
    assert used_mb(db_path) <= 0.9 * cap and report.used_mb <= 0.9 * cap
    assert report.deleted["metric_points"] > 0 and report.deleted["plugin_logs"] > 0
    conn = open_reader(db_path)
    oldest_point = conn.execute("SELECT min(ts_ms) FROM metric_points").fetchone()[0] / 1000
    points_after = conn.execute("SELECT count(*) FROM metric_points WHERE ts_ms >= ?",
                                (oldest_point * 1000,)).fetchone()[0]
    assert points_after == conn.execute("SELECT count(*) FROM metric_points").fetchone()[0]
    for table in TIMED:  # each table lost a prefix in time: what is left is everything after its oldest row
        oldest = conn.execute(f"SELECT min(timestamp) FROM {table}").fetchone()[0]
        hours_cut = int((oldest - (NOW - 6 * DAY)) / 3600)
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 6 * 24 - hours_cut
        assert abs(oldest - oldest_point) <= 3 * 3600  # every table was cut at about the same time
    rolled = 3 * (6 * 8640 - 6)  # all but the last minute (a minute of grace)
    assert conn.execute("SELECT sum(count) FROM metric_rollups_1h").fetchone()[0] == rolled  # rollups stay
    headroom = Path(f"{db_path}{HEADROOM_SUFFIX}")
    assert headroom.exists() and headroom.stat().st_size >= MB


def test_a_locked_database_makes_the_pass_report_busy_and_a_later_pass_succeed(monitor: Monitor,
                                                                             db_path: Path) -> None:
    fill(monitor, days=32)
    monitor.stop_monitoring()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        blocked = Pruner(db_path, RetentionConfig(), busy_timeout_ms=50).prune(now=NOW)
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert blocked.busy >= 1 and not blocked.complete and blocked.deleted_total == 0
    assert "busy" in blocked.summary()

    later = Pruner(db_path, RetentionConfig(), busy_timeout_ms=50).prune(now=NOW)
    assert later.complete and later.busy == 0
    assert later.deleted["metric_points"] == 3 * 2 * 144 and later.deleted["plugin_logs"] == 2 * 24


def test_a_set_stop_event_ends_the_pass_at_once(monitor: Monitor, db_path: Path) -> None:
    fill(monitor, days=32)
    stop = threading.Event()
    stop.set()
    report = prune(db_path, RetentionConfig(), now=NOW, stop=stop)
    assert not report.complete and report.deleted_total == 0


def test_the_daemon_loop_prunes_and_stops_promptly(monitor: Monitor, db_path: Path) -> None:
    fill(monitor, days=31)  # all older than 30 days before the clock's now
    pruner = Pruner(db_path, RetentionConfig(prune_interval=3600))
    stop = threading.Event()
    thread = threading.Thread(target=pruner.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 60
    while pruner.last_report is None and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert pruner.last_report is not None and pruner.last_report.deleted["plugin_logs"] == 31 * 24


def test_a_database_without_metrics_is_pruned(tmp_path: Path) -> None:
    path = tmp_path / "logs-only.db"
    conn = open_writer(path)
    conn.executemany("INSERT INTO plugin_logs (plugin_id, level, message, timestamp) VALUES ('p', 'info', 'x', ?)",
                     [(NOW - day * DAY,) for day in range(40)])
    conn.close()
    report = prune(path, RetentionConfig(), now=NOW)
    assert report.deleted["plugin_logs"] == 9 and report.deleted["metric_points"] == 0


@pytest.mark.parametrize("minutes", [60, 90, 12])
def test_series_over_a_pruned_range_matches_what_the_raw_points_said(monitor: Monitor, db_path: Path,
                                                                     minutes: int) -> None:
    fill(monitor, days=33, every=120)
    since, until = NOW - 33 * DAY, NOW - 31 * DAY
    width = minutes * 60_000
    points = int((until - since) * 1000 // width)
    conn = open_reader(db_path)
    expected = [(bucket * width / 1000 + since, avg, low, high, n) for bucket, avg, low, high, n in conn.execute(
        "SELECT (ts_ms - ?1) / ?2 AS bucket, avg(value), min(value), max(value), count(*) FROM metric_points p "
        "JOIN metric_series s ON s.id = p.series_id WHERE s.plugin_id = 'beta' AND ts_ms >= ?1 AND ts_ms < ?3 "
        "GROUP BY bucket", (int(since * 1000), width, int(until * 1000)))]
    conn.close()
    prune(db_path, RetentionConfig(), now=NOW)
    assert count(db_path, "SELECT count(*) FROM metric_points WHERE ts_ms < ?", until * 1000) == 0
    found = queries.series(open_reader(db_path), "beta", "response_time", since, until, points)
    assert [(p.timestamp, pytest.approx(p.avg), p.min, p.max, p.count) for p in found] == expected


def _backfill(path: str, batches: int, start: float) -> None:
    """Another process: points with timestamps long past retention, committed a batch at a time."""
    recorder = Monitor(path, flush_interval=0.01)
    for batch in range(batches):
        for i in range(500):
            recorder.record_metric("late", "cpu_usage", 1.0, timestamp=start + batch * 500 + i)
        assert recorder.flush()
    recorder.stop_monitoring()


def test_points_recorded_while_a_pass_runs_are_never_deleted_before_they_are_rolled_up(db_path: Path) -> None:
    import multiprocessing

    start = time.time() - 33 * DAY  # past the raw retention, within the minute rollups
    child = multiprocessing.get_context("spawn").Process(target=_backfill, args=(str(db_path), 60, start))
    child.start()
    passes = 0
    while child.is_alive() or passes == 0:
        if db_path.exists():
            report = Pruner(db_path, RetentionConfig(), max_step_rows=200).prune(older_than=0)
            assert not report.errors or report.busy
            passes += 1
        time.sleep(0.01)
    child.join()
    assert child.exitcode == 0 and passes >= 2
    prune(db_path, RetentionConfig(), older_than=0)
    # Every point deleted was counted first: the rollups hold all 30,000, raw or pruned.
    assert count(db_path, "SELECT sum(count) FROM metric_rollups_1h") == 60 * 500
    assert count(db_path, "SELECT sum(count) FROM metric_rollups_1m") == 60 * 500
    assert count(db_path, "SELECT count(*) FROM metric_points") <= 1

"""Monitor behaviour a host application relies on: caches, buffering, threads, shutdown."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlite_rows import rows

from pmon import DetailedMetric, Monitor, PluginLog, validate
from pmon.config import Config, StoreConfig


def test_caches_are_bounded_and_hold_dataclasses(db_path: Path) -> None:
    monitor = Monitor(db_path, metrics_cache=5, logs_cache=3, events_cache=2, flush_interval=0.05)
    for i in range(20):
        monitor.record_metric("p", "cpu_usage", i)
        monitor.record_log("p", "info", f"line {i}")
        monitor.record_event("p", "tick", f"event {i}", "info")
    assert (len(monitor.metrics_cache), len(monitor.logs_cache), len(monitor.events_cache)) == (5, 3, 2)
    newest = monitor.metrics_cache[-1]
    assert isinstance(newest, DetailedMetric) and newest.value == 19 and newest.timestamp.tzinfo is not None
    assert [log.message for log in monitor.logs_cache] == ["line 17", "line 18", "line 19"]
    assert isinstance(monitor.logs_cache[0], PluginLog)
    assert monitor.flush()
    assert rows(db_path, "SELECT count(*) FROM plugin_metrics")[0][0] == 20  # the database keeps everything
    monitor.stop_monitoring()


def test_recording_starts_lazily_and_stop_flushes(db_path: Path) -> None:
    monitor = Monitor(db_path, flush_interval=60)  # no periodic commit during the test
    monitor.record_metric("p", "cpu_usage", 1)
    assert monitor.status()["writer_running"]
    assert monitor.stop_monitoring()
    assert rows(db_path, "SELECT count(*) FROM plugin_metrics")[0][0] == 1
    assert not monitor.status()["writer_running"]
    monitor.record_metric("p", "cpu_usage", 2)  # recording after stop starts again
    assert monitor.stop_monitoring()
    assert rows(db_path, "SELECT value FROM plugin_metrics ORDER BY id") == [(1.0,), (2.0,)]


def test_interpreter_exit_flushes_without_stop(tmp_path: Path) -> None:
    db = tmp_path / "exit.db"
    script = (f"from pmon import Monitor\nm = Monitor({str(db)!r}, flush_interval=3600)\n"
              "for i in range(1000): m.record_metric('p', 'cpu_usage', i)\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert rows(db, "SELECT count(*) FROM plugin_metrics")[0][0] == 1000


def test_full_buffer_drops_oldest_and_counts_while_storage_is_locked(db_path: Path) -> None:
    config = Config(store=StoreConfig(busy_timeout_ms=50))
    monitor = Monitor(db_path, config=config, flush_interval=0.02, max_buffer=100, batch_size=10)
    monitor.record_metric("p", "cpu_usage", -1)
    assert monitor.flush()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.perf_counter()
        for i in range(1000):
            monitor.record_metric("p", "cpu_usage", i)
        assert time.perf_counter() - started < 5  # never blocked on the lock
        time.sleep(0.3)
        status = monitor.status()
        assert status["write_errors"] >= 1 and "locked" in status["last_error"]
        assert status["dropped"] >= 1000 - 100 - 10
        assert not monitor.flush(timeout=0.2)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert monitor.flush(timeout=30)
    status = monitor.status()
    stored = rows(db_path, "SELECT count(*) FROM plugin_metrics")[0][0]
    assert stored == 1 + 1000 - status["dropped"]
    newest = rows(db_path, "SELECT max(value) FROM plugin_metrics")[0][0]
    assert newest == 999  # the oldest were dropped, the newest kept
    monitor.stop_monitoring()


def test_deleted_folder_is_recreated_and_writing_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    db = folder / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05)
    monitor.record_log("p", "info", "before")
    assert monitor.flush()
    shutil.rmtree(folder)
    monitor.record_log("p", "info", "after")
    assert monitor.flush(timeout=15)
    assert rows(db, "SELECT message FROM plugin_logs") == [("after",)]
    monitor.stop_monitoring()


def test_twenty_threads_record_at_once(monitor: Monitor, db_path: Path) -> None:
    def work(n: int) -> None:
        for i in range(500):
            monitor.record_metric(f"thread_{n}", "throughput", i)
            monitor.record_log(f"thread_{n}", "debug", f"{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert monitor.flush()
    assert rows(db_path, "SELECT count(*) FROM plugin_metrics")[0][0] == 10_000
    assert rows(db_path, "SELECT count(*) FROM plugin_logs")[0][0] == 10_000
    assert rows(db_path, "SELECT count(DISTINCT id) FROM plugins")[0][0] == 20


def test_status_reports_what_an_operator_needs(monitor: Monitor, db_path: Path) -> None:
    monitor.record_metric("p", "cpu_usage", 1)
    assert monitor.flush()
    status = monitor.status()
    assert status["db_path"] == str(db_path)
    assert status["rows_written"]["metrics"] == 1 and status["batches"] >= 1
    assert status["queue_depth"] == 0 and status["dropped"] == 0 and status["write_errors"] == 0
    assert status["db_size_bytes"] > 0 and status["cache_sizes"]["metrics"] == 1


def test_removed_callback_is_not_called(monitor: Monitor) -> None:
    seen = []
    monitor.add_alert_callback(seen.append)
    monitor.record_event("p", "error", "first", "critical")
    assert monitor.wait_for_alerts()
    monitor.remove_alert_callback(seen.append)
    monitor.record_event("p", "error", "second", "critical")
    assert monitor.wait_for_alerts()
    assert [e.description for e in seen] == ["first"]


def test_alert_threshold_is_configurable(db_path: Path) -> None:
    monitor = Monitor(db_path, alert_min_severity="low", flush_interval=0.05)
    seen, threads = [], set()
    monitor.add_alert_callback(lambda e: (seen.append(e.severity), threads.add(threading.current_thread())))
    for severity in ("info", "low", "medium", "high", "critical"):
        monitor.record_event("p", "x", "y", severity)
    assert monitor.wait_for_alerts()
    assert seen == ["low", "medium", "high", "critical"]
    assert threading.current_thread() not in threads  # callbacks run off the recording thread
    monitor.stop_monitoring()


def test_rows_of_plugin_ids_past_the_cap_are_dropped_counted_and_never_raise(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(validate, "MAX_PLUGIN_IDS", 3)
    monitor = Monitor(db_path, flush_interval=0.05, sample_interval=0)
    for plugin in ("a", "b", "c", "d", "e", "a"):
        monitor.record_metric(plugin, "cpu_usage", 1)
        monitor.record_log(plugin, "info", "x")
        monitor.record_event(plugin, "tick", "x")
        monitor.create_snapshot(plugin, {})
    assert monitor.accepts_plugin("c") and not monitor.accepts_plugin("f")
    with monitor.track("f"):
        pass
    assert monitor.flush()
    status = monitor.status()
    assert (status["plugins_seen"], status["plugins_max"]) == (3, 3)
    assert status["plugin_overflow_rows"] == 2 * 4 + 1 and status["plugin_overflow_last"] == "f"
    assert rows(db_path, "SELECT id FROM plugins ORDER BY id") == [("a",), ("b",), ("c",)]
    assert rows(db_path, "SELECT count(*) FROM plugin_metrics")[0][0] == 4
    warnings = [r.getMessage() for r in caplog.records if r.name == "pmon.monitor"]
    assert len(warnings) == 1 and "'d'" in warnings[0]  # once a minute, naming an example
    monitor.stop_monitoring()


def test_status_answers_with_the_error_when_pmon_toml_is_broken(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "pmon.toml"
    broken.write_text("[monitor\n")
    monkeypatch.setenv("PMON_CONFIG", str(broken))
    monkeypatch.delenv("PMON_DB", raising=False)
    status = Monitor().status()
    assert status["db_path"] is None and "invalid TOML" in status["last_error"]

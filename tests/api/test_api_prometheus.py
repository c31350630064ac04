"""``/metrics``: what a Prometheus scrape of a real store sees, parsed with prometheus_client's own parser."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pmon.analysis.alerting import AlertState, Transition
from pmon.api.prometheus import StoreCollector, exposition
from pmon.monitor import Monitor
from pmon.store import alert_store
from pmon.store.retention import prune
from pmon.store.schema import SCHEMA_V1, SCHEMA_V2, open_writer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
NOW = time.time()


def parse(collector: StoreCollector) -> Samples:
    """One scrape as Prometheus would read it: every sample by name and labels."""
    text = exposition(collector).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[Monitor]:
    m = Monitor(tmp_path / "p.db", flush_interval=0.05)
    yield m
    m.stop_monitoring()


@pytest.fixture
def collector(monitor: Monitor) -> Iterator[StoreCollector]:
    scraper = StoreCollector(monitor.db_path, monitor.status)
    yield scraper
    scraper.close()


def test_every_plugin_is_named_with_its_latest_value_and_when_it_was_recorded(
        monitor: Monitor, collector: StoreCollector) -> None:
    monitor.record_metric("web", "cpu_usage", 80.0, timestamp=NOW - 20)
    monitor.record_metric("web", "cpu_usage", 12.5, timestamp=NOW - 10)
    monitor.record_metric("web", "process.threads", 7, timestamp=NOW - 5)
    monitor.record_metric("db-1:pg.main", "memory_usage", 512.0, timestamp=NOW - 3)
    monitor.record_log("quiet", "info", "no metrics, still a plugin", timestamp=NOW - 1)
    monitor.flush()
    samples = parse(collector)
    assert value(samples, "pmon_store_up") == 1
    assert named(samples, "pmon_metric") == {
        frozenset({("plugin", "web"), ("metric", "cpu_usage")}): 12.5,
        frozenset({("plugin", "web"), ("metric", "process.threads")}): 7.0,
        frozenset({("plugin", "db-1:pg.main"), ("metric", "memory_usage")}): 512.0,
    }
    assert value(samples, "pmon_metric_timestamp_seconds", plugin="web", metric="cpu_usage") == pytest.approx(
        NOW - 10, abs=0.001)
    plugins = {dict(labels)["plugin"] for labels in named(samples, "pmon_plugin_up")}
    assert plugins == {"web", "db-1:pg.main", "quiet"}
    last_seen = value(samples, "pmon_plugin_last_seen_timestamp_seconds", plugin="quiet")
    assert last_seen == pytest.approx(NOW - 1, abs=0.001)


def test_a_stopped_plugin_is_down_and_the_others_up(monitor: Monitor, collector: StoreCollector) -> None:
    monitor.record_metric("web", "cpu_usage", 1.0)
    monitor.record_metric("worker", "cpu_usage", 1.0)
    monitor.record_event("worker", "stopped", "process exited", "high")
    monitor.flush()
    samples = parse(collector)
    assert value(samples, "pmon_plugin_up", plugin="web") == 1
    assert value(samples, "pmon_plugin_up", plugin="worker") == 0


def test_logs_and_events_are_counted_exactly_and_grow_by_the_new_rows_only(
        monitor: Monitor, collector: StoreCollector) -> None:
    for i in range(5):
        monitor.record_log("web", "error" if i < 2 else "info", f"line {i}")
    monitor.record_event("web", "deploy", "v2 rolled out", "medium")
    monitor.flush()
    first = parse(collector)
    assert named(first, "pmon_logs_total") == {frozenset({("plugin", "web"), ("level", "error")}): 2,
                                               frozenset({("plugin", "web"), ("level", "info")}): 3}
    assert value(first, "pmon_events_total", plugin="web", severity="medium") == 1

    for _ in range(3):
        monitor.record_log("web", "error", "again")
    monitor.record_log("api", "warning", "new plugin")
    monitor.record_event("web", "deploy", "v3", "medium")
    monitor.flush()
    second = parse(collector)
    assert value(second, "pmon_logs_total", plugin="web", level="error") == 5
    assert value(second, "pmon_logs_total", plugin="web", level="info") == 3
    assert value(second, "pmon_logs_total", plugin="api", level="warning") == 1
    assert value(second, "pmon_events_total", plugin="web", severity="medium") == 2
    assert named(parse(collector), "pmon_logs_total") == named(second, "pmon_logs_total")  # nothing new: no change


def test_a_big_store_is_counted_once_then_only_new_rows_are_read_and_pruning_never_lowers_a_counter(
        monitor: Monitor, collector: StoreCollector) -> None:
    old = NOW - 86_400
    for start in range(0, 200_000, 50_000):  # in steps, so the write buffer never drops
        for i in range(start, start + 50_000):
            monitor.record_log(f"p{i % 4}", "info", "old line", timestamp=old + i / 1000)
        monitor.flush()
    assert sum(named(parse(collector), "pmon_logs_total").values()) == 200_000

    report = prune(monitor.db_path, older_than=3600)
    assert report.complete and report.deleted["plugin_logs"] == 200_000
    for i in range(10):
        monitor.record_log("p0", "error", f"new {i}")
    monitor.flush()
    samples = parse(collector)  # a recount would see 10 rows; the counters keep the pruned ones
    assert value(samples, "pmon_logs_total", plugin="p0", level="info") == 50_000
    assert value(samples, "pmon_logs_total", plugin="p0", level="error") == 10
    assert sum(named(samples, "pmon_logs_total").values()) == 200_010


def test_concurrent_scrapes_from_executor_threads_count_each_row_once(
        monitor: Monitor, collector: StoreCollector) -> None:
    for i in range(100):
        monitor.record_log("web", "info", f"line {i}")
    monitor.flush()
    with ThreadPoolExecutor(max_workers=4) as pool:
        scrapes = list(pool.map(lambda _: parse(collector), range(8)))
    assert {value(s, "pmon_logs_total", plugin="web", level="info") for s in scrapes} == {100}


def transition(rule: str, plugin: str, state: AlertState, severity: str = "high") -> Transition:
    return Transition(rule=rule, plugin_id=plugin, metric="cpu_usage", state=state, previous=AlertState.INACTIVE,
                      value=95.0, threshold=90.0, clear=75.0, comparison=">", severity=severity, since=NOW - 60,
                      at=NOW - 60, description=f"{rule} on {plugin}")


def test_open_alerts_by_state_and_one_sample_per_firing_alert(monitor: Monitor, collector: StoreCollector) -> None:
    monitor.record_metric("web", "cpu_usage", 95.0)
    monitor.flush()
    odd_rule = 'cpu "hot" \\ on\nweb'
    conn = open_writer(monitor.db_path)
    alert_store.save_transitions(conn, [
        transition(odd_rule, "web", AlertState.FIRING, "critical"),
        transition("mem_high", "db.main", AlertState.FIRING),
        transition("cpu_hot", "db.main", AlertState.PENDING),
        transition("gone", "web", AlertState.FIRING),
        transition("gone", "web", AlertState.RESOLVED),
    ])
    conn.close()
    samples = parse(collector)
    assert value(samples, "pmon_alerts", state="pending") == 1
    assert value(samples, "pmon_alerts", state="firing") == 2
    assert named(samples, "pmon_alert_firing") == {
        frozenset({("rule", odd_rule), ("plugin", "web"), ("severity", "critical")}): 1,
        frozenset({("rule", "mem_high"), ("plugin", "db.main"), ("severity", "high")}): 1,
    }


def test_a_version_2_store_without_alert_tables_has_no_alerts(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_V1 + SCHEMA_V2)
    old.execute("INSERT INTO plugins (id, first_seen, last_seen) VALUES ('web', ?, ?)", (NOW, NOW))
    old.execute("PRAGMA user_version = 2")
    old.commit()
    old.close()
    scraper = StoreCollector(path, dict)
    samples = parse(scraper)
    scraper.close()
    assert value(samples, "pmon_store_up") == 1 and value(samples, "pmon_plugin_up", plugin="web") == 1
    assert value(samples, "pmon_alerts", state="firing") == 0 and named(samples, "pmon_alert_firing") == {}


def test_a_missing_then_unreadable_store_still_serves_health_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    scraper = StoreCollector(path, lambda: {"queue_depth": 3, "uptime_seconds": 9.5})
    missing = parse(scraper)
    assert value(missing, "pmon_store_up") == 0 and value(missing, "pmon_queue_depth") == 3
    assert named(missing, "pmon_metric") == {}

    path.write_bytes(b"this is not an SQLite database, whatever its name says " * 4)
    unreadable = parse(scraper)
    assert value(unreadable, "pmon_store_up") == 0 and value(unreadable, "pmon_uptime_seconds") == 9.5

    path.unlink()
    m = Monitor(path, flush_interval=0.05)
    m.record_metric("web", "cpu_usage", 3.0)
    m.stop_monitoring()
    recovered = parse(scraper)
    scraper.close()
    assert value(recovered, "pmon_store_up") == 1
    assert value(recovered, "pmon_metric", plugin="web", metric="cpu_usage") == 3


def test_the_monitor_health_and_the_api_counters_appear(monitor: Monitor) -> None:
    monitor.record_metric("web", "cpu_usage", 1.0)
    monitor.record_log("web", "info", "hello")
    monitor.flush()
    api = {"requests": 40, "responses_4xx": 3, "responses_5xx": 0, "refused_connections": 1, "open_connections": 2}
    scraper = StoreCollector(monitor.db_path, lambda: {**monitor.status(), "api": api})
    samples = parse(scraper)
    scraper.close()
    assert value(samples, "pmon_rows_written_total", kind="metrics") == 1
    assert value(samples, "pmon_rows_written_total", kind="logs") == 1
    assert value(samples, "pmon_queue_depth") == 0 and value(samples, "pmon_dropped_rows_total") == 0
    assert value(samples, "pmon_write_errors_total") == 0 and value(samples, "pmon_db_size_bytes") > 0
    assert value(samples, "pmon_uptime_seconds") >= 0
    assert value(samples, "pmon_api_requests_total") == 40
    assert value(samples, "pmon_api_error_responses_total", **{"class": "4xx"}) == 3
    assert value(samples, "pmon_api_error_responses_total", **{"class": "5xx"}) == 0
    assert value(samples, "pmon_api_refused_connections_total") == 1
    assert value(samples, "pmon_api_open_connections") == 2
    assert not named(samples, "pmon_api_stream_clients")  # absent from the dict: not exposed


def test_a_failing_health_callback_leaves_the_store_metrics(monitor: Monitor) -> None:
    monitor.record_metric("web", "cpu_usage", 4.0)
    monitor.flush()

    def broken() -> dict[str, Any]:
        raise RuntimeError("status failed")

    scraper = StoreCollector(monitor.db_path, broken)
    samples = parse(scraper)
    scraper.close()
    assert value(samples, "pmon_metric", plugin="web", metric="cpu_usage") == 4
    assert not named(samples, "pmon_queue_depth")


def test_the_collector_does_not_import_the_console() -> None:
    code = ("import sys, pmon.api.prometheus\n"
            "print(sorted(m for m in sys.modules\n"
            "             if m.split('.')[0] in ('textual', 'rich', 'plotext', 'textual_plotext')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""The live analysis pass over a real store: findings and alert transitions become events and callbacks."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from pmon import Monitor
from pmon.analysis.alert_rules import parse_rules
from pmon.analysis.detectors.backtest import backtest
from pmon.analysis.detectors.settings import DetectorSettings
from pmon.analysis.runner import AnalysisRunner
from pmon.store import alert_store
from pmon.store.schema import open_reader, open_writer

RULES = parse_rules([{"name": "cpu_hot", "metric": "cpu_usage", "comparison": ">", "threshold": 90, "for": "30s",
                      "clear": 70, "severity": "high"}], "test")


def alert_events(db: Path) -> list[tuple[str, str, dict]]:
    conn = sqlite3.connect(db)
    try:
        return [(p, t, json.loads(d or "{}")) for p, t, d in conn.execute(
            "SELECT plugin_id, event_type, data FROM plugin_events WHERE category = 'alert' ORDER BY id")]
    finally:
        conn.close()


def test_a_rule_fires_after_for_and_resolves_past_clear_once(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    seen = []
    monitor.add_alert_callback(seen.append)
    runner = AnalysisRunner(monitor, db, DetectorSettings(), RULES, warmup=0)
    now = time.time()
    monitor.record_metric("web", "cpu_usage", 10.0, timestamp=now - 100)
    monitor.flush()
    runner.run_pass(now)  # warm-up: starts from here
    for i, value in enumerate([95, 96, 97, 98, 80, 85]):  # 80, 85: above clear (70), still firing
        monitor.record_metric("web", "cpu_usage", float(value), timestamp=now - 90 + i * 10)
    monitor.flush()
    runner.run_pass(now)
    runner.run_pass(now)  # nothing new: no duplicate
    monitor.record_metric("web", "cpu_usage", 50.0, timestamp=now - 20)
    monitor.flush()
    runner.run_pass(now)
    monitor.flush()
    monitor.wait_for_alerts()
    runner.close()
    monitor.stop_monitoring()
    kinds = [(p, t) for p, t, _ in alert_events(db)]
    assert kinds == [("web", "alert_firing"), ("web", "alert_resolved")]
    assert [e.event_type for e in seen] == ["alert_firing", "alert_resolved"]  # both reach the callbacks
    conn = open_reader(db)
    try:
        (alert,) = alert_store.alerts(conn)
    finally:
        conn.close()
    assert (alert.rule, alert.plugin_id, str(alert.state)) == ("cpu_hot", "web", "resolved")


def test_a_restarted_runner_does_not_fire_again(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    now = time.time()
    first = AnalysisRunner(monitor, db, DetectorSettings(), RULES, warmup=0)
    monitor.record_metric("web", "cpu_usage", 10.0, timestamp=now - 200)
    monitor.flush()
    first.run_pass(now)
    for i in range(5):
        monitor.record_metric("web", "cpu_usage", 99.0, timestamp=now - 150 + i * 10)
    monitor.flush()
    first.run_pass(now)
    first.close()
    second = AnalysisRunner(monitor, db, DetectorSettings(), RULES, warmup=0)
    monitor.record_metric("web", "cpu_usage", 99.0, timestamp=now - 50)
    monitor.flush()
    second.run_pass(now)
    monitor.record_metric("web", "cpu_usage", 99.0, timestamp=now - 40)
    monitor.flush()
    second.run_pass(now)
    second.close()
    monitor.stop_monitoring()
    assert [t for _, t, _ in alert_events(db)] == ["alert_firing"]


def test_live_findings_match_the_backtest_on_the_same_data(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    start = time.time() - 4 * 3600
    runner = AnalysisRunner(monitor, db, DetectorSettings(), (), warmup=0)
    monitor.record_metric("leaky", "memory_usage", 300.0, timestamp=start - 10)
    monitor.flush()
    runner.run_pass()
    for chunk in range(24):  # four hours in ten-minute passes: a 120 MiB/h leak from the second hour
        for i in range(300):
            t = chunk * 600 + i * 2
            leak = max(0.0, t - 3600) / 3600 * 120
            monitor.record_metric("leaky", "memory_usage", 300.0 + leak + (i % 7) * 0.3, timestamp=start + t)
        monitor.flush()
        runner.run_pass()
    monitor.flush()
    runner.close()
    monitor.stop_monitoring()
    conn = open_reader(db)
    try:
        found = backtest(conn, DetectorSettings(), since=start - 60)
    finally:
        conn.close()
    # Opened episodes, live and in the backtest: the same detectors, plugins and start times.
    live = sorted((d["detector"], p, d["start"]) for p, t, d in alert_events(db) if not t.endswith("_resolved"))
    assert live == sorted((f.detector, f.plugin_id, f.start) for f in found)
    assert ("leak", "leaky") in {(d, p) for d, p, _ in live}  # the climb is found (an anomaly may open on it too)


def test_the_daemon_runs_the_analysis(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "pmon.db"
    writer = open_writer(db)
    writer.close()
    config = tmp_path / "pmon.toml"
    config.write_text('[collector]\nsample_interval = 0.2\n[analysis]\ninterval = 0.2\n'
                      '[[alerts]]\nname = "always"\nmetric = "pmon.queue_depth"\ncomparison = ">="\nthreshold = 0\n')
    daemon = subprocess.Popen([sys.executable, "-m", "pmon", "--db", str(db), "--config", str(config), "collect",
                               "--foreground"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not [e for e in alert_events(db) if e[1] == "alert_firing"]:
            time.sleep(0.2)
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=20)
    firing = [e for e in alert_events(db) if e[1] == "alert_firing"]
    assert firing and firing[0][0] == "pmon" and firing[0][2]["rule"] == "always", err
    assert daemon.returncode == 0, err


def test_a_restarted_analyser_announces_what_happened_since_the_last_pass(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    now = time.time()
    monitor.record_event("mailer", "started", "up", timestamp=now - 300)
    monitor.flush()
    first = AnalysisRunner(monitor, db, DetectorSettings(), (), warmup=600)
    first.run_pass(now - 200)
    first.close()  # the process ends (a crash: no last pass)
    monitor.record_event("mailer", "stopped", "gone", "high", timestamp=now - 100)
    monitor.flush()
    second = AnalysisRunner(monitor, db, DetectorSettings(), (), warmup=600)
    second.run_pass(now - 50)
    monitor.record_event("mailer", "started", "back", timestamp=now - 10)
    monitor.flush()
    second.run_pass(now)
    second.close()
    monitor.stop_monitoring()
    assert [t for _, t, _ in alert_events(db)] == ["alert_down", "alert_down_resolved"]


def test_a_plugin_down_longer_than_the_warmup_is_still_known_down(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    now = time.time()
    for i in range(240):  # two hours up, then down (the daemon records zeros) for two hours
        t = now - 4 * 3600 + i * 60
        monitor.record_metric("svc", "cpu_usage", 30.0 + (i % 5), timestamp=t)
    monitor.record_event("svc", "stopped", "gone", "high", timestamp=now - 2 * 3600)
    for i in range(110):
        monitor.record_metric("svc", "cpu_usage", 0.0, timestamp=now - 2 * 3600 + 60 + i * 60)
    monitor.flush()
    runner = AnalysisRunner(monitor, db, DetectorSettings(), (), warmup=3600)
    runner.run_pass(now - 60)
    monitor.record_event("svc", "started", "back", timestamp=now - 30)
    for i in range(20):
        monitor.record_metric("svc", "cpu_usage", 31.0 + (i % 3), timestamp=now - 29 + i)
    monitor.flush()
    runner.run_pass(now)
    runner.close()
    monitor.stop_monitoring()
    kinds = [t for _, t, _ in alert_events(db)]
    assert kinds == ["alert_down_resolved"] and "alert_anomaly" not in kinds  # no "median 0" anomaly on return


def test_medium_rules_and_resolutions_reach_the_callbacks(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)  # alert_min_severity stays "high"
    seen = []
    monitor.add_alert_callback(seen.append)
    rules = parse_rules([{"name": "slow", "metric": "response_time", "comparison": ">", "threshold": 500,
                          "clear": 300, "severity": "medium"}], "test")
    runner = AnalysisRunner(monitor, db, DetectorSettings(), rules, warmup=0)
    now = time.time()
    monitor.record_metric("web", "response_time", 100.0, timestamp=now - 60)
    monitor.flush()
    runner.run_pass(now)
    monitor.record_metric("web", "response_time", 900.0, timestamp=now - 30)
    monitor.record_metric("web", "response_time", 100.0, timestamp=now - 20)
    monitor.flush()
    runner.run_pass(now)
    monitor.flush()
    monitor.wait_for_alerts()
    runner.close()
    monitor.stop_monitoring()
    assert [(e.event_type, str(e.severity)) for e in seen] == [("alert_firing", "medium"), ("alert_resolved", "medium")]


def test_one_analyser_per_database(tmp_path: Path) -> None:
    from pmon.collect.daemon_lock import AnalysisLease

    db = tmp_path / "pmon.db"
    first, second = AnalysisLease(db), AnalysisLease(db)
    assert first.try_acquire() and not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()

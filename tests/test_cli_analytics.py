"""`pmon analytics` and `pmon alerts` as a user runs them: a real process on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmon import Monitor
from pmon.analysis.alert_rules import parse_rules
from pmon.analysis.alerting import AlertEvaluator
from pmon.store import alert_store
from pmon.store.schema import open_writer

TRACEBACK = ('Traceback (most recent call last):\n  File "/srv/app/payments/charge.py", line {n}, in charge\n'
             '    raise TimeoutError(f"gateway {n} timed out")\nTimeoutError: gateway timed out after {n} ms\n')


def pmon(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PMON_CONFIG", "PMON_DB")}
    return subprocess.run([sys.executable, "-m", "pmon", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("analytics") / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    now = time.time()
    for i in range(600):
        t = now - 3000 + i * 5
        monitor.record_metric("web", "response_time", 100.0 + (i % 10), timestamp=t)
        monitor.record_metric("web", "error_rate", 0.01, timestamp=t)
        monitor.record_metric("web", "throughput", 20.0, timestamp=t)
    for i in range(1440):  # two hours of a 36 MiB/h climb with a little jitter
        monitor.record_metric("leaky", "memory_usage", 300.0 + i * 0.05 + (i % 3) * 0.2, timestamp=now - 7200 + i * 5)
    for n in (1, 2, 3):
        monitor.record_log("payments", "error", f"gateway timed out after {n * 100} ms",
                           traceback=TRACEBACK.format(n=n), timestamp=now - 600 + n)
    monitor.create_snapshot("web", {"cpu_usage": 10, "response_time": 100, "throughput": 20}, timestamp=now - 2000)
    monitor.create_snapshot("web", {"cpu_usage": 30, "response_time": 100, "throughput": 20}, timestamp=now - 100)
    monitor.stop_monitoring()
    return db


def test_performance_json(store: Path) -> None:
    done = pmon("--db", str(store), "analytics", "performance", "--since", "1h", "--json")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    web = next(p for p in stats["plugins"] if p["plugin_id"] == "web")
    assert web["requests"] == 600 and web["exact"] and 104 <= web["p50_ms"] <= 105 and web["p99_ms"] == 109


def test_errors_group_one_failure_with_different_numbers(store: Path) -> None:
    done = pmon("--db", str(store), "analytics", "errors", "--since", "1h", "--json")
    assert done.returncode == 0, done.stderr
    (group,) = json.loads(done.stdout)
    assert group["count"] == 3 and group["exception_type"] == "TimeoutError" and group["plugins"] == ["payments"]
    text = pmon("--db", str(store), "analytics", "errors", "--since", "1h").stdout
    assert "3x" in text and "TimeoutError" in text


def test_trends_and_detect(store: Path) -> None:
    trends = json.loads(pmon("--db", str(store), "analytics", "trends", "--since", "2h", "--json").stdout)
    assert {(t["plugin_id"], t["metric"]) for t in trends} >= {("web", "response_time"), ("leaky", "memory_usage")}
    found = json.loads(pmon("--db", str(store), "analytics", "detect", "--since", "3h", "--json").stdout)
    assert [(f["detector"], f["plugin_id"]) for f in found] == [("leak", "leaky")]  # 36 MiB/h, nothing else


def test_baseline_exits_1_on_a_regression(store: Path) -> None:
    done = pmon("--db", str(store), "analytics", "baseline", "web", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["regressions"] == ["cpu_usage"]


@pytest.mark.parametrize("args", [("--since", "soon"), ("--since", "1h", "--until", "2h")])
def test_a_bad_range_is_one_line_and_exit_2(store: Path, args: tuple[str, ...]) -> None:
    done = pmon("--db", str(store), "analytics", "performance", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_alerts_list_ack_and_silence(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    config = tmp_path / "pmon.toml"
    config.write_text('[[alerts]]\nname = "cpu_hot"\nmetric = "cpu_usage"\ncomparison = ">"\nthreshold = 90\n')
    conn = open_writer(db)
    evaluator = AlertEvaluator(parse_rules([{"name": "cpu_hot", "metric": "cpu_usage", "comparison": ">",
                                             "threshold": 90}], "t"))
    (alert_id,) = alert_store.save_transitions(conn, evaluator.evaluate(time.time(), [("web", "cpu_usage",
                                                                                        time.time(), 99.0)]))
    conn.close()
    listed = json.loads(pmon("--db", str(db), "--config", str(config), "alerts", "--json").stdout)
    assert [(a["id"], a["state"], a["plugin_id"]) for a in listed] == [(alert_id, "firing", "web")]
    assert pmon("--db", str(db), "--config", str(config), "alerts", "ack", str(alert_id), "--by", "ops").returncode == 0
    assert json.loads(pmon("--db", str(db), "alerts", "--json").stdout)[0]["acked_by"] == "ops"
    unknown = pmon("--db", str(db), "alerts", "ack", "999")
    assert unknown.returncode == 2 and "999" in unknown.stderr
    silenced = pmon("--db", str(db), "--config", str(config), "alerts", "silence", "cpu_hot", "--for", "1h")
    assert silenced.returncode == 0 and "silenced cpu_hot" in silenced.stdout
    assert "silenced: cpu_hot" in pmon("--db", str(db), "alerts").stdout
    wrong = pmon("--db", str(db), "--config", str(config), "alerts", "silence", "nope", "--for", "1h")
    assert wrong.returncode == 2 and "cpu_hot" in wrong.stderr

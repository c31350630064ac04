"""Retention ages resolved alerts and ended silences like events, and never touches an open alert."""

from __future__ import annotations

import time
from pathlib import Path

from pmon.analysis.alert_rules import parse_rules
from pmon.analysis.alerting import AlertEvaluator
from pmon.config import RetentionConfig
from pmon.store import alert_store
from pmon.store.retention import prune
from pmon.store.schema import open_writer


def test_old_resolved_alerts_go_open_ones_stay(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    conn = open_writer(db)
    rules = parse_rules([{"name": "hot", "metric": "cpu_usage", "comparison": ">", "threshold": 90, "clear": 50}], "t")
    evaluator = AlertEvaluator(rules)
    old = time.time() - 40 * 86400
    alert_store.save_transitions(conn, evaluator.evaluate(old, [("a", "cpu_usage", old, 99.0)]))
    alert_store.save_transitions(conn, evaluator.evaluate(old + 60, [("a", "cpu_usage", old + 60, 10.0)]))
    alert_store.save_transitions(conn, evaluator.evaluate(old + 120, [("b", "cpu_usage", old + 120, 99.0)]))
    alert_store.silence(conn, "hot", old + 3600, now=old)
    conn.close()
    report = prune(db, RetentionConfig(days=30))
    assert report.deleted["alerts"] == 1 and report.deleted["alert_silences"] == 1
    conn = open_writer(db)
    try:
        (left,) = alert_store.alerts(conn)
    finally:
        conn.close()
    assert (left.plugin_id, str(left.state)) == ("b", "firing")  # still open, however old

"""Alerts in a real SQLite file: saved, listed, acked, silenced, and continued after a restart."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pmon.analysis.alert_rules import AlertRule
from pmon.analysis.alerting import AlertEvaluator, AlertState, Transition
from pmon.store import alert_store
from pmon.store.alert_store import AlertError
from pmon.store.schema import SCHEMA_V1, SCHEMA_V2, SCHEMA_VERSION, open_reader, open_writer

T0 = 1_700_000_000.0
RULES = [AlertRule(name="cpu_hot", metric="cpu_usage", comparison=">", threshold=90.0, for_=20.0, clear=75.0),
         AlertRule(name="mem_high", metric="memory_usage", comparison=">=", threshold=500.0)]


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return open_writer(tmp_path / "pmon.db")


def run(evaluator: AlertEvaluator, conn: sqlite3.Connection, plugin: str, metric: str, values: list[float],
        start: float = T0) -> list[tuple[Transition, int | None]]:
    """What the daemon does each sample: evaluate, then save; an event is due for each notified pair with an id."""
    saved = []
    for i, value in enumerate(values):
        ts = start + i * 10
        changes = evaluator.evaluate(ts, [(plugin, metric, ts, value)], silences=alert_store.active_silences(conn, ts))
        saved += zip(changes, alert_store.save_transitions(conn, changes))
    return saved


def announced(saved: list[tuple[Transition, int | None]]) -> list[tuple[str, int | None]]:
    return [(t.state.value, alert_id) for t, alert_id in saved if t.notify and alert_id is not None]


def test_one_row_per_episode_pending_then_firing_then_resolved(conn: sqlite3.Connection) -> None:
    evaluator = AlertEvaluator(RULES)
    saved = run(evaluator, conn, "web", "cpu_usage", [95, 95])
    assert [a.state for a in alert_store.open_alerts(conn)] == [AlertState.PENDING]
    saved += run(evaluator, conn, "web", "cpu_usage", [95, 80, 70], start=T0 + 20)
    assert announced(saved) == [("firing", 1), ("resolved", 1)]
    (episode,) = alert_store.alerts(conn)
    assert (episode.rule, episode.plugin_id, episode.metric, episode.state, episode.value, episode.threshold) == (
        "cpu_hot", "web", "cpu_usage", AlertState.RESOLVED, 70.0, 90.0)
    assert (episode.started_at, episode.fired_at, episode.resolved_at) == (T0, T0 + 20, T0 + 40)
    assert alert_store.open_alerts(conn) == [] and alert_store.firing_count(conn) == 0


def test_a_pending_alert_that_clears_early_leaves_no_row(conn: sqlite3.Connection) -> None:
    saved = run(AlertEvaluator(RULES), conn, "web", "cpu_usage", [95, 50])
    assert announced(saved) == [] and alert_store.alerts(conn) == []


def test_a_restarted_evaluator_continues_from_the_store_and_does_not_fire_again(tmp_path: Path) -> None:
    path = tmp_path / "pmon.db"
    first = open_writer(path)
    before = run(AlertEvaluator(RULES), first, "web", "memory_usage", [600, 650])
    assert announced(before) == [("firing", 1)]
    first.close()

    again = open_writer(path)
    evaluator = AlertEvaluator(RULES)
    assert evaluator.load_state(alert_store.open_alerts(again)) == []
    after = run(evaluator, again, "web", "memory_usage", [700, 640], start=T0 + 100)
    assert announced(after) == [] and alert_store.firing_count(again) == 1
    assert announced(run(evaluator, again, "web", "memory_usage", [100], start=T0 + 200)) == [("resolved", 1)]


def test_two_evaluators_on_one_file_announce_an_alert_once(conn: sqlite3.Connection) -> None:
    one, two = AlertEvaluator(RULES), AlertEvaluator(RULES)
    first = run(one, conn, "web", "memory_usage", [600])
    second = run(two, conn, "web", "memory_usage", [600])
    assert announced(first) == [("firing", 1)] and announced(second) == []
    assert len(alert_store.alerts(conn)) == 1


def test_the_store_refuses_a_second_open_alert_for_one_rule_and_plugin(conn: sqlite3.Connection) -> None:
    run(AlertEvaluator(RULES), conn, "web", "memory_usage", [600])
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO alerts (rule, plugin_id, metric, state, value, threshold, severity, started_at) "
                     "VALUES ('mem_high', 'web', 'memory_usage', 'pending', 1, 1, 'high', 1)")


def test_removing_a_rule_closes_its_open_alert_on_restart(conn: sqlite3.Connection) -> None:
    run(AlertEvaluator(RULES), conn, "web", "memory_usage", [600])
    evaluator = AlertEvaluator(RULES[:1])
    closing = evaluator.load_state(alert_store.open_alerts(conn), now=T0 + 600)
    assert alert_store.save_transitions(conn, closing) == [1]
    (episode,) = alert_store.alerts(conn, state="resolved")
    assert episode.reason == "rule removed" and episode.resolved_at == T0 + 600  # when the rule went away


def test_ack_marks_the_firing_alert_and_it_still_resolves(conn: sqlite3.Connection) -> None:
    evaluator = AlertEvaluator(RULES)
    run(evaluator, conn, "web", "memory_usage", [600])
    acked = alert_store.ack(conn, 1, now=T0 + 5, who="ana")
    assert (acked.acked_at, acked.acked_by, acked.state) == (T0 + 5, "ana", AlertState.FIRING)
    assert alert_store.ack(conn, 1, now=T0 + 9, who="bob").acked_by == "ana"  # the first ack stays
    assert announced(run(evaluator, conn, "web", "memory_usage", [10], start=T0 + 10)) == [("resolved", 1)]
    with pytest.raises(AlertError, match="alert 1: already resolved"):
        alert_store.ack(conn, 1, now=T0 + 20, who="ana")
    with pytest.raises(AlertError, match=r"alert 99: no such alert \(`pmon alerts` lists them\)"):
        alert_store.ack(conn, 99, now=T0, who="ana")


def test_a_silence_quiets_the_rule_on_matching_plugins_until_it_ends(conn: sqlite3.Connection) -> None:
    made = alert_store.silence(conn, "mem_high", until=T0 + 15, plugin="web*", reason="deploy", now=T0 - 1)
    assert alert_store.active_silences(conn, T0) == [made]
    evaluator = AlertEvaluator(RULES)
    quiet = run(evaluator, conn, "web", "memory_usage", [600, 10])
    assert announced(quiet) == [] and [a.state for a in alert_store.alerts(conn)] == [AlertState.RESOLVED]
    loud = run(evaluator, conn, "db", "memory_usage", [600])
    assert announced(loud) == [("firing", 2)]
    assert announced(run(evaluator, conn, "web", "memory_usage", [600], start=T0 + 20)) == [("firing", 3)]
    assert alert_store.active_silences(conn, T0 + 15) == []


def test_unsilence_ends_a_silence_and_bad_silences_are_refused(conn: sqlite3.Connection) -> None:
    made = alert_store.silence(conn, "cpu_hot", until=T0 + 3600, now=T0)
    assert alert_store.unsilence(conn, made.id, now=T0 + 10).until == T0 + 10
    assert alert_store.active_silences(conn, T0 + 11) == []
    with pytest.raises(AlertError, match="silence 42: no such silence"):
        alert_store.unsilence(conn, 42, now=T0)
    with pytest.raises(AlertError, match="must end in the future"):
        alert_store.silence(conn, "cpu_hot", until=T0 - 1, now=T0)


def test_listing_filters_by_state_newest_first(conn: sqlite3.Connection) -> None:
    evaluator = AlertEvaluator(RULES)
    run(evaluator, conn, "a", "memory_usage", [600, 10])
    run(evaluator, conn, "b", "memory_usage", [600])
    run(evaluator, conn, "c", "cpu_usage", [95])
    assert [a.plugin_id for a in alert_store.alerts(conn)] == ["c", "b", "a"]
    assert [a.plugin_id for a in alert_store.alerts(conn, state="open")] == ["c", "b"]
    assert [a.plugin_id for a in alert_store.alerts(conn, state="firing")] == ["b"]
    assert [a.plugin_id for a in alert_store.alerts(conn, state="resolved", limit=1)] == ["a"]
    assert alert_store.firing_count(conn) == 1
    with pytest.raises(AlertError, match="state must be one of open, pending, firing, resolved"):
        alert_store.alerts(conn, state="active")


def version_2_file(path: Path) -> None:
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode = WAL")
    old.executescript(SCHEMA_V1 + SCHEMA_V2)
    old.execute("INSERT INTO plugin_events (plugin_id, event_type, description, timestamp, severity) "
                "VALUES ('web', 'started', 'up', 1, 'info')")
    old.execute("INSERT INTO pmon_state (key, value) VALUES ('rollup_watermark', 42)")
    old.execute("PRAGMA user_version = 2")
    old.close()


def test_a_version_2_database_is_upgraded_to_3_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    version_2_file(path)
    reader = open_reader(path)
    assert alert_store.alerts(reader) == [] and alert_store.firing_count(reader) == 0  # before any upgrade
    conn = open_writer(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert conn.execute("SELECT plugin_id, event_type FROM plugin_events").fetchall() == [("web", "started")]
    assert conn.execute("SELECT value FROM pmon_state").fetchall() == [(42,)]
    assert announced(run(AlertEvaluator(RULES), conn, "web", "memory_usage", [600])) == [("firing", 1)]
    assert alert_store.firing_count(reader) == 1


def test_a_version_1_database_is_upgraded_through_2_to_3(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(SCHEMA_V1)
    old.execute("INSERT INTO plugin_logs (plugin_id, level, message, timestamp) VALUES ('web', 'info', 'kept', 1)")
    old.execute("PRAGMA user_version = 1")
    old.close()
    conn = open_writer(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"metric_rollups_1m", "pmon_state", "alerts", "alert_silences"} <= tables
    assert conn.execute("SELECT message FROM plugin_logs").fetchall() == [("kept",)]


def test_alerting_imports_no_console_code() -> None:
    code = ("import sys, pmon.analysis.alerting, pmon.store.alert_store; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich') or m.startswith('pmon.tui')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

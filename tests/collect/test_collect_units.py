"""The daemon's pure parts: lifecycle transitions, snapshot fields, the lock, plain log text, the config tables."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmon import Monitor
from pmon.collect.daemon_lock import AlreadyRunning, DaemonLock, running_daemon
from pmon.collect.lifecycle import LifecycleTracker
from pmon.collect.snapshots import build_snapshots
from pmon.config import ConfigError, parse
from pmon.plain_text import escape_controls
from pmon.store.schema import open_reader
from pmon.store.window_queries import WindowAggregate, window_aggregates

A, B, C = (101, 1.0), (102, 2.0), (103, 3.0)


def kinds(events: list) -> list[tuple[str, str]]:
    return [(e.event_type, e.severity) for e in events]


def test_first_sighting_is_started_or_not_found() -> None:
    tracker = LifecycleTracker()
    assert kinds(tracker.update("a", frozenset({A}))) == [("started", "info")]
    (missing,) = tracker.update("b", frozenset(), problem="pidfile x: no such file")
    assert (missing.event_type, missing.data["problem"]) == ("not_found", "pidfile x: no such file")
    assert tracker.update("a", frozenset({A})) == [] and tracker.update("b", frozenset()) == []


def test_stop_start_and_restart_carry_the_pids() -> None:
    tracker = LifecycleTracker()
    tracker.update("a", frozenset({A}))
    (stopped,) = tracker.update("a", frozenset())
    assert (stopped.event_type, stopped.severity, stopped.data) == ("stopped", "high", {"pids": [], "previous_pids": [101]})
    (started,) = tracker.update("a", frozenset({B}))
    assert (started.event_type, started.data["pids"]) == ("started", [102])
    (restarted,) = tracker.update("a", frozenset({C}))
    assert (restarted.event_type, restarted.data) == ("restarted", {"pids": [103], "previous_pids": [102]})


def test_a_reused_pid_with_another_create_time_is_a_restart() -> None:
    tracker = LifecycleTracker()
    tracker.update("a", frozenset({(101, 1.0)}))
    assert kinds(tracker.update("a", frozenset({(101, 9.0)}))) == [("restarted", "medium")]


def test_one_worker_of_several_exiting_is_not_a_stop() -> None:
    tracker = LifecycleTracker()
    tracker.update("a", frozenset({A, B}))
    assert tracker.update("a", frozenset({A, C})) == []  # one worker replaced: process.count tells it, no event storm
    assert kinds(tracker.update("a", frozenset({C}))) == []
    assert kinds(tracker.update("a", frozenset({B}))) == [("restarted", "medium")]


def test_a_restarted_daemon_reports_only_what_changed_while_it_was_away() -> None:
    from pmon.store.lifecycle_queries import StoredLifecycle

    tracker = LifecycleTracker()
    tracker.seed({"same": StoredLifecycle("active", frozenset({101})), "moved": StoredLifecycle("active", frozenset({101})),
                  "still_down": StoredLifecycle("down", None), "back": StoredLifecycle("down", frozenset()),
                  "gone": StoredLifecycle("active", frozenset({101}))})
    assert tracker.update("same", frozenset({A})) == []
    (moved,) = tracker.update("moved", frozenset({B}))
    assert (moved.event_type, moved.data) == ("restarted", {"pids": [102], "previous_pids": [101]})
    assert "while pmon was not watching" in moved.description
    assert tracker.update("still_down", frozenset()) == []
    assert kinds(tracker.update("back", frozenset({C}))) == [("started", "info")]
    (gone,) = tracker.update("gone", frozenset(), problem="pid 101: not running")
    assert (gone.event_type, gone.data["previous_pids"]) == ("not_found", [101])
    assert kinds(tracker.update("gone", frozenset({A}))) == [("started", "info")]


def test_forgotten_plugins_start_over() -> None:
    tracker = LifecycleTracker()
    tracker.update("a", frozenset({A}))
    tracker.forget("a")
    assert kinds(tracker.update("a", frozenset({A}))) == [("started", "info")]


def agg(plugin: str, metric: str, values: list[float]) -> WindowAggregate:
    return WindowAggregate(plugin, metric, len(values), sum(values) / len(values), sum(values), values[-1])


def test_snapshot_fields_follow_the_seed() -> None:
    snaps = build_snapshots([
        agg("p", "cpu_usage", [10, 30]), agg("p", "memory_usage", [100, 120]), agg("p", "response_time", [5, 15, 40]),
        agg("p", "error_rate", [0.1, 0.3]), agg("p", "process.disk_read_bytes_per_s", [100, 300]),
        agg("p", "process.threads", [4, 6]), agg("q", "throughput", [2.0, 4.0]), agg("q", "network_io", [10, 20]),
    ], window_seconds=60)
    p, q = snaps["p"], snaps["q"]
    assert p["cpu_usage"] == 20 and p["memory_usage"] == 120 and p["response_time"] == 20
    assert p["error_rate"] == pytest.approx(0.2) and p["request_count"] == 3 and p["throughput"] == 3 / 60
    assert p["disk_io"] == {"read_bytes_per_s": 200} and p["custom_metrics"] == {"process.threads": 6}
    assert q["request_count"] == 180 and q["throughput"] == 3.0 and q["network_io"] == {"bytes_per_s": 15}


def test_window_aggregates_read_only_the_window(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05)
    now = time.time()
    for i, value in enumerate([1.0, 2.0, 3.0, 4.0]):
        monitor.record_metric("p", "cpu_usage", value, timestamp=now - 100 + i * 30)
    monitor.record_metric("p", "custom.depth", 7, timestamp=now - 5)
    monitor.stop_monitoring()
    conn = open_reader(db)
    found = {a.metric_type: a for a in window_aggregates(conn, now - 50, now)}
    conn.close()
    assert found["cpu_usage"] == WindowAggregate("p", "cpu_usage", 2, 3.5, 7.0, 4.0)
    assert found["custom.depth"].last == 7


def test_one_daemon_per_database(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    assert running_daemon(db) is None
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from pmon.collect.daemon_lock import DaemonLock\n"
        f"DaemonLock(Path({str(db)!r})).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning, match=f"pid {holder.pid}"):
            DaemonLock(db).acquire()
        assert running_daemon(db) == holder.pid
    finally:
        holder.kill()
        holder.wait()
    lock = DaemonLock(db)
    lock.acquire()  # the lock died with its holder: nothing to clean up by hand
    lock.release()


def test_log_text_shows_controls_as_escapes() -> None:
    assert escape_controls("a\x1b]0;owned\x07b\r\u202ec\x9b") == "a\\x1b]0;owned\\x07b\\r\\u202ec\\x9b"
    assert escape_controls("line\nnext\ttab", keep_newlines=True) == "line\nnext\ttab"
    assert escape_controls("[bold]x[/]") == "[bold]x[/]"


@pytest.mark.parametrize(("text", "message"), [
    ("[plugins.a]\n", "set exactly one of pid, pidfile, process_name, cmdline (got none)"),
    ("[plugins.a]\npid = 1\nprocess_name = 'x'\n", "(got pid, process_name)"),
    ("[plugins.pmon]\npid = 1\n", "'pmon' is reserved"),
    ("[plugins.'bad id']\npid = 1\n", "the name must be a plugin id"),
    ("[plugins.a]\ncmdline = '(['\n", "cmdline is not a valid regular expression"),
    ("[plugins.a]\npid = -4\n", "pid must be 0 or more"),
    ("[plugins.a]\npid = 1\nchildren = 'yes'\n", "children must be bool"),
    ("[collector]\nsample_interval = 0.01\n", "sample_interval must be at least 0.1"),
    ("[retention]\nmax_db_mb = -1\n", "max_db_mb must be 0 or more"),
    ("[monitor]\nhost_plugin = 'a b'\n", "host_plugin must be a plugin id"),
    ("[collector]\nsample_interval = inf\n", "sample_interval must be a finite number"),
    ("[retention]\nprune_interval = 1e10\n", "prune_interval must be at most 86,400 (a day)"),
])
def test_bad_plugin_and_collector_tables_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        parse(text, "pmon.toml")
    assert message in str(caught.value) and str(caught.value).startswith("pmon.toml: [")


def test_plugin_tables_parse() -> None:
    config = parse("[plugins.billing]\ncmdline = 'billing --serve'\nchildren = true\n[plugins.db]\npid = 42\n")
    assert config.plugins["billing"].children and config.plugins["db"].pid == 42
    assert parse("[monitor]\nsample_interval = 0\n").monitor.sample_interval == 0


def test_a_failing_tick_is_logged_and_the_daemon_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import threading

    from pmon.collect.daemon import Daemon
    from pmon.config import CollectorConfig, Config

    config = Config(collector=CollectorConfig(sample_interval=0.1, self_monitoring=False))
    daemon = Daemon(config, tmp_path / "pmon.db")
    real_tick, calls = daemon.collector.tick, []

    def flaky_tick():
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("an odd /proc line")
        return real_tick()

    daemon.collector.tick = flaky_tick
    runner = threading.Thread(target=daemon.run)
    runner.start()
    deadline = time.monotonic() + 10
    while daemon.stats.ticks < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.request_stop()
    runner.join(10)
    assert daemon.stats.failed_ticks == 2 and daemon.stats.ticks >= 3
    assert "a sampling tick failed" in caplog.text and "an odd /proc line" in caplog.text

"""`pmon collect` as a user runs it: a real daemon process sampling real child processes into a real file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests_helpers_sql import values

INTERVAL = 0.3


def _rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # no schema yet
        return []
    finally:
        conn.close()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def events(db: Path, plugin: str) -> list[tuple[str, str, dict]]:
    return [(t, s, json.loads(d or "null")) for t, s, d in _rows(
        db, "SELECT event_type, severity, data FROM plugin_events WHERE plugin_id = ? ORDER BY id", (plugin,))]


def status(db: Path, plugin: str) -> str | None:
    found = _rows(db, "SELECT status FROM plugins WHERE id = ?", (plugin,))
    return found[0][0] if found else None


class Children:
    """Real child processes the daemon watches; all killed at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, code: str, *args: str, executable: str = sys.executable) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([executable, "-c", textwrap.dedent(code), *args])
        self.procs.append(proc)
        return proc

    def sleeper(self, marker: str) -> subprocess.Popen[bytes]:
        return self.start("import time, sys\nwhile True: time.sleep(1)", marker)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    kids = Children(tmp_path)
    yield kids
    kids.close()


class Daemon:
    """`python -m pmon --db DB --config CFG collect --foreground` with its stderr kept."""

    def __init__(self, db: Path, config: Path, *extra: str) -> None:
        self.db, self.config = db, config
        self.log = config.with_suffix(f".{time.monotonic_ns()}.log")
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "pmon", "--db", str(db), "--config", str(config),
                                          "collect", "--foreground", *extra], stderr=err)

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def write_config(path: Path, plugins: str, **collector: Any) -> Path:
    settings = {"sample_interval": INTERVAL, "snapshot_interval": 60.0, **collector}
    lines = ["[collector]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items()), "[monitor]",
             "flush_interval = 0.1", textwrap.dedent(plugins)]
    path.write_text("\n".join(lines))
    return path


BURNER = "while True: pass"
ALLOCATOR = """
import sys, time
chunks = []
while True:
    if len(chunks) < 40:
        chunks.append(bytearray(5 * 1024 * 1024))
    time.sleep(0.05)
"""


@pytest.mark.slow
def test_daemon_samples_processes_matched_by_pid_cmdline_name_and_pidfile(tmp_path: Path, children: Children,
                                                                          daemons: list[Daemon]) -> None:
    burner = children.start(BURNER)
    allocator = children.start(ALLOCATOR, "pmon-test-allocator-marker")
    named_python = tmp_path / "pmonsleepy"
    named_python.symlink_to(sys.executable)
    sleepy = children.start("import time\nwhile True: time.sleep(1)", executable=str(named_python))
    writer_pidfile = tmp_path / "writer.pid"
    writer = children.start(f"""
        import os, time
        with open({str(tmp_path / 'out.bin')!r}, 'wb') as f:
            while True:
                f.write(os.urandom(256 * 1024)); f.flush(); os.fsync(f.fileno()); time.sleep(0.02)
        """)
    writer_pidfile.write_text(f"{writer.pid}\n")
    config = write_config(tmp_path / "pmon.toml", f"""
        [plugins.burner]
        pid = {burner.pid}
        [plugins.allocator]
        cmdline = "pmon-test-allocator-m[a-z]+"
        [plugins.sleepy]
        process_name = "pmonsleepy"
        [plugins.writer]
        pidfile = "writer.pid"
        """)
    db = tmp_path / "pmon.db"
    daemon = Daemon(db, config)
    daemons.append(daemon)

    wait_for(lambda: len(values(db, "burner", "cpu_usage")) >= 4, what="burner samples")
    wait_for(lambda: len(values(db, "allocator", "memory_usage")) >= 6, what="allocator samples")
    assert max(values(db, "burner", "cpu_usage")[1:]) > 50
    memory = values(db, "allocator", "memory_usage")
    assert memory[-1] > memory[0] + 20, memory  # MiB: it allocates 5 MiB every 50 ms
    wait_for(lambda: any(v > 0 for v in values(db, "writer", "process.disk_write_bytes_per_s")), what="writer I/O")
    assert values(db, "sleepy", "process.threads")[-1] >= 1
    assert values(db, "sleepy", "process.open_fds")[-1] >= 3
    for plugin in ("burner", "allocator", "sleepy", "writer"):
        assert status(db, plugin) == "active"
        started = [e for e in events(db, plugin) if e[0] == "started"]
        assert started and started[0][2]["pids"], events(db, plugin)
    assert events(db, "burner")[0][2]["pids"] == [burner.pid]
    assert wait_for(lambda: values(db, "system", "cpu_usage"), what="system figures")
    assert wait_for(lambda: values(db, "pmon", "pmon.queue_depth"), what="self-monitoring")
    assert values(db, "pmon", "pmon.db_size_bytes")[-1] > 0
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_killed_plugin_is_stopped_and_down_then_restarted(tmp_path: Path, children: Children,
                                                            daemons: list[Daemon]) -> None:
    first = children.sleeper("pmon-test-restartable")
    config = write_config(tmp_path / "pmon.toml", """
        [plugins.worker]
        cmdline = "pmon-test-restartable"
        """)
    db = tmp_path / "pmon.db"
    daemons.append(Daemon(db, config))
    wait_for(lambda: status(db, "worker") == "active", what="worker active")

    first.kill()
    first.wait()
    killed_at = time.monotonic()
    wait_for(lambda: status(db, "worker") == "down", what="worker down")
    assert time.monotonic() - killed_at < 10  # generous: two intervals are 0.6 s, plus the writer's flush
    stopped = [e for e in events(db, "worker") if e[0] == "stopped"]
    assert stopped[0][1] == "high" and stopped[0][2]["previous_pids"] == [first.pid]
    wait_for(lambda: values(db, "worker", "process.count")[-1:] == [0.0], what="a process count of 0")
    assert values(db, "worker", "cpu_usage")[-1] == 0.0  # the overview's latest figures say it is gone

    second = children.sleeper("pmon-test-restartable")
    wait_for(lambda: status(db, "worker") == "active", what="worker active again")
    assert events(db, "worker")[-1][0] == "started" and events(db, "worker")[-1][2]["pids"] == [second.pid]


@pytest.mark.slow
def test_a_plugin_replaced_by_a_new_pid_between_samples_is_restarted(tmp_path: Path, children: Children,
                                                                     daemons: list[Daemon]) -> None:
    first = children.sleeper("pmon-test-replaced")
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(str(first.pid))
    config = write_config(tmp_path / "pmon.toml", """
        [plugins.svc]
        pidfile = "svc.pid"
        """)
    db = tmp_path / "pmon.db"
    daemons.append(Daemon(db, config))
    wait_for(lambda: status(db, "svc") == "active", what="svc active")
    second = children.sleeper("pmon-test-replaced")
    pidfile.write_text(str(second.pid))  # the way a service manager swaps a process in one step
    restarted = wait_for(lambda: [e for e in events(db, "svc") if e[0] == "restarted"], what="restarted")
    assert restarted[0][2] == {"pids": [second.pid], "previous_pids": [first.pid]}
    assert status(db, "svc") == "active"


def test_a_configured_plugin_with_no_process_is_not_found_and_down(tmp_path: Path, daemons: list[Daemon]) -> None:
    config = write_config(tmp_path / "pmon.toml", """
        [plugins.ghost]
        pidfile = "nowhere.pid"
        """)
    db = tmp_path / "pmon.db"
    daemon = Daemon(db, config, "--once")
    daemons.append(daemon)
    assert daemon.proc.wait(30) == 0, daemon.stderr
    assert status(db, "ghost") == "down"
    (etype, severity, data), = events(db, "ghost")
    assert etype == "not_found" and data["pids"] == [] and "nowhere.pid" in data["problem"]
    assert "nowhere.pid" in daemon.stderr


def test_once_samples_snapshots_and_exits(tmp_path: Path, children: Children, daemons: list[Daemon]) -> None:
    proc = children.start(BURNER)
    config = write_config(tmp_path / "pmon.toml", f"""
        [plugins.burner]
        pid = {proc.pid}
        """)
    db = tmp_path / "pmon.db"
    daemon = Daemon(db, config, "--once")
    daemons.append(daemon)
    assert daemon.proc.wait(30) == 0, daemon.stderr
    assert values(db, "burner", "cpu_usage")[-1] > 30
    snaps = _rows(db, "SELECT plugin_id, cpu_usage, memory_usage, disk_io, custom_metrics FROM performance_snapshots")
    by_plugin = {row[0]: row for row in snaps}
    assert {"burner", "system", "pmon"} <= set(by_plugin)
    _, cpu, memory, disk_io, custom = by_plugin["burner"]
    assert cpu > 30 and memory > 1
    assert set(json.loads(disk_io)) == {"bytes_per_s", "read_bytes_per_s", "write_bytes_per_s"}
    assert json.loads(custom)["process.threads"] >= 1

    again = Daemon(db, config, "--once")  # as from cron: the store remembers, nothing new to announce
    daemons.append(again)
    assert again.proc.wait(30) == 0, again.stderr
    assert [e[0] for e in events(db, "burner")] == ["started"]
    proc.kill()
    proc.wait()
    third = Daemon(db, config, "--once")
    daemons.append(third)
    assert third.proc.wait(30) == 0, third.stderr
    assert [e[0] for e in events(db, "burner")] == ["started", "not_found"] and status(db, "burner") == "down"


@pytest.mark.slow
def test_sigterm_flushes_everything_and_exits_0(tmp_path: Path, children: Children, daemons: list[Daemon]) -> None:
    proc = children.sleeper("pmon-test-sigterm")
    config = write_config(tmp_path / "pmon.toml", """
        [plugins.s]
        cmdline = "pmon-test-sigterm"
        """, sample_interval=0.1)
    db = tmp_path / "pmon.db"
    daemon = Daemon(db, config)
    daemons.append(daemon)
    wait_for(lambda: len(values(db, "s", "cpu_usage")) >= 3, what="samples")
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    # Everything the daemon said it sampled is in the file: the last tick's metrics and its own figures.
    ticks = len(values(db, "pmon", "pmon.sample_ms"))
    assert ticks >= 3 and len(values(db, "s", "cpu_usage")) >= ticks - 1
    assert "stopped" in daemon.stderr
    assert proc.poll() is None  # the daemon never touches the processes it watches


@pytest.mark.slow
def test_sigint_exits_0_too(tmp_path: Path, daemons: list[Daemon]) -> None:
    config = write_config(tmp_path / "pmon.toml", "")
    db = tmp_path / "pmon.db"
    daemon = Daemon(db, config)
    daemons.append(daemon)
    wait_for(lambda: values(db, "system", "cpu_usage"), what="system sample")
    assert daemon.stop(signal.SIGINT) == 0
    assert "Traceback" not in daemon.stderr


@pytest.mark.slow
def test_a_second_daemon_on_the_same_database_is_refused(tmp_path: Path, daemons: list[Daemon]) -> None:
    config = write_config(tmp_path / "pmon.toml", "")
    db = tmp_path / "pmon.db"
    first = Daemon(db, config)
    daemons.append(first)
    wait_for(lambda: values(db, "system", "cpu_usage"), what="first daemon running")
    second = Daemon(db, config)
    daemons.append(second)
    assert second.proc.wait(30) == 1
    assert f"pid {first.proc.pid}" in second.stderr and str(db) in second.stderr
    assert first.proc.poll() is None
    assert first.stop() == 0
    third = Daemon(db, config, "--once")  # the lock went with the first daemon
    daemons.append(third)
    assert third.proc.wait(30) == 0, third.stderr


@pytest.mark.slow
def test_sighup_with_a_broken_config_keeps_the_old_one_and_a_good_one_applies(
        tmp_path: Path, children: Children, daemons: list[Daemon]) -> None:
    one = children.sleeper("pmon-test-hup-one")
    two = children.sleeper("pmon-test-hup-two")
    config = write_config(tmp_path / "pmon.toml", """
        [plugins.one]
        cmdline = "pmon-test-hup-one"
        """)
    db = tmp_path / "pmon.db"
    daemon = Daemon(db, config)
    daemons.append(daemon)
    wait_for(lambda: values(db, "one", "cpu_usage"), what="plugin one sampled")

    config.write_text("[collector]\nsample_interval = 'fast'\n")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in daemon.stderr, what="the reload error in the log")
    assert "sample_interval" in daemon.stderr
    count = len(values(db, "one", "cpu_usage"))
    wait_for(lambda: len(values(db, "one", "cpu_usage")) > count + 2, what="still sampling plugin one")

    write_config(config, """
        [plugins.two]
        cmdline = "pmon-test-hup-two"
        """)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: values(db, "two", "cpu_usage"), what="plugin two after a good reload")
    assert daemon.proc.poll() is None
    assert one.poll() is None and two.poll() is None
    assert daemon.stop() == 0


def test_a_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "pmon.toml"
    config.write_text("[plugins.x]\npid = 1\ncmdline = 'y'\n")
    done = subprocess.run([sys.executable, "-m", "pmon", "--db", str(tmp_path / "p.db"), "--config", str(config),
                           "collect", "--once"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "set exactly one of" in done.stderr


@pytest.mark.parametrize("extra", [(), ("--foreground",)])
def test_a_bad_database_path_is_one_line_and_exit_2(tmp_path: Path, extra: tuple[str, ...]) -> None:
    (tmp_path / "afile").write_text("not a folder")
    done = subprocess.run([sys.executable, "-m", "pmon", "--db", str(tmp_path / "afile" / "x.db"), "collect", *extra],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "afile" in done.stderr and "Traceback" not in done.stderr


def test_detached_daemon_reports_its_pid_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = write_config(tmp_path / "pmon.toml", "")
    db = tmp_path / "pmon.db"
    done = subprocess.run([sys.executable, "-m", "pmon", "--db", str(db), "--config", str(config), "collect"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "started, pid" in done.stdout and "pmon.db.collect.log" in done.stdout
    pid = int((tmp_path / "pmon.db.collect.lock").read_text())
    try:
        wait_for(lambda: values(db, "system", "cpu_usage"), what="detached daemon sampling")
        again = subprocess.run([sys.executable, "-m", "pmon", "--db", str(db), "--config", str(config), "collect"],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and f"pid {pid}" in again.stderr
        status = subprocess.run([sys.executable, "-m", "pmon", "--db", str(db), "status", "--json"],
                                capture_output=True, text=True, timeout=60)
        assert json.loads(status.stdout)["collector_pid"] == pid
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not _alive(pid), what="detached daemon gone")
    assert "stopped" in (tmp_path / "pmon.db.collect.log").read_text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_the_daemon_prunes_old_rows_and_keeps_their_rollups(tmp_path: Path, daemons: list[Daemon]) -> None:
    from pmon import Monitor

    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05)
    now = time.time()
    for hours in range(0, 24 * 45, 6):
        monitor.record_metric("old", "cpu_usage", 1.0, timestamp=now - hours * 3600)
        monitor.record_log("old", "info", "then", timestamp=now - hours * 3600)
    monitor.stop_monitoring()
    config = write_config(tmp_path / "pmon.toml", "\n[retention]\ndays = 30\n")
    daemon = Daemon(db, config)
    daemons.append(daemon)

    def oldest_days() -> float:
        found = _rows(db, "SELECT min(timestamp) FROM plugin_metrics WHERE plugin_id = 'old'")
        return (now - found[0][0]) / 86400 if found and found[0][0] else 0.0

    wait_for(lambda: 0 < oldest_days() < 30.01, what="old points pruned")
    assert _rows(db, "SELECT min(timestamp) FROM plugin_logs")[0][0] > now - 30 * 86400 - 1
    assert len(_rows(db, "SELECT * FROM plugin_metrics WHERE plugin_id = 'old'")) == 120  # 6-hourly, under 30 days old
    first_hour = _rows(db, "SELECT min(bucket_ms) FROM metric_rollups_1h")[0][0] / 1000
    assert first_hour < now - 44 * 86400  # the pruned range lives on in the hourly rollups
    wait_for(lambda: values(db, "pmon", "pmon.prune_max_lock_ms"), what="the pass's lock figure")
    assert daemon.stop() == 0

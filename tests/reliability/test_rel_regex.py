"""Regexes over text pmon does not choose: error fingerprints of hostile messages, ``cmdline`` patterns against
crafted command lines. Each search ends in bounded time; the daemon keeps its schedule.

Sizes: messages of 2 MB (10 MB with PMON_RELIABILITY_FULL=1), a 30 KB crafted command line (Linux allows
128 KiB an argument; this one already took an unbounded search over two minutes).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import size

from pmon import Monitor
from pmon.analysis.errors import error_groups, fingerprint
from pmon.collect.matching import SEARCH_SECONDS, ProcessTable, match, pattern_problem
from pmon.config import PluginSpec
from pmon.store.schema import open_reader

pytestmark = pytest.mark.reliability

MESSAGE_BYTES = size(2_000_000, 10_000_000)
BOUND_SECONDS = 5.0
"""Generous on a busy 2-core machine: each of these runs in well under a second a megabyte."""

HOSTILE_MESSAGES = {
    "digits and dots": "1.2." * (MESSAGE_BYTES // 4),
    "an ip-like run": "1.1.1.1:" * (MESSAGE_BYTES // 8),
    "quotes never closed": "'" + "a" * MESSAGE_BYTES,
    "quotes alone": "'\"" * (MESSAGE_BYTES // 2),
    "a quote a line": "'x\n" * (MESSAGE_BYTES // 3),
    "newlines": "\n" * MESSAGE_BYTES,
    "blank lines with indents": "\n \t" * (MESSAGE_BYTES // 3),
    "frame lines never closed": '  File "' * (MESSAGE_BYTES // 8),
    "frame lines": '  File "a.py", line 1, in f\n' * (MESSAGE_BYTES // 28),
    "hex-looking words": "a1" * (MESSAGE_BYTES // 2),
    "an exception name that never ends": "A" * MESSAGE_BYTES + "Error",
    "uuid fragments": "12345678-1234-1234-1234-" * (MESSAGE_BYTES // 24),
}

CRAFTED_ARGS = ["java", "-jar"] * 3000
"""A 30 KB command line: ``java .*-jar .*app\\.jar`` searched over it backtracks for minutes in Python's engine."""
ORDINARY_PATTERN = r"java .*-jar .*app\.jar"
SLEEP = "import time; time.sleep(120)"


@pytest.mark.parametrize("kind", HOSTILE_MESSAGES)
def test_the_fingerprint_of_a_hostile_message_and_traceback_takes_bounded_time(kind: str) -> None:
    message = HOSTILE_MESSAGES[kind]
    started = time.perf_counter()
    first = fingerprint(message, message, "billing")
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND_SECONDS, f"{kind}: {elapsed:.1f} s for {len(message):,} characters"
    assert first == fingerprint(message, message, "billing")  # and it is still a fingerprint


def test_error_groups_over_stored_hostile_logs_take_bounded_time(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, max_text_bytes=MESSAGE_BYTES * 2)
    kinds = ["digits and dots", "newlines", "frame lines never closed", "quotes never closed"]
    for kind in kinds:
        monitor.record_log("billing", "error", HOSTILE_MESSAGES[kind], traceback=HOSTILE_MESSAGES[kind])
    monitor.record_log("billing", "error", "timeout after 30 s", traceback=None)
    assert monitor.flush()
    monitor.stop_monitoring()
    conn = open_reader(db)
    try:
        stored = conn.execute("SELECT max(length(message)) FROM plugin_logs").fetchone()[0]
        assert stored >= MESSAGE_BYTES  # really stored whole, not cut at the default 64 KiB
        started = time.perf_counter()
        groups = error_groups(conn, 0, time.time() + 60)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    assert elapsed < BOUND_SECONDS * len(kinds), f"{elapsed:.1f} s"
    assert sum(group.count for group in groups) == len(kinds) + 1


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w*\s?)*x", r"(.*,){12}", r"(?:--\w+ )*$"])
def test_a_pattern_with_nested_repetition_is_refused_with_the_reason(pattern: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and "exponential time" in problem and repr(pattern) in problem
    refused = match(PluginSpec(cmdline=pattern), refreshed())
    assert refused.keys == frozenset() and refused.problem == problem


@pytest.mark.parametrize("pattern", [ORDINARY_PATTERN, r"(a++)+$", r"(?>a+)+$", r"(x{3})+", r"--role w\w+", r"(ab?)+"])
def test_ordinary_possessive_and_atomic_patterns_are_accepted(pattern: str) -> None:
    assert pattern_problem(pattern) is None


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def refreshed() -> ProcessTable:
    table = ProcessTable()
    table.refresh()
    return table


def start(processes: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SLEEP, *args])
    processes.append(proc)
    return proc


def wait_for_cmdline(pid: int, needle: str) -> None:
    deadline = time.monotonic() + 10
    while needle.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the process never exec'd"
        time.sleep(0.02)


def test_a_crafted_command_line_costs_one_bounded_search_and_the_honest_process_still_matches(
        processes: list[subprocess.Popen[bytes]]) -> None:
    crafted = start(processes, *CRAFTED_ARGS)
    honest = start(processes, "java", "-jar", "app.jar")
    wait_for_cmdline(crafted.pid, "-jar\0java\0-jar")
    wait_for_cmdline(honest.pid, "app.jar")
    table = refreshed()
    spec = PluginSpec(cmdline=ORDINARY_PATTERN)
    started = time.perf_counter()
    found = match(spec, table)
    elapsed = time.perf_counter() - started
    assert elapsed < SEARCH_SECONDS + 2.0, f"{elapsed:.1f} s"
    assert {key[0] for key in found.keys} == {honest.pid}
    assert found.problem and f"pid {crafted.pid}" in found.problem and "took over" in found.problem
    table.refresh()  # the next ticks: the verdict is remembered while the command line stays the same
    started = time.perf_counter()
    assert {key[0] for key in match(spec, table).keys} == {honest.pid}
    assert time.perf_counter() - started < 0.1


@pytest.mark.slow
def test_the_daemon_keeps_its_schedule_beside_a_crafted_command_line(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    """Before the budget this daemon's first tick searched for over two minutes and recorded nothing meanwhile."""
    crafted = start(processes, *CRAFTED_ARGS)
    honest = start(processes, "java", "-jar", "app.jar")
    wait_for_cmdline(crafted.pid, "-jar\0java\0-jar")
    config = tmp_path / "pmon.toml"
    config.write_text(textwrap.dedent(f"""
        [collector]
        sample_interval = 0.5
        snapshot_interval = 60.0
        [monitor]
        flush_interval = 0.1
        [plugins.app]
        cmdline = {json.dumps(ORDINARY_PATTERN)}
        """))
    db = tmp_path / "pmon.db"
    log = tmp_path / "daemon.log"
    with open(log, "wb") as err:
        daemon = subprocess.Popen([sys.executable, "-m", "pmon", "--db", str(db), "--config", str(config), "collect",
                                   "--foreground"], stderr=err)
    try:
        deadline = time.monotonic() + 30
        while len(stamps(db, "system")) < 12:
            assert daemon.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, f"ticks: {stamps(db, 'system')}\n{log.read_text(errors='replace')}"
            time.sleep(0.1)
        ticks = stamps(db, "system")
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        assert max(gaps) < 2.0, gaps  # 0.5 s apart; one tick paid at most the search budget
        app = stamps(db, "app")
        assert app, "the honest process was never sampled"
        pids = json.loads(_query(db, "SELECT data FROM plugin_events WHERE plugin_id = 'app' "
                                     "AND event_type = 'started'")[0][0])["pids"]
        assert pids == [honest.pid]
        assert f"pid {crafted.pid} took over" in log.read_text(errors="replace")
    finally:
        daemon.terminate()
        assert daemon.wait(15) == 0


def _query(db: Path, sql: str) -> list[tuple]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


def stamps(db: Path, plugin: str) -> list[float]:
    """When ``plugin``'s cpu_usage was sampled, oldest first."""
    return [row[0] for row in _query(db, "SELECT p.ts_ms / 1000.0 FROM metric_points p JOIN metric_series s "
                                         f"ON s.id = p.series_id WHERE s.plugin_id = '{plugin}' "
                                         "AND s.metric_type = 'cpu_usage' ORDER BY p.ts_ms")]

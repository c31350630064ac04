"""Real processes against real SQLite files: concurrency, crashes, fork, unwritable storage, alerts.

Every child is ``sys.executable -c <script>`` (or an ``os.fork()`` /
``multiprocessing`` child made inside such a script), writes with the public
``pmon.Monitor`` API and reports what it recorded on stdout. The parent then
reads the database file itself: nothing here mocks the store.

Children run in their own session (process group) so that a hung child and
anything it forked can be killed at teardown without touching other processes.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pmon
from pmon.config import Config, StoreConfig
from pmon.store import queries
from pmon.store.schema import open_reader

TABLES = ("plugin_metrics", "plugin_logs", "plugin_events")
NOBODY = 65534


# -- helpers -----------------------------------------------------------------------


def _script(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


class Child:
    """A child process whose stdout lines and stderr are pumped by threads (no pipe can fill up)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []
        self._pumps = [threading.Thread(target=self._pump_out, daemon=True),
                       threading.Thread(target=self._pump_err, daemon=True)]
        for pump in self._pumps:
            pump.start()

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def readline(self, timeout: float = 60.0) -> str:
        """The next stdout line; fails the test (with the child's stderr) on timeout or exit."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output from child {self.proc.pid} within {timeout}s; stderr:\n{self.stderr}")
        if line is None:
            self._lines.put(None)
            self.proc.wait(10)
            for pump in self._pumps:
                pump.join(5)
            pytest.fail(f"child {self.proc.pid} exited (rc={self.proc.returncode}) before answering; "
                        f"stderr:\n{self.stderr}")
        return line

    def remaining_lines(self, timeout: float = 30.0) -> list[str]:
        """Every stdout line until EOF (call after the child exited or was killed)."""
        lines = []
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"child {self.proc.pid}: stdout not closed within {timeout}s")
            if line is None:
                self._lines.put(None)
                return lines
            lines.append(line)

    def send(self, line: str) -> None:
        """Write one line to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        """Send one command line and parse the one JSON line the child answers."""
        self.send(command)
        return json.loads(self.readline(timeout))

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for exit (killing the process group on timeout) and for the pumps to drain."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            pytest.fail(f"child {self.proc.pid} did not exit within {timeout}s; stderr:\n{self.stderr}")
        for pump in self._pumps:
            pump.join(10)
        return self.proc.returncode


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the child's own process group (its session), only while the child is not yet reaped."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def _child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PMON_CONFIG", "PMON_DB"):
        env.pop(name, None)
    # no developer pmon.toml can leak into the children
    env["XDG_CONFIG_HOME"] = str(home / "xdg-config")
    env["XDG_DATA_HOME"] = str(home / "xdg-data")
    return env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    """Start ``sys.executable -c script args...``; every child is killed at teardown if still running."""
    children: list[Child] = []

    def start(script: str, *args: object, cwd: Path | str | None = None) -> Child:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *map(str, args)],
            cwd=cwd or tmp_path, env=_child_env(tmp_path), text=True, start_new_session=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        child = Child(proc)
        children.append(child)
        return child

    yield start
    for child in children:
        _kill_group(child.proc)


@pytest.fixture
def pdb(tmp_path: Path) -> Path:
    """A database path in tmp_path (named apart from conftest's ``db_path``)."""
    return tmp_path / "proc.db"


def _per_plugin(db: Path, table: str) -> dict[str, int]:
    conn = open_reader(db)
    try:
        return dict(conn.execute(f"SELECT plugin_id, count(*) FROM {table} GROUP BY plugin_id").fetchall())
    finally:
        conn.close()


def _one(db: Path, sql: str, params: tuple = ()) -> Any:
    conn = open_reader(db)
    try:
        return conn.execute(sql, params).fetchone()
    finally:
        conn.close()


def _run_json(spawn: Callable[..., Child], script: str, *args: object, timeout: float = 90.0) -> dict[str, Any]:
    """Run a script to completion; it must exit 0 and print one JSON line last."""
    child = spawn(script, *args)
    rc = child.finish(timeout)
    lines = child.remaining_lines()
    assert rc == 0, f"child failed (rc={rc}); stdout:\n" + "\n".join(lines) + f"\nstderr:\n{child.stderr}"
    assert lines, f"child printed nothing; stderr:\n{child.stderr}"
    result = json.loads(lines[-1])
    result["_stderr"] = child.stderr
    return result


# -- 1. concurrent writers and a reader ------------------------------------------------

WRITER = _script("""
    import json, sys, time
    import pmon

    db, name, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
    m = pmon.Monitor(db, flush_interval=0.05)
    plugins = [f"{name}.alpha", f"{name}.beta"]
    counts = {"plugin_metrics": {}, "plugin_logs": {}, "plugin_events": {}}

    def bump(table, plugin, n):
        counts[table][plugin] = counts[table].get(plugin, 0) + n

    deadline = time.monotonic() + duration
    i = 0
    while time.monotonic() < deadline:
        for plugin in plugins:
            for j in range(10):
                m.record_metric(plugin, "cpu_usage", float(j))
                m.record_metric(plugin, "memory_usage", j * 1.5, {"loop": i} if j == 0 else None)
            bump("plugin_metrics", plugin, 20)
            for j in range(5):
                m.record_log(plugin, "error" if j == 0 else "info", f"{plugin} log {i}/{j}",
                             {"j": j} if j == 1 else None)
            bump("plugin_logs", plugin, 5)
            m.record_event(plugin, "plugin_error" if i % 7 == 0 else "plugin_started", f"{plugin} event {i}",
                           "medium" if i % 7 == 0 else "info", {"loop": i})
            bump("plugin_events", plugin, 1)
        i += 1
        time.sleep(0.005)
    flushed = m.flush(timeout=60)
    stopped = m.stop_monitoring(timeout=60)
    print(json.dumps({"counts": counts, "loops": i, "flushed": flushed, "stopped": stopped,
                      "status": m.status()}, default=str), flush=True)
""")

READER = _script("""
    import json, sys, time
    from pmon.store import queries
    from pmon.store.schema import StoreError, open_reader

    db, duration = sys.argv[1], float(sys.argv[2])
    deadline = time.monotonic() + duration
    stats = {"iterations": 0, "opens": 1, "waits": 0, "plugins_seen": 0, "logs_seen": 0, "series_points": 0}
    # Until a writer has created the schema, "no database yet" is the documented answer;
    # from the first successful open on, nothing may raise.
    while True:
        try:
            conn = open_reader(db)
            break
        except StoreError:
            if time.monotonic() > deadline + 30:
                raise
            stats["waits"] += 1
            time.sleep(0.01)
    while time.monotonic() < deadline:
        if stats["iterations"] % 5 == 4:
            conn.close()
            conn = open_reader(db)
            stats["opens"] += 1
        now = time.time()
        found = queries.plugins(conn)
        stats["plugins_seen"] = max(stats["plugins_seen"], len(found))
        for summary in found:
            for metric in ("cpu_usage", "memory_usage"):
                points = queries.series(conn, summary.plugin_id, metric, now - 300, now + 5, points=30)
                stats["series_points"] = max(stats["series_points"], sum(p.count for p in points))
            queries.logs(conn, plugin_id=summary.plugin_id, limit=20)
        stats["logs_seen"] = max(stats["logs_seen"], len(queries.logs(conn, limit=100)))
        queries.logs(conn, min_level="error", limit=50)
        queries.logs(conn, text="log 1", limit=50, newest_first=False)
        stats["iterations"] += 1
    conn.close()
    print(json.dumps(stats), flush=True)
""")


@pytest.mark.slow
def test_two_writers_and_a_reader_for_ten_seconds(spawn: Callable[..., Child], pdb: Path) -> None:
    duration = 10.0
    writers = [spawn(WRITER, pdb, f"w{n}", duration) for n in range(2)]
    reader = spawn(READER, pdb, duration + 0.5)

    reports = []
    for child in [*writers, reader]:
        rc = child.finish(timeout=duration + 120)
        lines = child.remaining_lines()
        assert rc == 0, f"child failed (rc={rc}); stdout: {lines}; stderr:\n{child.stderr}"
        assert "database is locked" not in child.stderr, child.stderr
        assert "Traceback" not in child.stderr, child.stderr
        reports.append(json.loads(lines[-1]))
    *writer_reports, reader_report = reports

    expected: dict[str, dict[str, int]] = {table: {} for table in TABLES}
    for report in writer_reports:
        assert report["flushed"] is True and report["stopped"] is True, report
        status = report["status"]
        assert status["write_errors"] == 0, status
        assert status["dropped"] == 0, status
        assert report["loops"] > 10, report  # each writer really ran for the whole window
        for table in TABLES:
            expected[table].update(report["counts"][table])
        kinds = {"metrics": "plugin_metrics", "logs": "plugin_logs", "events": "plugin_events"}
        for kind, table in kinds.items():
            assert status["rows_written"][kind] == sum(report["counts"][table].values()), (kind, status)

    for table in TABLES:
        assert _per_plugin(pdb, table) == expected[table], table
    assert len(expected["plugin_metrics"]) == 4

    assert reader_report["iterations"] > 10, reader_report
    assert reader_report["plugins_seen"] >= 1 and reader_report["series_points"] > 0, reader_report
    assert reader_report["logs_seen"] > 0, reader_report

    conn = open_reader(pdb)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert sorted(p.plugin_id for p in queries.plugins(conn)) == sorted(expected["plugin_metrics"])
    finally:
        conn.close()


# -- 2. a writer killed with SIGKILL ------------------------------------------------------

ACKER = _script("""
    import sys
    import pmon

    db, every = sys.argv[1], int(sys.argv[2])
    m = pmon.Monitor(db, flush_interval=0.05)
    n = 0
    while True:
        for _ in range(every):
            m.record_metric("victim", "cpu_usage", float(n))  # the value is the row's sequence number
            n += 1
        if m.flush(timeout=60):
            print(n, flush=True)
        else:
            print(f"flush failed at {n}: {m.status()}", flush=True)
            sys.exit(3)
""")


def test_sigkill_keeps_every_acknowledged_row(spawn: Callable[..., Child], pdb: Path) -> None:
    every = 500
    child = spawn(ACKER, pdb, every)
    acks = [int(child.readline(timeout=60)) for _ in range(8)]
    time.sleep(0.02)  # let it run on: the kill lands while it records, commits or flushes
    os.kill(child.proc.pid, signal.SIGKILL)
    assert child.finish(timeout=30) == -signal.SIGKILL
    acks += [int(line) for line in child.remaining_lines()]  # acknowledgements still in the pipe
    last_ack = acks[-1]
    assert acks == sorted(acks) and last_ack >= 8 * every

    # Nobody cleaned up after the crash: the WAL and its index are still there.
    assert Path(f"{pdb}-wal").exists() and Path(f"{pdb}-shm").exists()

    conn = open_reader(pdb)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, low, high, distinct = conn.execute(
            "SELECT count(*), min(value), max(value), count(DISTINCT value) FROM plugin_metrics "
            "WHERE plugin_id = 'victim'").fetchone()
    finally:
        conn.close()
    assert count >= last_ack
    # Committed rows are a gap-free prefix of what was recorded, each row once, nothing invented.
    assert (low, high, distinct) == (0.0, float(count - 1), count)
    assert count <= last_ack + 2 * every
    assert Path(f"{pdb}-wal").exists() and Path(f"{pdb}-shm").exists()

    after = pmon.Monitor(pdb, config=Config(), flush_interval=0.05)
    try:
        for i in range(50):
            after.record_metric("survivor", "memory_usage", float(i))
            after.record_log("survivor", "info", f"after crash {i}")
        assert after.flush(timeout=30) is True
        assert after.status()["write_errors"] == 0
        assert _per_plugin(pdb, "plugin_metrics") == {"victim": count, "survivor": 50}
        assert _per_plugin(pdb, "plugin_logs") == {"survivor": 50}
    finally:
        assert after.stop_monitoring() is True
    assert _one(pdb, "PRAGMA integrity_check")[0] == "ok"


# -- 3. fork ------------------------------------------------------------------------------

FORK_BASIC = _script("""
    import json, os, sys, time, traceback
    import pmon

    db = sys.argv[1]
    m = pmon.Monitor(db, flush_interval=0.05)
    seq = 0
    for i in range(500):
        m.record_metric("fork.parent.pre", "cpu_usage", float(seq)); seq += 1
        m.record_log("fork.parent.pre", "info", f"pre {i}")
    assert m.flush(timeout=30)
    assert m.status()["writer_running"]
    time.sleep(0.01)
    for i in range(2000):  # recorded just before the fork: still queued in the parent when it forks
        m.record_metric("fork.parent.pre", "cpu_usage", float(seq)); seq += 1
    depth = m.status()["queue_depth"]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(r)
            for i in range(300):
                m.record_metric("fork.child", "memory_usage", float(i))
                m.record_log("fork.child", "warning", f"child {i}")
            stopped = m.stop_monitoring(timeout=20)
            os.write(w, json.dumps({"stopped": stopped, "status": m.status()}, default=str).encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    for i in range(300):
        m.record_metric("fork.parent.post", "cpu_usage", float(i))
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    _, wait_status = os.waitpid(pid, 0)
    flushed = m.flush(timeout=30)
    stopped = m.stop_monitoring(timeout=30)
    print(json.dumps({"child_exit": os.waitstatus_to_exitcode(wait_status),
                      "child": json.loads(b"".join(chunks) or b"null"), "depth_at_fork": depth,
                      "flushed": flushed, "stopped": stopped, "status": m.status()}, default=str), flush=True)
""")


def test_fork_parent_and_child_rows_arrive_exactly_once(spawn: Callable[..., Child], pdb: Path) -> None:
    result = _run_json(spawn, FORK_BASIC, pdb)
    assert result["child_exit"] == 0, result
    assert result["child"]["stopped"] is True, result
    assert result["child"]["status"]["write_errors"] == 0, result
    assert result["flushed"] is True and result["stopped"] is True, result
    assert result["status"]["write_errors"] == 0 and result["status"]["dropped"] == 0, result

    assert _per_plugin(pdb, "plugin_metrics") == {"fork.parent.pre": 2500, "fork.child": 300, "fork.parent.post": 300}
    assert _per_plugin(pdb, "plugin_logs") == {"fork.parent.pre": 500, "fork.child": 300}
    # every pre-fork row (queued or not at fork time) exactly once: 2500 distinct sequence numbers
    assert _one(pdb, "SELECT count(DISTINCT value), min(value), max(value) FROM plugin_metrics "
                     "WHERE plugin_id = 'fork.parent.pre'") == (2500, 0.0, 2499.0)


FORK_WHILE_COMMITTING = _script("""
    import json, os, sys, time
    import pmon
    from pmon.config import Config, StoreConfig

    db, children = sys.argv[1], int(sys.argv[2])
    m = pmon.Monitor(db, config=Config(store=StoreConfig(busy_timeout_ms=500)), flush_interval=0.05)
    for i in range(1000):
        m.record_metric("busy.parent", "cpu_usage", float(i))
    assert m.flush(timeout=30)
    for i in range(1000, 90000):  # a backlog: the writer commits 20000-row batches back to back
        m.record_metric("busy.parent", "cpu_usage", float(i))
    kids = []
    for k in range(children):
        time.sleep(0.01)
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                for i in range(200):
                    m.record_metric(f"busy.child{k}", "memory_usage", float(i))
                code = 0 if m.stop_monitoring(timeout=3) else 3
            finally:
                os._exit(code)
        kids.append(pid)
    exits = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in kids]
    flushed = m.flush(timeout=60)
    stopped = m.stop_monitoring(timeout=60)
    print(json.dumps({"exits": exits, "flushed": flushed, "stopped": stopped, "status": m.status()},
                     default=str), flush=True)
""")


def test_fork_while_the_writer_commits_keeps_the_childs_rows(spawn: Callable[..., Child], pdb: Path) -> None:
    children = 8
    result = _run_json(spawn, FORK_WHILE_COMMITTING, pdb, children, timeout=120)
    # the parent itself is unaffected either way
    assert result["flushed"] is True and result["stopped"] is True, result
    assert _per_plugin(pdb, "plugin_metrics").get("busy.parent") == 90000
    expected = {f"busy.child{k}": 200 for k in range(children)}
    found = {k: v for k, v in _per_plugin(pdb, "plugin_metrics").items() if k.startswith("busy.child")}
    assert (result["exits"], found) == ([0] * children, expected)


FORK_PARENT_STOPS_FIRST = _script("""
    import json, os, sys
    import pmon

    db = sys.argv[1]
    m = pmon.Monitor(db, flush_interval=0.05)
    for i in range(100):
        m.record_metric("early.parent", "cpu_usage", float(i))
    assert m.flush(timeout=30)
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(to_child_w); os.close(to_parent_r)
            for i in range(100):
                m.record_metric("early.child.before", "memory_usage", float(i))
            before = m.flush(timeout=30)
            os.write(to_parent_w, b"1")
            os.read(to_child_r, 1)  # the parent has stopped its monitor
            for i in range(100):
                m.record_metric("early.child.after", "memory_usage", float(i))
            after = m.flush(timeout=30)
            stopped = m.stop_monitoring(timeout=30)
            os.write(to_parent_w, json.dumps({"before": before, "after": after, "stopped": stopped,
                                              "status": m.status()}, default=str).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(to_child_r); os.close(to_parent_w)
    assert os.read(to_parent_r, 1) == b"1"
    parent_stopped = m.stop_monitoring(timeout=30)
    os.write(to_child_w, b"1")
    chunks = []
    while chunk := os.read(to_parent_r, 65536):
        chunks.append(chunk)
    _, wait_status = os.waitpid(pid, 0)
    print(json.dumps({"parent_stopped": parent_stopped, "child_exit": os.waitstatus_to_exitcode(wait_status),
                      "child": json.loads(b"".join(chunks))}), flush=True)
""")


def test_forked_child_rows_survive_the_parent_stopping_first(spawn: Callable[..., Child], pdb: Path) -> None:
    result = _run_json(spawn, FORK_PARENT_STOPS_FIRST, pdb)
    assert result["parent_stopped"] is True and result["child_exit"] == 0, result
    child = result["child"]
    assert child["before"] is True and child["after"] is True and child["stopped"] is True, result
    assert child["status"]["write_errors"] == 0, result
    assert _per_plugin(pdb, "plugin_metrics") == {
        "early.parent": 100, "early.child.before": 100, "early.child.after": 100}


MP_CHILD_NO_FLUSH = _script("""
    import json, multiprocessing, sys
    import pmon

    db, interval = sys.argv[1], float(sys.argv[2])
    m = pmon.Monitor(db, flush_interval=interval)
    m.record_metric("mp.parent", "cpu_usage", 1.0)
    assert m.flush(timeout=30)

    def child():
        for i in range(500):
            m.record_metric("mp.child", "memory_usage", float(i))
        # returns without flush() or stop_monitoring(): the process exits through os._exit

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(60)
    flushed = m.flush(timeout=30)
    stopped = m.stop_monitoring(timeout=30)
    print(json.dumps({"exitcode": proc.exitcode, "flushed": flushed, "stopped": stopped}), flush=True)
""")


def test_multiprocessing_child_rows_arrive_without_flush(spawn: Callable[..., Child], pdb: Path) -> None:
    # A long flush interval so that only the exit-time finalizer can commit the child's rows
    # (with 0.05 s they are lost just the same, but a stalled child could commit some by luck).
    result = _run_json(spawn, MP_CHILD_NO_FLUSH, pdb, 5.0)
    assert result["exitcode"] == 0 and result["flushed"] is True and result["stopped"] is True, result
    assert _per_plugin(pdb, "plugin_metrics") == {"mp.parent": 1, "mp.child": 500}


# -- 4. storage unwritable mid-run ------------------------------------------------------

LOCKER = _script("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until the parent says so
    conn.execute("ROLLBACK")
    conn.close()
    print("released", flush=True)
""")


def _record_timed(m: pmon.Monitor, plugin: str, start: int, n: int) -> float:
    """Record n metrics, n logs and n/10 events; return the slowest single call in seconds."""
    slowest = 0.0
    for i in range(start, start + n):
        t = time.perf_counter()
        m.record_metric(plugin, "cpu_usage", float(i))
        slowest = max(slowest, time.perf_counter() - t)
        t = time.perf_counter()
        m.record_log(plugin, "warning", f"row {i}", {"i": i})
        slowest = max(slowest, time.perf_counter() - t)
        if i % 10 == 0:
            t = time.perf_counter()
            m.record_event(plugin, "storage_probe", f"row {i}", "low")
            slowest = max(slowest, time.perf_counter() - t)
    return slowest


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def test_locked_database_counts_errors_and_recovers(spawn: Callable[..., Child], pdb: Path) -> None:
    m = pmon.Monitor(pdb, config=Config(store=StoreConfig(busy_timeout_ms=200)), flush_interval=0.05)
    try:
        assert _record_timed(m, "locked", 0, 50) < 1.0
        assert m.flush(timeout=30) is True

        locker = spawn(LOCKER, pdb)
        assert locker.readline(timeout=30) == "locked"
        recorded = 50
        assert _record_timed(m, "locked", recorded, 200) < 1.0
        recorded += 200
        _wait_for(lambda: m.status()["write_errors"] > 0, 30, "a counted write error while locked")
        # while still locked: more rows, and flush gives up at its timeout instead of hanging
        assert _record_timed(m, "locked", recorded, 200) < 1.0
        recorded += 200
        assert m.flush(timeout=0.3) is False
        status = m.status()
        assert status["write_errors"] > 0 and status["dropped"] == 0, status
        assert "locked" in (status["last_error"] or ""), status

        locker.send("release")
        assert locker.readline(timeout=30) == "released"
        assert locker.finish(timeout=30) == 0

        assert m.flush(timeout=15) is True
        assert _per_plugin(pdb, "plugin_metrics") == {"locked": recorded}
        assert _per_plugin(pdb, "plugin_logs") == {"locked": recorded}
        assert _per_plugin(pdb, "plugin_events") == {"locked": recorded // 10}
        assert m.status()["dropped"] == 0
    finally:
        m.stop_monitoring()


DRIVER = _script("""
    import json, os, resource, signal, sys, time
    import pmon
    from pmon.config import Config, StoreConfig

    db, mode = sys.argv[1], sys.argv[2]
    if mode == "nobody":  # imports are done: from here on this process is an unprivileged user
        os.setgroups([])
        os.setgid(int(sys.argv[3]))
        os.setuid(int(sys.argv[3]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over RLIMIT_FSIZE, write() fails with EFBIG instead
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    m = pmon.Monitor(db, config=Config(store=StoreConfig(busy_timeout_ms=200)), flush_interval=0.05)
    recorded = 0

    def reply(**fields):
        fields["status"] = m.status()
        sys.stdout.write(json.dumps(fields, default=str) + "\\n")
        sys.stdout.flush()

    for line in sys.stdin:
        command, *args = line.split()
        if command == "record":
            slowest = 0.0
            for _ in range(int(args[0])):
                t = time.perf_counter()
                m.record_metric("disk", "cpu_usage", float(recorded))
                m.record_log("disk", "info", f"row {recorded} " + "x" * 200)
                slowest = max(slowest, time.perf_counter() - t)
                recorded += 1
            reply(recorded=recorded, slowest=slowest)
        elif command == "wait_errors":
            deadline = time.monotonic() + 30
            while m.status()["write_errors"] <= int(args[0]) and time.monotonic() < deadline:
                time.sleep(0.02)
            reply()
        elif command == "flush":
            reply(ok=m.flush(timeout=float(args[0])))
        elif command == "stop":
            reply(ok=m.stop_monitoring())
        elif command == "limit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(args[0]), hard))
            reply(ok=True)
        elif command == "unlimit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # soft <= hard: raising back is allowed
            reply(ok=True)
        elif command == "exit":
            break
""")


def test_disk_full_counts_errors_and_recovers_without_restart(spawn: Callable[..., Child], pdb: Path) -> None:
    child = spawn(DRIVER, pdb, "rlimit")
    assert child.ask("record 100")["slowest"] < 1.0
    answer = child.ask("flush 15")
    assert answer["ok"] is True and answer["status"]["write_errors"] == 0, answer
    assert _per_plugin(pdb, "plugin_metrics") == {"disk": 100}

    # "disk full": every write past 1 KiB now fails with EFBIG (the WAL is already larger)
    assert child.ask("limit 1024")["ok"] is True
    answer = child.ask("record 300")
    assert answer["slowest"] < 1.0, answer  # recording never waits for the disk
    answer = child.ask("wait_errors 0")
    assert answer["status"]["write_errors"] > 0, answer
    answer = child.ask("record 100")
    assert answer["slowest"] < 1.0, answer
    errors = child.ask("wait_errors 1")["status"]["write_errors"]
    assert errors > 1
    answer = child.ask("flush 0.3")
    assert answer["ok"] is False and answer["status"]["dropped"] == 0, answer

    assert child.ask("unlimit")["ok"] is True
    answer = child.ask("flush 15")
    assert answer["ok"] is True, answer
    assert answer["status"]["write_errors"] >= errors and answer["status"]["dropped"] == 0, answer
    assert answer["status"]["rows_written"]["metrics"] == 500, answer
    assert child.ask("stop")["ok"] is True
    child.send("exit")
    assert child.finish(timeout=30) == 0, child.stderr
    assert "Traceback" not in child.stderr, child.stderr

    assert _per_plugin(pdb, "plugin_metrics") == {"disk": 500}
    assert _per_plugin(pdb, "plugin_logs") == {"disk": 500}
    assert _one(pdb, "SELECT count(DISTINCT value) FROM plugin_metrics")[0] == 500
    assert _one(pdb, "PRAGMA integrity_check")[0] == "ok"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to chown a folder to nobody and drop a child to that user")
def test_read_only_storage_for_unprivileged_writer_counts_errors_and_recovers(
        spawn: Callable[..., Child]) -> None:
    """The writer runs as nobody; its database file and folder become read-only, then writable again.

    Two deliberate differences from the obvious set-up:
    * The child starts as root, imports everything, then drops to uid/gid 65534 itself: the interpreter
      here may live in a tree nobody cannot read (e.g. /root/.pyenv), which makes ``Popen(user=65534)``
      impossible, while dropping after import gives the same unprivileged writer.
    * chmod does not revoke access through descriptors that are already open, so an open writer
      connection keeps writing to a 0o444 file; the unwritable state is therefore met when the writer
      (re)opens the file, i.e. after ``stop_monitoring()`` and a new ``record_*``.
    """
    folder = Path(tempfile.mkdtemp(prefix="pmon-ro-", dir="/tmp"))
    try:
        os.chown(folder, NOBODY, NOBODY)
        db = folder / "ro.db"
        child = spawn(DRIVER, db, "nobody", NOBODY, cwd=folder)
        assert child.ask("record 100")["slowest"] < 1.0
        answer = child.ask("flush 15")
        assert answer["ok"] is True and answer["status"]["write_errors"] == 0, answer
        assert os.stat(db).st_uid == NOBODY
        assert child.ask("stop")["ok"] is True  # closes the connection

        for path in [db, *(Path(f"{db}{s}") for s in ("-wal", "-shm"))]:
            if path.exists():
                path.chmod(0o444)
        folder.chmod(0o555)

        answer = child.ask("record 200")
        assert answer["slowest"] < 1.0, answer
        answer = child.ask("wait_errors 0")
        assert answer["status"]["write_errors"] > 0, answer
        answer = child.ask("flush 0.3")
        assert answer["ok"] is False and answer["status"]["dropped"] == 0, answer

        folder.chmod(0o755)
        for path in [db, *(Path(f"{db}{s}") for s in ("-wal", "-shm"))]:
            if path.exists():
                path.chmod(0o644)

        answer = child.ask("flush 15")
        assert answer["ok"] is True, answer
        assert answer["status"]["rows_written"]["metrics"] == 200, answer
        assert child.ask("stop")["ok"] is True
        child.send("exit")
        assert child.finish(timeout=30) == 0, child.stderr
        assert "Traceback" not in child.stderr, child.stderr

        assert _per_plugin(db, "plugin_metrics") == {"disk": 300}
        assert _per_plugin(db, "plugin_logs") == {"disk": 300}
        assert _one(db, "PRAGMA integrity_check")[0] == "ok"
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


# -- 5. alert callbacks ----------------------------------------------------------------------


def test_raising_alert_callback_does_not_stop_the_others(pdb: Path) -> None:
    m = pmon.Monitor(pdb, config=Config(), flush_interval=0.05)
    received: list[pmon.PluginEvent] = []
    calls: list[str] = []

    def broken(event: pmon.PluginEvent) -> None:
        calls.append("broken")
        raise RuntimeError("callback bug")

    def working(event: pmon.PluginEvent) -> None:
        calls.append("working")
        received.append(event)

    try:
        m.add_alert_callback(broken)
        m.add_alert_callback(working)
        m.record_event("alerting", "alert_disk", "disk almost full", "critical", {"free": 1})
        assert m.wait_for_alerts() is True
        assert calls == ["broken", "working"]
        assert len(received) == 1
        event = received[0]
        assert (event.plugin_id, event.event_type, event.description) == ("alerting", "alert_disk", "disk almost full")
        assert event.severity == "critical" and event.data == {"free": 1}
        assert m.status()["callback_errors"] == 1

        # the failing callback stays registered and the alert thread keeps running
        m.record_event("alerting", "alert_disk", "disk full", "high")
        m.record_event("alerting", "plugin_started", "below the alert threshold", "low")
        assert m.wait_for_alerts() is True
        assert [e.description for e in received] == ["disk almost full", "disk full"]
        assert m.status()["callback_errors"] == 2
        assert m.flush(timeout=30) is True
        assert _per_plugin(pdb, "plugin_events") == {"alerting": 3}
    finally:
        m.stop_monitoring()

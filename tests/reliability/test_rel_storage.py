"""Storage faults induced for real: a writer killed mid-batch, a reader pinning the WAL, another
process holding the database exclusively, and a full disk.

Every writer here is the public ``pmon.Monitor``, on a real SQLite file in tmp_path; faults come
from real processes (``sqlite3`` connections in children), real signals and a real full file
system. The tests read the file afterwards with plain ``sqlite3``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import size

from pmon import Monitor
from pmon.config import Config, StoreConfig
from pmon.store.schema import open_reader

pytestmark = pytest.mark.reliability


def _script(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def _child_env(home: Path) -> dict[str, str]:
    """No developer pmon.toml or PMON_DB reaches a child."""
    env = {k: v for k, v in os.environ.items() if k not in ("PMON_CONFIG", "PMON_DB")}
    env["XDG_CONFIG_HOME"] = str(home / "xdg-config")
    env["XDG_DATA_HOME"] = str(home / "xdg-data")
    return env


class Child:
    """A ``python -c`` child in its own session, spoken to line by line; killed with its group at teardown."""

    def __init__(self, script: str, *args: object, home: Path) -> None:
        self.stderr_path = home / f"child-{time.monotonic_ns()}.err"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=home,
                                         env=_child_env(home), text=True, start_new_session=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def readline(self, timeout: float = 60.0) -> str:
        """The next stdout line; fails the test, with the child's stderr, on timeout or exit."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else None
        if not line:
            pytest.fail(f"child {self.proc.pid}: no line within {timeout}s (rc={self.proc.poll()}); "
                        f"stderr:\n{self.stderr}")
        return line.rstrip("\n")

    def ask(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        """Send one command line; the child answers one JSON line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.readline(timeout))

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def finish(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"child {self.proc.pid} did not exit within {timeout}s; stderr:\n{self.stderr}")


@pytest.fixture
def children(tmp_path: Path) -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows read as the console reads them: a read-only connection, which never checkpoints nor removes the WAL."""
    conn = open_reader(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _integrity(db: Path) -> str:
    return rows(db, "PRAGMA integrity_check")[0][0]


# -- SIGKILL of a writer mid-batch ------------------------------------------------------------------

ACKNOWLEDGER = _script("""
    import sys
    import pmon

    db, plugin, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = pmon.Monitor(db, flush_interval=0.02)
    seq = 0
    while True:
        for _ in range(chunk):
            m.record_metric(plugin, "cpu_usage", float(seq))  # the value is the row's sequence number
            m.record_log(plugin, "info", f"{seq} " + "x" * 300, {"seq": seq})
            if seq % 10 == 0:
                m.record_event(plugin, "tick", str(seq), "info")
            seq += 1
        committed = m.flush(timeout=60)
        print(seq if committed else -1, m.status()["write_errors"], flush=True)
""")


def _sequence_span(db: Path, sql: str) -> tuple[int, int, int, int]:
    count, low, high, distinct = rows(db, sql)[0]
    return count, low, high, distinct


def test_sigkill_mid_batch_loses_no_committed_row_and_needs_no_repair(tmp_path: Path,
                                                                       children: list[Child]) -> None:
    db = tmp_path / "killed.db"
    kills = size(8, 50)
    rng = random.Random(50)
    side_files: dict[str, int] = {}
    acknowledged_runs = 0
    for run in range(kills):
        plugin = f"run{run}"
        child = Child(ACKNOWLEDGER, db, plugin, 400, home=tmp_path)
        children.append(child)
        if run == 0:
            child.readline()  # the file exists before the first kill
        # At a random moment: while starting, opening the file, recording, committing or flushing.
        time.sleep(rng.uniform(0.0, 0.6))
        os.kill(child.proc.pid, signal.SIGKILL)
        assert child.finish() == -signal.SIGKILL
        assert child.proc.stdout is not None
        # a line the kill cut short (print writes its pieces one by one when unbuffered) acknowledged nothing
        acks = [tuple(map(int, line.split())) for line in child.proc.stdout.read().split("\n")[:-1]]
        if run == 0:
            acks.insert(0, (400, 0))
        assert all(seq > 0 and errors == 0 for seq, errors in acks), (run, acks, child.stderr)
        committed = acks[-1][0] if acks else 0
        acknowledged_runs += bool(acks)

        # The crash left the WAL and its index where SQLite recovers from them; nobody removed or replaced them.
        for suffix in ("-wal", "-shm"):
            inode = os.stat(f"{db}{suffix}").st_ino
            assert side_files.setdefault(suffix, inode) == inode, (run, suffix)
        assert _integrity(db) == "ok", run
        # Each kind's committed rows are a gap-free prefix of what was recorded, each once, and hold every ack.
        for table, sql in (
                ("metrics", "SELECT count(*), min(value), max(value), count(DISTINCT value) FROM plugin_metrics "
                            "WHERE plugin_id = ?"),
                ("logs", "SELECT count(*), min(CAST(message AS INTEGER)), max(CAST(message AS INTEGER)), "
                         "count(DISTINCT CAST(message AS INTEGER)) FROM plugin_logs WHERE plugin_id = ?")):
            count, low, high, distinct = rows(db, sql, (plugin,))[0]
            assert count >= committed, (run, table, count, committed)
            if count:
                assert (low, high, distinct) == (0, count - 1, count), (run, table)
        events = rows(db, "SELECT count(*) FROM plugin_events WHERE plugin_id = ?", (plugin,))[0][0]
        assert events >= (committed + 9) // 10, run
    assert acknowledged_runs >= kills // 2  # most kills landed after rows were committed

    # A restart after the last kill: nothing to do by hand, and the file takes new rows at once.
    after = Monitor(db, config=Config(), flush_interval=0.05)
    try:
        for i in range(100):
            after.record_metric("after", "memory_usage", float(i))
        assert after.flush(timeout=30) is True
        assert after.status()["write_errors"] == 0
    finally:
        assert after.stop_monitoring() is True
    assert rows(db, "SELECT count(*) FROM plugin_metrics WHERE plugin_id = 'after'")[0][0] == 100
    assert _integrity(db) == "ok"


# -- a live database is never taken for a truncated one --------------------------------------------

GROWER = _script("""
    import sys
    import pmon

    db, seq = sys.argv[1], 0
    while True:  # each stop closes the last connection: a checkpoint that grows the file, then the -wal goes
        m = pmon.Monitor(db, flush_interval=0.01)
        for _ in range(3000):
            m.record_log("grow", "info", f"{seq} " + "x" * 500)
            seq += 1
        m.stop_monitoring()
        print(seq, flush=True)
""")


def _short_of_its_header(db: Path) -> bool:
    """The file is shorter than its header's page count (read as _check_path reads it)."""
    with open(db, "rb") as file:
        header, size = file.read(100), os.fstat(file.fileno()).st_size
    return len(header) == 100 and int.from_bytes(header[28:32], "big") * int.from_bytes(header[16:18], "big") > size


def test_a_database_growing_through_checkpoints_is_never_refused_as_truncated(tmp_path: Path,
                                                                              children: list[Child]) -> None:
    """A checkpoint writes page 1, with the new page count, before the pages past the file's end, so for a moment
    a healthy file is shorter than its header says; the -wal holding those pages is what tells the two apart.
    Checked over and over while a writer grows the file (and, stopping, removes the -wal), it is never refused."""
    from pmon.store.schema import _check_before_writing, open_writer

    db = tmp_path / "growing.db"
    child = Child(GROWER, db, home=tmp_path)
    children.append(child)
    child.readline()  # the file exists and has been checkpointed once
    checks = caught_short = 0
    deadline = time.monotonic() + size(20, 60)
    while caught_short < 200 and time.monotonic() < deadline:
        caught_short += _short_of_its_header(db)
        _check_before_writing(db)  # what open_writer does first; raises StoreError on a refusal
        checks += 1
        if checks % 500 == 0:
            open_reader(db).close()
            open_writer(db).close()
    assert child.proc.poll() is None, child.stderr
    child.kill()
    assert caught_short > 0, f"{checks} checks never saw a checkpoint in flight; the case proved nothing"
    assert _integrity(db) == "ok"


# -- a reader holding a transaction open -------------------------------------------------------------

HOLDER = _script("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    for statement in sys.argv[2:]:
        conn.execute(statement).fetchall()
    print("held", flush=True)
    sys.stdin.readline()  # until the test lets go
    conn.execute("ROLLBACK")
    conn.close()
    print("released", flush=True)
""")


def _hold(children: list[Child], home: Path, db: Path, *statements: str) -> Child:
    """A child holding ``statements``' transaction open until ``_release``."""
    child = Child(HOLDER, db, *statements, home=home)
    children.append(child)
    assert child.readline(timeout=30) == "held"
    return child


def _release(holder: Child) -> None:
    assert holder.proc.stdin is not None
    holder.proc.stdin.write("go\n")
    holder.proc.stdin.flush()
    assert holder.readline(timeout=30) == "released"
    assert holder.finish(timeout=30) == 0, holder.stderr


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _wal_bytes(db: Path) -> int:
    try:
        return os.path.getsize(f"{db}-wal")
    except FileNotFoundError:
        return 0


def test_a_long_read_transaction_grows_the_wal_visibly_and_it_is_truncated_once_the_reader_ends(
        tmp_path: Path, children: list[Child], caplog: pytest.LogCaptureFixture) -> None:
    from pmon.store.writer import WAL_TRUNCATE_BYTES

    db = tmp_path / "pinned.db"
    caplog.set_level(logging.WARNING, logger="pmon.store")
    m = Monitor(db, config=Config(), flush_interval=0.05)
    try:
        m.record_metric("pinned", "cpu_usage", -1.0)
        assert m.flush(timeout=30) is True
        reader = _hold(children, tmp_path, db, "BEGIN", "SELECT count(*) FROM plugin_metrics")

        total, per_commit = 100_000, 500  # committed a batch at a time, as a steady host would
        for start in range(0, total, per_commit):
            for seq in range(start, start + per_commit):
                m.record_metric("pinned", "cpu_usage", float(seq))
                if seq % 10 == 0:
                    m.record_log("pinned", "info", f"row {seq}")
            assert m.flush(timeout=30) is True
        grown = _wal_bytes(db)
        # The reader's snapshot keeps SQLite from recycling the WAL: it grows past pmon's limit ...
        assert grown > WAL_TRUNCATE_BYTES, grown
        status = m.status()
        assert (status["write_errors"], status["dropped"]) == (0, 0), status
        # ... and that is reported: the size in status(), and a warning naming the file on pmon.store.
        assert status["db_size_bytes"] >= grown
        _wait_for(lambda: any("cannot be checkpointed" in r.getMessage() and str(db) in r.getMessage()
                              for r in caplog.records), 15, "a warning about the pinned WAL")
        # Other readers meanwhile see every committed row.
        assert rows(db, "SELECT count(*) FROM plugin_metrics")[0][0] == total + 1

        _release(reader)
        # With nothing more recorded, the writer checkpoints and truncates the WAL on its own.
        _wait_for(lambda: any("truncated again" in r.getMessage() for r in caplog.records), 30,
                  "the WAL to be truncated after the reader ended")
        assert _wal_bytes(db) == 0
        assert m.status()["write_errors"] == 0
    finally:
        assert m.stop_monitoring() is True
    assert rows(db, "SELECT count(*), count(DISTINCT value) FROM plugin_metrics") == [(total + 1, total + 1)]
    assert rows(db, "SELECT count(*) FROM plugin_logs")[0][0] == total // 10
    assert _integrity(db) == "ok"


# -- another process holding BEGIN EXCLUSIVE past the busy timeout --------------------------------------

BUSY_TIMEOUT_MS = 2000
NEVER_BLOCKS_S = 0.5
"""A record_* call must return well under the busy timeout; generous for a loaded 2-core machine."""


def _record_timed(m: Monitor, plugin: str, seqs: range, pause: float = 0.0) -> float:
    """Record a metric, a log and every 10th an event per sequence number; the slowest call, in seconds."""
    slowest = 0.0
    for seq in seqs:
        for record, args in ((m.record_metric, (plugin, "cpu_usage", float(seq))),
                             (m.record_log, (plugin, "info", str(seq))),
                             *(((m.record_event, (plugin, "tick", str(seq), "info")),) if seq % 10 == 0 else ())):
            started = time.perf_counter()
            record(*args)
            slowest = max(slowest, time.perf_counter() - started)
        if pause:
            time.sleep(pause)
    return slowest


def test_an_exclusive_lock_past_the_busy_timeout_never_blocks_callers_buffers_counts_drops_and_catches_up(
        tmp_path: Path, children: list[Child]) -> None:
    db = tmp_path / "exclusive.db"
    max_buffer, batch_size = 6_000, 1_000
    m = Monitor(db, config=Config(store=StoreConfig(busy_timeout_ms=BUSY_TIMEOUT_MS)), flush_interval=0.05,
                max_buffer=max_buffer, batch_size=batch_size)
    try:
        assert _record_timed(m, "excl", range(100)) < NEVER_BLOCKS_S
        assert m.flush(timeout=30) is True
        holder = _hold(children, tmp_path, db, "BEGIN EXCLUSIVE")

        # A trickle of calls while the writer waits out its busy timeout: none of them waits with it.
        slowest, seq = 0.0, 100
        while m.status()["write_errors"] < 2:  # two busy timeouts have passed
            slowest = max(slowest, _record_timed(m, "excl", range(seq, seq + 10), pause=0.002))
            seq += 10
            assert seq < 200_000, "the writer never reported the lock"
        assert "locked" in (m.status()["last_error"] or "")
        started = time.perf_counter()
        assert m.flush(timeout=0.2) is False  # flush gives up at its timeout instead of hanging
        assert time.perf_counter() - started < NEVER_BLOCKS_S + 0.2
        assert m.status()["dropped"] == 0 or seq > max_buffer

        # Past max_buffer the oldest queued rows go, counted; still no call waits.
        overflow = 3 * max_buffer
        slowest = max(slowest, _record_timed(m, "excl", range(seq, seq + overflow)))
        seq += overflow
        assert slowest < NEVER_BLOCKS_S, slowest
        status = m.status()
        assert status["dropped"] > 0, status
        assert status["queue_depth"] <= max_buffer + batch_size, status  # memory stays bounded
        dropped_while_locked = status["dropped"]

        _release(holder)
        assert m.flush(timeout=30) is True  # everything still buffered is written, without a restart
        assert _record_timed(m, "excl", range(seq, seq + 100)) < NEVER_BLOCKS_S
        seq += 100
        assert m.flush(timeout=30) is True
        status = m.status()
        assert status["dropped"] == dropped_while_locked, status
    finally:
        m.stop_monitoring()
    recorded = seq + seq + sum(1 for s in range(seq) if s % 10 == 0)
    stored = sum(rows(db, f"SELECT count(*) FROM {table} WHERE plugin_id = 'excl'")[0][0]
                 for table in ("plugin_metrics", "plugin_logs", "plugin_events"))
    assert stored + status["dropped"] == recorded
    # each row once, and the newest (recorded last, after the release) are all there
    assert rows(db, "SELECT count(*) = count(DISTINCT value), max(value) FROM plugin_metrics") == [(1, seq - 1)]
    assert rows(db, "SELECT count(*) FROM plugin_metrics WHERE value >= ?", (seq - 100,))[0][0] == 100
    assert _integrity(db) == "ok"


# -- disk full ------------------------------------------------------------------------------------------

DRIVER = _script("""
    import json, os, resource, signal, sys, time
    import pmon
    from pmon.config import Config, StoreConfig

    db, max_buffer = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over RLIMIT_FSIZE, write() fails with EFBIG instead
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    m = pmon.Monitor(db, config=Config(store=StoreConfig(busy_timeout_ms=200)), flush_interval=0.05,
                     max_buffer=max_buffer, batch_size=500)
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
                m.record_log("disk", "info", f"{recorded} " + "x" * 500)
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
        elif command == "limit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(args[0]), hard))
            reply(ok=True)
        elif command == "unlimit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            reply(ok=True)
        elif command == "stop":
            reply(ok=m.stop_monitoring())
            break
""")


class SmallDisk:
    """A 4 MiB tmpfs to fill for real; where mounting is not allowed, the writer's RLIMIT_FSIZE stands in."""

    def __init__(self, tmp_path: Path) -> None:
        self.mount = tmp_path / "small-disk"
        self.mount.mkdir()
        self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(self.mount)],
                                      capture_output=True).returncode == 0
        self.ballast = self.mount / "ballast"

    def fill(self, writer: Child) -> None:
        if not self.mounted:
            assert writer.ask("limit 1024")["ok"] is True
            return
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: the disk is full
            pass
        finally:
            os.close(fd)

    def free(self, writer: Child) -> None:
        if not self.mounted:
            assert writer.ask("unlimit")["ok"] is True
            return
        self.ballast.unlink()

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.mount)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    disk = SmallDisk(tmp_path)
    yield disk
    disk.unmount()


def _console(db: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pmon", "--db", str(db), *command], capture_output=True,
                          text=True, timeout=60, env=_child_env(db.parent.parent), cwd=db.parent.parent)


def test_a_full_disk_counts_drops_raises_nothing_still_reads_and_recovers_without_restart(
        tmp_path: Path, children: list[Child], small_disk: SmallDisk) -> None:
    db = small_disk.mount / "full.db"
    max_buffer = 2_000
    writer = Child(DRIVER, db, max_buffer, home=tmp_path)
    children.append(writer)
    assert writer.ask("record 200")["slowest"] < NEVER_BLOCKS_S
    answer = writer.ask("flush 15")
    assert answer["ok"] is True and answer["status"]["write_errors"] == 0, answer

    small_disk.fill(writer)
    answer = writer.ask("record 3000")  # more than the disk takes, and more than max_buffer holds
    assert answer["slowest"] < NEVER_BLOCKS_S, answer
    answer = writer.ask("wait_errors 0")
    status = answer["status"]
    assert status["write_errors"] > 0, status
    assert "disk" in status["last_error"], status  # "database or disk is full"; EFBIG: "disk I/O error"
    assert status["dropped"] > 0, status
    assert writer.ask("flush 0.3")["ok"] is False

    # The console still reads the full disk: what was committed before is all there.
    shown = _console(db, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["rows"]["logs"] >= 200
    shown = _console(db, "logs", "--plugin", "disk", "--limit", "5", "--json")
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == 5

    small_disk.free(writer)
    answer = writer.ask("flush 30")
    assert answer["ok"] is True, answer
    answer = writer.ask("record 200")  # rows recorded after the recovery are written too
    assert writer.ask("flush 30")["ok"] is True
    answer = writer.ask("stop")
    assert answer["ok"] is True, answer
    assert writer.finish() == 0
    assert "Traceback" not in writer.stderr, writer.stderr
    status, recorded = answer["status"], 3400

    metrics = rows(db, "SELECT count(*), count(DISTINCT value), max(value) FROM plugin_metrics")[0]
    logs = rows(db, "SELECT count(*) FROM plugin_logs")[0][0]
    assert metrics[0] + logs + status["dropped"] == 2 * recorded, (metrics, logs, status)
    assert metrics[0] == metrics[1] and metrics[2] == recorded - 1
    assert status["rows_written"]["metrics"] + status["rows_written"]["logs"] == metrics[0] + logs
    assert _integrity(db) == "ok"

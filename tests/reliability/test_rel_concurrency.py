"""Many writers at once: processes, forked children, multiprocessing workers and threads.

Each writer records rows carrying its own sequence numbers; afterwards the SQLite file itself
must hold every row exactly once, and no writer may have seen a lock error, a drop or a hang.
Children are ``python -c`` scripts started in their own session; a hung one fails the test at
its timeout instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import size

from pmon import Monitor
from pmon.config import Config
from pmon.store.schema import open_reader

pytestmark = pytest.mark.reliability


def _script(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def _rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = open_reader(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _per_plugin(db: Path, table: str) -> dict[str, int]:
    return dict(_rows(db, f"SELECT plugin_id, count(*) FROM {table} GROUP BY plugin_id"))


def _env(home: Path) -> dict[str, str]:
    """No developer pmon.toml or PMON_DB reaches a child."""
    env = {k: v for k, v in os.environ.items() if k not in ("PMON_CONFIG", "PMON_DB")}
    env["XDG_CONFIG_HOME"] = str(home / "xdg-config")
    env["XDG_DATA_HOME"] = str(home / "xdg-data")
    return env


def _start(home: Path, script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=home, env=_env(home), text=True,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _report(proc: subprocess.Popen[str], timeout: float) -> tuple[dict[str, Any], str]:
    """The child's last stdout line as JSON, and its stderr; a child that hangs is killed and fails the test."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        pytest.fail(f"child {proc.pid} hung for {timeout}s (a deadlock?); stderr:\n{err}")
    assert proc.returncode == 0, f"child failed (rc={proc.returncode}); stdout:\n{out}\nstderr:\n{err}"
    return json.loads(out.splitlines()[-1]), err


# -- 8 writer processes ----------------------------------------------------------------------------

WRITER = _script("""
    import json, sys, time
    import pmon

    db, name, total, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    time.sleep(max(0.0, start_at - time.time()))  # every writer opens the (new) file at the same moment
    m = pmon.Monitor(db, flush_interval=0.05)
    for seq in range(total):
        m.record_metric(name, "cpu_usage", float(seq))
        if seq % 10 == 0:
            m.record_log(name, "info", str(seq))
        if seq % 500 == 499:  # many small transactions, so the writers contend for the lock all along
            m.flush(timeout=60)
    stopped = m.stop_monitoring(timeout=60)
    print(json.dumps({"stopped": stopped, "status": m.status()}, default=str), flush=True)
""")


def test_eight_writer_processes_store_every_row_once_without_a_lock_error(tmp_path: Path) -> None:
    db = tmp_path / "eight.db"
    writers, per_writer = 8, 10_000
    start_at = time.time() + 2.0
    procs = [_start(tmp_path, WRITER, db, f"writer{n}", per_writer, start_at) for n in range(writers)]
    for n, proc in enumerate(procs):
        report, stderr = _report(proc, timeout=120)
        assert "locked" not in stderr and "Traceback" not in stderr, stderr
        status = report["status"]
        assert report["stopped"] is True, report
        assert (status["write_errors"], status["dropped"], status["last_error"]) == (0, 0, None), status
        assert status["rows_written"]["metrics"] == per_writer, status

    total = writers * per_writer
    assert _rows(db, "SELECT count(*), count(DISTINCT plugin_id || ':' || value) FROM plugin_metrics") == [(total, total)]
    assert _per_plugin(db, "plugin_metrics") == {f"writer{n}": per_writer for n in range(writers)}
    assert _per_plugin(db, "plugin_logs") == {f"writer{n}": per_writer // 10 for n in range(writers)}
    assert _rows(db, "PRAGMA integrity_check")[0][0] == "ok"


# -- fork() after start_monitoring, and multiprocessing --------------------------------------------

FORKER = _script("""
    import json, os, sys, threading, time
    import pmon

    db, forks, per_child = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    m = pmon.Monitor(db, flush_interval=0.05)
    m.start_monitoring()  # the writer, the host sampler and the analysis thread are running
    recorded = {"parent": 0}
    stop = threading.Event()

    def parent_records():
        while not stop.is_set():
            for _ in range(50):
                m.record_metric("parent", "cpu_usage", float(recorded["parent"]))
                recorded["parent"] += 1
            time.sleep(0.001)

    recorder = threading.Thread(target=parent_records)
    recorder.start()
    exits = []
    for k in range(forks):
        time.sleep(0.02)
        pid = os.fork()
        if pid == 0:  # the child records and exits, half through the interpreter's exit, half through os._exit
            for i in range(per_child):
                m.record_metric(f"child{k}", "memory_usage", float(i))
                m.record_log(f"child{k}", "info", str(i))
            if k % 2:
                sys.exit(0)
            os._exit(0 if m.flush(timeout=30) else 3)
        exits.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    stop.set()
    recorder.join()
    flushed = m.flush(timeout=60)
    stopped = m.stop_monitoring(timeout=60)
    print(json.dumps({"exits": exits, "recorded": recorded["parent"], "flushed": flushed, "stopped": stopped,
                      "status": m.status()}, default=str), flush=True)
""")


def test_fork_after_start_keeps_every_row_of_parent_and_children_once_without_deadlock(tmp_path: Path) -> None:
    db = tmp_path / "fork.db"
    forks, per_child = size(6, 30), 300
    report, stderr = _report(_start(tmp_path, FORKER, db, forks, per_child), timeout=120)
    assert "Traceback" not in stderr, stderr
    assert report["exits"] == [0] * forks, (report, stderr)
    assert report["flushed"] is True and report["stopped"] is True, report
    assert (report["status"]["write_errors"], report["status"]["dropped"]) == (0, 0), report

    recorded = report["recorded"]
    metrics = _per_plugin(db, "plugin_metrics")
    assert {k: v for k, v in metrics.items() if k.startswith(("parent", "child"))} == {  # not the host sampler's
        "parent": recorded, **{f"child{k}": per_child for k in range(forks)}}
    assert _per_plugin(db, "plugin_logs") == {f"child{k}": per_child for k in range(forks)}
    # the parent's rows, queued or not when it forked, exactly once: no child wrote them again
    assert _rows(db, "SELECT count(DISTINCT value), min(value), max(value) FROM plugin_metrics "
                     "WHERE plugin_id = 'parent'") == [(recorded, 0.0, recorded - 1.0)]


PARENT_CLOSES_FIRST = _script("""
    import json, os, sys, time
    import pmon

    db = sys.argv[1]
    m = pmon.Monitor(db, flush_interval=0.05)
    m.start_monitoring()
    m.record_metric("parent", "cpu_usage", 1.0)
    assert m.flush(timeout=30)

    def open_descriptors():
        target = os.path.realpath(db)
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == target for fd in os.listdir("/proc/self/fd"))

    deadline = time.monotonic() + 30
    while open_descriptors() < 2 and time.monotonic() < deadline:  # the analysis thread has its connections open
        time.sleep(0.05)
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            for i in range(200):
                m.record_metric("child.before", "memory_usage", float(i))
            before = m.flush(timeout=30)
            os.write(to_parent_w, b"1")
            os.read(to_child_r, 1)  # the parent has closed the database
            for i in range(200):
                m.record_metric("child.after", "memory_usage", float(i))
            after = m.flush(timeout=30)
            stopped = m.stop_monitoring(timeout=30)
            os.write(to_parent_w, json.dumps({"before": before, "after": after, "stopped": stopped}).encode())
            code = 0
        finally:
            os._exit(code)
    assert os.read(to_parent_r, 1) == b"1"
    parent_stopped = m.stop_monitoring(timeout=30)
    os.write(to_child_w, b"1")
    child = json.loads(os.read(to_parent_r, 65536))
    print(json.dumps({"parent_stopped": parent_stopped, "child": child,
                      "child_exit": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}), flush=True)
""")


def test_a_forked_childs_acknowledged_rows_survive_the_parent_closing_the_database_first(tmp_path: Path) -> None:
    db = tmp_path / "closes-first.db"
    report, stderr = _report(_start(tmp_path, PARENT_CLOSES_FIRST, db), timeout=120)
    assert report["parent_stopped"] is True and report["child_exit"] == 0, (report, stderr)
    assert report["child"] == {"before": True, "after": True, "stopped": True}, report
    metrics = _per_plugin(db, "plugin_metrics")
    assert (metrics.get("child.before"), metrics.get("child.after")) == (200, 200), metrics


MULTIPROCESSING = _script("""
    import json, multiprocessing, sys
    import pmon

    db, workers, per_task = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    m = pmon.Monitor(db, flush_interval=5.0)  # only exit-time flushing can commit a child's rows in time
    m.start_monitoring(sample=False)
    m.record_metric("mp.parent", "cpu_usage", 1.0)

    def task(k):
        for i in range(per_task):
            m.record_metric(f"mp.task{k}", "memory_usage", float(i))
        return k  # no flush(): the worker's exit has to commit its rows

    fork = multiprocessing.get_context("fork")
    processes = [fork.Process(target=task, args=(k,)) for k in range(workers)]
    for proc in processes:
        proc.start()
    for proc in processes:
        proc.join(60)
    pool = fork.Pool(2)
    done = pool.map(task, range(workers, 2 * workers))
    pool.close()
    pool.join()
    flushed = m.flush(timeout=30)
    stopped = m.stop_monitoring(timeout=30)
    print(json.dumps({"exitcodes": [p.exitcode for p in processes], "done": done, "flushed": flushed,
                      "stopped": stopped}), flush=True)
""")


def test_multiprocessing_fork_workers_commit_their_rows_when_they_exit(tmp_path: Path) -> None:
    db = tmp_path / "mp.db"
    workers, per_task = 4, 500
    report, stderr = _report(_start(tmp_path, MULTIPROCESSING, db, workers, per_task), timeout=120)
    assert "Traceback" not in stderr, stderr
    assert report["exitcodes"] == [0] * workers and report["done"] == list(range(workers, 2 * workers)), report
    assert report["flushed"] is True and report["stopped"] is True, report
    assert _per_plugin(db, "plugin_metrics") == {
        "mp.parent": 1, **{f"mp.task{k}": per_task for k in range(2 * workers)}}


# -- 20 threads ------------------------------------------------------------------------------------


def test_twenty_threads_recording_at_once_store_every_row_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "threads.db"
    threads, per_thread = 20, size(3_000, 30_000)
    # Room for everything: this case is about concurrency, not about the buffer overflowing.
    m = Monitor(db, config=Config(), flush_interval=0.05, max_buffer=4 * threads * per_thread)
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def record(t: int) -> None:
        try:
            start.wait(30)  # the first calls race to start the writer lazily
            for i in range(per_thread):
                seq = t * per_thread + i
                m.record_metric(f"thread{t}", "cpu_usage", float(seq))
                m.record_log(f"thread{t}", "info", str(seq))
                if i % 50 == 0:
                    m.record_event(f"thread{t}", "tick", str(seq), "info")
                if i % 1000 == 999 and t % 4 == 0:
                    assert m.flush(timeout=60) is True
        except BaseException as exc:  # reported to the test's thread below
            failures.append(exc)

    workers = [threading.Thread(target=record, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    try:
        assert not [w for w in workers if w.is_alive()], "a recording thread hung"
        assert failures == []
        assert m.flush(timeout=60) is True
        status = m.status()
        assert (status["write_errors"], status["dropped"]) == (0, 0), status
    finally:
        assert m.stop_monitoring() is True

    total = threads * per_thread
    assert _rows(db, "SELECT count(*), count(DISTINCT value) FROM plugin_metrics") == [(total, total)]
    assert _rows(db, "SELECT count(*), count(DISTINCT message) FROM plugin_logs") == [(total, total)]
    assert _per_plugin(db, "plugin_events") == {f"thread{t}": (per_thread + 49) // 50 for t in range(threads)}
    # each thread's rows landed under its own plugin, in its own order
    assert _rows(db, "SELECT count(*) FROM plugin_metrics WHERE CAST(value AS INTEGER) / ? "
                     "!= CAST(substr(plugin_id, 7) AS INTEGER)", (per_thread,)) == [(0,)]
    assert _rows(db, "SELECT count(*) FROM (SELECT plugin_id, value, lag(value) OVER "
                     "(PARTITION BY plugin_id ORDER BY id) AS before FROM plugin_metrics) "
                     "WHERE value <= before") == [(0,)]

"""The demo's background host: a real child process recording into a real file, stopped cleanly."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pmon import Monitor
from pmon.demo import start_background_host, stop_background_host
from pmon.store.queries import plugins


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_background_host_records_live_and_flushes_when_stopped(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    child = start_background_host(db, history_hours=0.05)
    deadline = time.monotonic() + 30
    while _count(db, "plugin_metrics") < 8 * 5 * 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    problems = stop_background_host(child)
    assert child.returncode == 0, problems
    assert problems == ""
    conn = sqlite3.connect(db)
    live = conn.execute("SELECT max(timestamp) FROM plugin_metrics").fetchone()[0]
    conn.close()
    assert live > time.time() - 10  # recorded in real time, not only the pre-filled history


def test_background_host_stops_when_its_console_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    # A shell stands in for the console: it starts the host with its own pid and exits.
    script = (f"{sys.executable} -m pmon --db {db} demo --headless --quiet --history 0 --parent-pid $$ & "
              "echo $!; sleep 1")
    host_pid = int(subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{host_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{host_pid}").exists() or "Z" in Path(f"/proc/{host_pid}/stat").read_text().split()[2]


def test_lifecycle_events_set_the_stored_status(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05)
    monitor.record_metric("mailer", "cpu_usage", 5.0, timestamp=100.0)
    monitor.record_event("mailer", "stopped", "relay unreachable", "high", timestamp=101.0)
    monitor.flush()
    conn = sqlite3.connect(db)
    assert [p.status for p in plugins(conn)] == ["down"]
    monitor.record_event("mailer", "restarted", "back", timestamp=150.0)
    monitor.record_event("mailer", "stopped", "older news, arriving in the same batch", timestamp=120.0)
    monitor.flush()
    assert [p.status for p in plugins(conn)] == ["active"]
    monitor.stop_monitoring()
    conn.close()


def test_a_second_demo_continues_the_history_instead_of_recording_it_twice(tmp_path: Path) -> None:
    from pmon.demo import run_demo

    db = tmp_path / "demo.db"
    run_demo(db, duration=0, history_hours=0.5, echo=None)
    first = _count(db, "plugin_metrics")
    run_demo(db, duration=0, history_hours=0.5, echo=None)
    assert first > 0
    assert _count(db, "plugin_metrics") - first < first / 10  # only the few seconds in between

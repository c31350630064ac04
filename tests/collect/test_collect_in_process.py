"""In-process sampling: start_monitoring() records the host process and CPU per registered plugin thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pmon import Monitor
from tests_helpers_sql import values


def test_busy_and_idle_plugin_threads_get_their_own_cpu(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0.2, host_plugin="app")
    stop = threading.Event()

    def busy() -> None:
        with monitor.register_thread("busy_plugin"):
            while not stop.is_set():
                sum(range(1000))

    def idle() -> None:
        monitor.register_thread("idle_plugin")
        stop.wait()

    workers = [threading.Thread(target=busy), threading.Thread(target=idle)]
    for worker in workers:
        worker.start()
    monitor.start_monitoring()
    time.sleep(1.5)
    stop.set()
    for worker in workers:
        worker.join()
    monitor.stop_monitoring()
    busy_cpu, idle_cpu = values(db, "busy_plugin", "cpu_usage"), values(db, "idle_plugin", "cpu_usage")
    assert len(busy_cpu) >= 3 and len(idle_cpu) >= 3
    assert max(busy_cpu) > 40 and max(idle_cpu) < 5
    assert sorted(busy_cpu)[len(busy_cpu) // 2] > 10 * max(max(idle_cpu), 0.5)
    assert values(db, "app", "memory_usage") and values(db, "app", "process.threads")[-1] >= 3
    assert max(values(db, "app", "cpu_usage")) > 40  # the host includes its busy thread


def test_sampling_stops_with_the_monitor_and_can_be_turned_off(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    off = Monitor(db, flush_interval=0.05, sample_interval=0)
    off.start_monitoring()
    off.record_metric("p", "cpu_usage", 1.0)
    time.sleep(0.3)
    off.stop_monitoring()
    assert values(db, "host", "memory_usage") == []
    on = Monitor(db, flush_interval=0.05, sample_interval=0.1)
    on.start_monitoring()
    time.sleep(0.5)
    on.stop_monitoring()
    count = len(values(db, "host", "memory_usage"))
    time.sleep(0.4)
    assert count >= 2 and len(values(db, "host", "memory_usage")) == count
    assert not [t for t in threading.enumerate() if t.name == "pmon-sampler"]


def test_registering_validates_the_plugin_id(tmp_path: Path) -> None:
    monitor = Monitor(tmp_path / "pmon.db")
    try:
        monitor.register_thread("bad id")
    except ValueError as exc:
        assert "plugin_id" in str(exc)
    else:
        raise AssertionError("a bad plugin id was accepted")

"""Console test helpers: a small store with fixed timestamps, a frozen clock, screen text."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.pilot import Pilot

from pmon import LogLevel, Monitor, Severity
from pmon.analysis.alerting import AlertState, Transition
from pmon.store import alert_store
from pmon.store.schema import open_writer

NOW = 1_700_000_000.0
"""The frozen "now" of every console test (2023-11-14 22:13:20 UTC)."""

HOSTILE = "[@click=app.quit]boom[/] [red]x[/] \x1b]0;pwn\x07 \x1b[31mred\r\u202eevil"
"""Markup and terminal escapes a plugin might record; the console must show them as text."""

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/payments/charge.py", line 12, in charge\n'
    "    authorise(card, amount)\n"
    '  File "/srv/payments/gateway.py", line 40, in authorise\n'
    '    raise PaymentDeclined("gateway timeout")\n'
    "PaymentDeclined: gateway timeout\n"
)


def record_store(path: Path, *, hostile: bool = False) -> Path:
    """Three plugins (active, idle, down) with metrics, logs, events of every category and severity, and snapshots."""
    monitor = Monitor(path, flush_interval=0.05)
    try:
        plugins = {"alpha": NOW - 5, "beta": NOW - 120, "gamma": NOW - 600}
        for plugin, last in plugins.items():
            for i in range(60):
                t = last - (59 - i) * 2
                monitor.record_metric(plugin, "cpu_usage", 10 + (i % 10) * 3, timestamp=t)
                monitor.record_metric(plugin, "memory_usage", 200 + i, timestamp=t)
                monitor.record_metric(plugin, "response_time", 40 + i, timestamp=t)
                monitor.record_metric(plugin, "error_rate", 0.01, timestamp=t)
                monitor.record_metric(plugin, "throughput", 50.0, timestamp=t)
            for n in range(3):
                t = last - 600 + n * 200
                monitor.create_snapshot(plugin, {
                    "cpu_usage": 20.0 + n * 5, "memory_usage": 200.0 + n * 30, "response_time": 40.0 + n * 10,
                    "error_rate": 0.01 * (n + 1), "request_count": 1000 + n * 100, "throughput": 50.0 - n,
                    "disk_io": {"read_bytes": 1000 * (n + 1), "write_bytes": 500},
                    "network_io": {"bytes_sent": 2000 + n, "bytes_recv": 4000},
                    "custom_metrics": {"queue_depth": 3 + n},
                }, timestamp=t)
        monitor.record_event("alpha", "user_login", "admin signed in", Severity.LOW, {"user": "ops"},
                             timestamp=NOW - 900)
        monitor.record_event("beta", "request_failed", "upstream 502", Severity.MEDIUM, {"status": 502},
                             timestamp=NOW - 800)
        monitor.record_event("alpha", "alert_memory", "memory above 90%", Severity.CRITICAL,
                             {"rss_mb": 1900, "limit_mb": 2048}, timestamp=NOW - 700)
        for plugin, last in plugins.items():
            monitor.record_event(plugin, "startup", f"{plugin} started", Severity.INFO, {"pid": 1}, timestamp=last - 100)
        monitor.record_event("gamma", "crash", "gamma stopped answering", Severity.HIGH, timestamp=plugins["gamma"])
        monitor.record_log("alpha", LogLevel.DEBUG, "handled 52 requests", {"window_s": 1}, timestamp=NOW - 30)
        monitor.record_log("alpha", LogLevel.INFO, "health check ok", {"latency_ms": 12.5}, timestamp=NOW - 20)
        monitor.record_log("beta", LogLevel.WARNING, "slow query took 900 ms\nsecond line", {"shard": 3},
                           timestamp=NOW - 130)
        monitor.record_log("alpha", LogLevel.ERROR, "PaymentDeclined: gateway timeout",
                           {"order_id": "ord_12345", "retry": 2}, TRACEBACK, timestamp=NOW - 10)
        if hostile:
            monitor.record_log("alpha", LogLevel.CRITICAL, HOSTILE, {"note": HOSTILE}, HOSTILE, timestamp=NOW - 5)
        monitor.flush()
    finally:
        monitor.stop_monitoring()
    return path


def frozen_clock() -> float:
    return NOW


async def wait_until(pilot: Pilot, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the app run (workers, timers) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)
    await pilot.pause()  # let the screen catch up with the widgets


def screen_text(app: App) -> str:
    """The visible screen as plain text lines, as a user reads it.

    Built like ``App.export_screenshot`` (from the screen's compositor) but
    keeping the text of every cell, spaces included.
    """
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    return "\n".join("".join(segment.text for strip in line for segment in strip) for line in update.strips)


def firing(rule: str, plugin: str, metric: str, value: float, threshold: float, at: float) -> Transition:
    """A rule's alert starting to fire at ``at``, as the evaluator hands it to the store."""
    return Transition(rule, plugin, metric, AlertState.FIRING, AlertState.PENDING, value, threshold, threshold - 10,
                      ">", "high", at - 30, at, f"{rule} on {plugin}: {metric} {value:g} > {threshold:g}")


def record_alerts(path: Path) -> dict[str, int]:
    """Two firing alerts (alpha's cpu_hot, beta's mem_high) with their events, a leak finding on alpha and a
    resolved one, as the analysis runner records them; returns the alert ids by rule."""
    changes = [firing("cpu_hot", "alpha", "cpu_usage", 97.0, 90.0, NOW - 300),
               firing("mem_high", "beta", "memory_usage", 900.0, 500.0, NOW - 200)]
    conn = open_writer(path)
    try:
        ids = alert_store.save_transitions(conn, changes)
    finally:
        conn.close()
    monitor = Monitor(path, flush_interval=0.05)
    try:
        for change, alert_id in zip(changes, ids):
            monitor.record_event(change.plugin_id, "alert_firing", change.description, Severity.HIGH,
                                 change.event_data(alert_id), timestamp=change.at)
        leak = {"detector": "leak", "metric": "memory_usage", "start": NOW - 3000, "end": None, "slope_mb_per_h": 40}
        monitor.record_event("alpha", "alert_leak", "memory_usage rising 40 MB/h", Severity.MEDIUM, leak,
                             timestamp=NOW - 1000)
        spike = {"detector": "error_spike", "metric": "error_rate", "start": NOW - 2500, "end": None}
        monitor.record_event("alpha", "alert_error_spike", "error rate 5x the baseline", Severity.HIGH, spike,
                             timestamp=NOW - 2400)
        monitor.record_event("alpha", "alert_error_spike_resolved", "resolved: error rate 5x the baseline",
                             Severity.INFO, {**spike, "end": NOW - 1900}, timestamp=NOW - 1900)
        monitor.flush()
    finally:
        monitor.stop_monitoring()
    return {change.rule: alert_id for change, alert_id in zip(changes, ids) if alert_id is not None}


def record_errors(path: Path, message: str = "PaymentDeclined: gateway timeout for order {n}", times: int = 5,
                  plugin: str = "alpha", traceback: str | None = TRACEBACK) -> None:
    """``times`` error logs of one failure (numbers differ, so they group by fingerprint) in the last hour."""
    monitor = Monitor(path, flush_interval=0.05)
    try:
        for n in range(times):
            monitor.record_log(plugin, LogLevel.ERROR, message.format(n=1000 + n), {"n": n}, traceback,
                               timestamp=NOW - 3000 + n * 100)
        monitor.flush()
    finally:
        monitor.stop_monitoring()

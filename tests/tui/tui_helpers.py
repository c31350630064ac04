"""Console test helpers: a small store with fixed timestamps, a frozen clock, screen text."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.pilot import Pilot

from pmon import LogLevel, Monitor, Severity

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

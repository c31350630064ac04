"""`pmon collect`: the headless daemon's main loop, signals, config reloads and schedules.

One thread samples on a fixed schedule (a late tick is skipped, never
bunched); the writer thread commits; a retention thread prunes and rolls up.
SIGTERM / SIGINT stop the loop, flush and exit 0; SIGHUP reloads pmon.toml
(a broken file is reported and the running config kept).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pmon.collect.collector import STEADY_HEARTBEAT_SECONDS, Collector
from pmon.collect.daemon_lock import DaemonLock
from pmon.collect.self_monitor import SelfMonitor
from pmon.collect.snapshots import build_snapshots
from pmon.config import Config, ConfigError, find_config_file, load_config
from pmon.monitor import Monitor
from pmon.plain_text import escape_controls
from pmon.store.schema import StoreError, open_reader, open_writer
from pmon.store.lifecycle_queries import StoredLifecycle, stored_lifecycle
from pmon.store.window_queries import window_aggregates

if TYPE_CHECKING:
    from pmon.analysis.runner import AnalysisThread, PassReport
    from pmon.api.server import ApiServer

log = logging.getLogger("pmon.collect")

EXIT_OK = 0
"""Stopped by SIGTERM / SIGINT, or ``--once`` finished."""
EXIT_FAILED = 1
"""Another daemon already collects into this database, or the daemon failed while running."""
EXIT_USAGE = 2
"""Bad arguments, config file or database path (one line on stderr says which)."""

STOP_TIMEOUT_SECONDS = 4.5
API_SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL before another gets it, while the daemon serves the API."""
ONCE_BASELINE_SECONDS = 0.5
FAILURE_LOG_SECONDS = 60.0


class ApiUnavailable(Exception):
    """The API was asked for and cannot start; the message is one line for the user."""


@dataclass
class DaemonStats:
    """Counters the loop keeps for its log lines and tests."""

    ticks: int = 0
    skipped_ticks: int = 0
    failed_ticks: int = 0
    snapshots: int = 0
    reloads: int = 0
    failed_reloads: int = 0


class Daemon:
    """Owns the monitor, the collector and the schedules for one database."""

    def __init__(self, config: Config, db_path: Path, *, config_file: Path | None = None) -> None:
        self.config = config
        self.db_path = db_path
        self.config_file = config_file or config.file
        self.stats = DaemonStats()
        self.monitor = Monitor(db_path, config=config)
        self.collector = Collector(self.monitor, config.plugins, base_dir=self._base_dir(config),
                                   system=config.collector.system)
        self.collector.heartbeat = _heartbeat(config)
        self.self_monitor = SelfMonitor(self.monitor) if config.collector.self_monitoring else None
        self.lock = DaemonLock(db_path)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wakeup = threading.Event()
        self._reader: sqlite3.Connection | None = None
        self._retention: threading.Thread | None = None
        self._analysis: AnalysisThread | None = None
        self.api: ApiServer | None = None
        """The HTTP API, when ``[api] enabled`` (or ``--api``)."""
        self.failure: str | None = None
        """Why the daemon could not start, in one line (for a detached start's report)."""
        self._failure_logged_at = -FAILURE_LOG_SECONDS
        self.started_at = time.time()
        self.stop_reason: str | None = None
        """The signal that stopped the daemon, for the last log lines."""

    @staticmethod
    def _base_dir(config: Config) -> Path | None:
        return config.file.parent if config.file is not None else None

    # -- control ----------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop after the current tick (signal-safe: sets flags)."""
        self._stop.set()
        self._wakeup.set()

    def request_reload(self) -> None:
        """Reload pmon.toml before the next tick (signal-safe)."""
        self._reload.set()
        self._wakeup.set()  # the loop sleeps until the next tick; a reload should not wait for it

    def install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT stop, SIGHUP reloads. Call from the main thread."""
        def stop(signum: int, frame: FrameType | None) -> None:
            self.stop_reason = signal.Signals(signum).name  # logged by the loop: logging here could re-enter
            self.request_stop()

        def reload(signum: int, frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    # -- running ----------------------------------------------------------------

    def run(self, *, once: bool = False, on_ready: Callable[[], None] | None = None) -> int:
        """Sample until stopped (or once); returns the exit code.

        ``on_ready`` runs once the lock is held and the database opens: a
        detached start reports success only then.
        """
        open_writer(self.db_path, self.config.store.busy_timeout_ms).close()  # a bad path fails here, clearly
        self.lock.acquire()
        self.started_at = time.time()
        code = EXIT_OK
        try:
            self.monitor.start_monitoring(sample=False)
            if self.config.api.enabled:
                self._start_api()
            if on_ready is not None:
                on_ready()
            names = ", ".join(self.config.plugins) or "none configured"
            log.info("collecting into %s every %gs (pid %d); plugins: %s", self.db_path,
                     self.config.collector.sample_interval, os.getpid(), escape_controls(names))
            self.collector.seed(self._stored_lifecycle())
            if once:
                self._run_once()
            else:
                self._start_retention()
                self._start_analysis()
                self._loop()
        except ApiUnavailable as exc:
            self.failure = str(exc)
            log.error("%s", exc)
            code = EXIT_FAILED
        except Exception:  # never a silent death: a detached daemon has only its log
            log.exception("the daemon failed; stopping")
            code = EXIT_FAILED
        finally:
            if self.stop_reason:
                log.info("received %s: flushing and stopping", self.stop_reason)
            if not self._shutdown():
                code = EXIT_FAILED
        return code

    def _run_once(self) -> None:
        """A baseline reading, a short pause, then the sample that has rates; a snapshot; flush."""
        self.collector.tick()
        time.sleep(min(ONCE_BASELINE_SECONDS, self.config.collector.sample_interval))
        report = self.collector.tick()
        if self.self_monitor is not None:
            self.self_monitor.record(report.seconds)
        self._snapshot(window=time.time() - self.started_at)
        log.info("sampled %d plugins (%d processes), %d metrics, %d events", report.plugins, report.processes,
                 report.metrics, report.events)

    def _loop(self) -> None:
        interval = self.config.collector.sample_interval
        next_tick = time.monotonic()
        next_snapshot = time.monotonic() + self.config.collector.snapshot_interval
        while not self._stop.is_set():
            if self._reload.is_set():
                self._reload.clear()
                self._apply_reload()
                interval = self.config.collector.sample_interval
            try:
                report = self.collector.tick()
                self.stats.ticks += 1
                log.debug("tick %d: %d plugins, %d processes, %d metrics, %d events in %.1f ms", self.stats.ticks,
                          report.plugins, report.processes, report.metrics, report.events, report.seconds * 1000)
                if self.self_monitor is not None:
                    self.self_monitor.record(report.seconds)
                now = time.monotonic()
                if now >= next_snapshot:
                    next_snapshot = now + self.config.collector.snapshot_interval
                    self._snapshot(window=self.config.collector.snapshot_interval)
            except Exception:  # one bad tick (a bug, an odd /proc) must not end months of collecting
                self.stats.failed_ticks += 1
                now = time.monotonic()
                if now - self._failure_logged_at >= FAILURE_LOG_SECONDS:
                    self._failure_logged_at = now
                    log.exception("a sampling tick failed (%d so far); the next tick goes on",
                                  self.stats.failed_ticks)
            next_tick += interval
            if next_tick < now:  # a tick took longer than the interval: skip, don't bunch
                missed = int((now - next_tick) // interval) + 1
                self.stats.skipped_ticks += missed
                next_tick += missed * interval
            self._wakeup.wait(max(0.0, next_tick - time.monotonic()))
            self._wakeup.clear()

    def _snapshot(self, window: float) -> None:
        """Snapshots of every plugin with metrics recorded in the last ``window`` seconds."""
        now = time.time()
        since = now - window
        try:
            self.monitor.flush(timeout=2.0)
            if self._reader is None:
                self._reader = open_reader(self.db_path)
            aggregates = window_aggregates(self._reader, since, now + 0.001)  # this millisecond included
        except (sqlite3.Error, StoreError) as exc:
            log.warning("snapshot skipped: cannot read %s: %s", self.db_path, exc)
            self._close_reader()
            return
        span = max(window, 1e-3)
        for plugin_id, data in build_snapshots(aggregates, span).items():
            self.monitor.create_snapshot(plugin_id, data, timestamp=now)
            self.stats.snapshots += 1
        log.debug("snapshots: %d so far", self.stats.snapshots)

    def _stored_lifecycle(self) -> dict[str, StoredLifecycle]:
        """The store's memory of the configured plugins ({} if it cannot be read: every plugin is then new)."""
        try:
            conn = open_reader(self.db_path)
        except StoreError:
            return {}
        try:
            return stored_lifecycle(conn, self.config.plugins)
        except sqlite3.Error as exc:
            log.warning("cannot read the plugins' stored status (%s); announcing each as new", exc)
            return {}
        finally:
            conn.close()

    def _close_reader(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except sqlite3.Error:
                pass
            self._reader = None

    def _apply_reload(self) -> None:
        file = self.config_file or find_config_file()
        try:
            new = load_config(file)
        except ConfigError as exc:
            self.stats.failed_reloads += 1
            log.error("reload failed, keeping the running config: %s", escape_controls(str(exc)))
            return
        if new.store != self.config.store or new.monitor != self.config.monitor or new.api != self.config.api:
            log.warning("reload: [store], [monitor] and [api] changes take effect after a restart")
            new = dataclasses.replace(new, api=self.config.api)
        self.config = new
        self.collector.configure(new.plugins, system=new.collector.system)
        self.collector.base_dir = self._base_dir(new)
        self.collector.heartbeat = _heartbeat(new)
        if new.collector.self_monitoring and self.self_monitor is None:
            self.self_monitor = SelfMonitor(self.monitor)
        elif not new.collector.self_monitoring:
            self.self_monitor = None
        if self._analysis is not None:
            self._analysis.reconfigure(new)
        self.stats.reloads += 1
        log.info("reloaded %s: plugins: %s", file or "defaults", escape_controls(", ".join(new.plugins) or "none"))

    # -- API --------------------------------------------------------------------

    def _start_api(self) -> None:
        """Serve the HTTP API; ApiUnavailable (one line) when it cannot."""
        try:
            from pmon.api.listen import parse_listen
            from pmon.api.security import resolve_token
            from pmon.api.server import ApiServer, ApiStartError
        except ImportError as exc:
            raise ApiUnavailable(f"the API needs aiohttp and prometheus-client: pip install 'pmon[api]' ({exc})") from None
        settings = self.config.api
        try:
            listen = parse_listen(settings.listen)
            token = resolve_token(settings, listen, self._base_dir(self.config))
        except (ValueError, ConfigError) as exc:
            raise ApiUnavailable(str(exc)) from None
        self.api = ApiServer(self.monitor, self.db_path, settings, listen, token, daemon_status=self.api_status)
        # With requests, the writer, analysis and sampling all wanting the GIL, the default 5 ms hand-over made
        # sampling ticks take up to 300 ms and request p99 reach 100 ms behind an analysis pass; 1 ms keeps both
        # short at no measured cost to throughput (`pmon bench --api`).
        sys.setswitchinterval(API_SWITCH_INTERVAL)
        try:
            self.api.start()
        except ApiStartError as exc:
            self.api = None
            raise ApiUnavailable(str(exc)) from None

    def api_status(self) -> dict[str, object]:
        """The daemon's figures for the API's ``/status``."""
        stats = self.stats
        return {"pid": os.getpid(), "started_at": self.started_at, "sample_interval": self.config.collector.sample_interval,
                "plugins_configured": sorted(self.config.plugins), "ticks": stats.ticks,
                "skipped_ticks": stats.skipped_ticks, "failed_ticks": stats.failed_ticks, "snapshots": stats.snapshots,
                "reloads": stats.reloads}

    # -- retention ----------------------------------------------------------------

    def _start_retention(self) -> None:
        self._retention = threading.Thread(target=self._retention_loop, name="pmon-retention", daemon=True)
        self._retention.start()

    def _retention_loop(self) -> None:
        from pmon.store.retention import prune

        pause = 1.0  # the first pass soon after start: a daemon restarted after a month prunes at once
        failure_logged_at = -FAILURE_LOG_SECONDS
        while not self._stop.wait(pause):
            pause = self.config.retention.prune_interval
            try:
                report = prune(self.db_path, self.config.retention, stop=self._stop)
            except Exception:  # a retention bug must never stop sampling
                log.exception("retention pass failed; sampling goes on")
                continue
            if self.self_monitor is not None:
                self.self_monitor.last_prune_lock_ms = report.max_hold_ms
            if report.deleted_total:
                log.info("retention: %s", report.summary())
            if report.failed and time.monotonic() - failure_logged_at >= FAILURE_LOG_SECONDS:
                failure_logged_at = time.monotonic()  # a read-only or damaged file says so once a minute, not per pass
                log.error("retention cannot run: %s", escape_controls(report.failed))

    # -- analysis ---------------------------------------------------------------

    def _start_analysis(self) -> None:
        from pmon.analysis.runner import AnalysisThread  # loaded only when the daemon really runs

        def note(report: PassReport) -> None:
            if self.self_monitor is not None:
                self.self_monitor.last_analysis_ms = report.seconds * 1000

        self._analysis = AnalysisThread(self.monitor, self.db_path, self.config, on_report=note)
        self._analysis.start()

    # -- shutdown ---------------------------------------------------------------

    def _shutdown(self) -> bool:
        """Stop the threads and flush within STOP_TIMEOUT_SECONDS in all; False when rows were lost."""
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        self._stop.set()
        self._wakeup.set()
        if self.api is not None:  # first: no new records while the rest flushes
            self.api.stop(max(0.0, min(1.5, deadline - time.monotonic())))
        if self._analysis is not None:
            self._analysis.stop(max(0.0, min(1.0, deadline - time.monotonic())))
        if self._retention is not None:
            self._retention.join(max(0.0, min(1.0, deadline - time.monotonic())))
        self._close_reader()
        written = self.monitor.stop_monitoring(timeout=max(0.1, deadline - time.monotonic()))
        self.lock.release()
        if not written:
            status = self.monitor.status()
            log.error("stopped with %d rows not written to %s (%s)", status["dropped"], self.db_path,
                      status["last_error"] or "timed out")
            return False
        log.info("stopped")
        return True


def _heartbeat(config: Config) -> float:
    """Unchanged steady counts are recorded at least twice per snapshot window, so snapshots always hold them."""
    return min(STEADY_HEARTBEAT_SECONDS, config.collector.snapshot_interval / 2)

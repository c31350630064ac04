"""The live analysis pass: what was stored since the last pass, through the detectors and the alert rules.

The daemon runs it on its own thread every ``[analysis] interval``; a host
application runs it after ``start_monitoring()`` when no daemon collects into
the same database (one analyser per database, or findings would double).
It reads the store, not the recording hot path, so it sees every writer's rows
and costs the plugins nothing. Detector findings and alert transitions are
recorded as events of category ``alert`` (event types ``alert_<detector>``,
``alert_<detector>_resolved``, ``alert_firing``, ``alert_resolved``), which
also passes them to the alert callbacks.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pmon.analysis.alert_rules import AlertRule
from pmon.analysis.alerting import AlertEvaluator
from pmon.analysis.detectors.backtest import replay
from pmon.analysis.detectors.engine import DetectorEngine
from pmon.analysis.detectors.finding import Finding
from pmon.analysis.detectors.settings import DetectorSettings
from pmon.store import alert_store, feed_queries
from pmon.store.schema import StoreError, open_reader, open_writer

if TYPE_CHECKING:
    from pmon.config import Config
    from pmon.monitor import Monitor

log = logging.getLogger("pmon.analysis")

BATCH = 50_000
LOG_AGAIN_SECONDS = 60.0


@dataclass
class PassReport:
    """What one pass read and recorded."""

    points: int = 0
    events: int = 0
    findings: int = 0
    transitions: int = 0
    seconds: float = 0.0


def finding_event(finding: Finding) -> tuple[str, str, str, str, dict]:
    """``record_event`` arguments for a finding: its opening is an alert, its closing the resolution.

    The resolution keeps the opening's severity, so whoever heard of the alert hears it end.
    """
    data = {"detector": finding.detector, "metric": finding.metric, "start": finding.start, "end": finding.end,
            **finding.evidence}
    if finding.end is None:
        return finding.plugin_id, f"alert_{finding.detector}", finding.summary, finding.severity, data
    return (finding.plugin_id, f"alert_{finding.detector}_resolved", f"resolved: {finding.summary}",
            finding.severity, data)


class AnalysisRunner:
    """Detectors and alert rules over one database, fed by id from where the last pass stopped.

    The cursor (the last point and event analysed) is kept in the database: a
    restarted analyser warms its detectors up silently on the history up to it,
    then records everything after it, so nothing is announced twice or skipped.
    """

    def __init__(self, monitor: Monitor, db_path: Path, detectors: DetectorSettings | None,
                 rules: tuple[AlertRule, ...], *, warmup: float = 3600.0, busy_timeout_ms: int = 5000) -> None:
        self.monitor = monitor
        self.db_path = db_path
        self.settings = detectors or DetectorSettings()
        self.rules = rules
        self.warmup = warmup
        self.busy_timeout_ms = busy_timeout_ms
        self.halted = False
        """Set while stopping: a pass still running records nothing more."""
        self.engine = DetectorEngine(self.settings)
        self.evaluator = AlertEvaluator(rules)
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._cursor: tuple[int, int] | None = None
        self._warm = False
        self._lock = threading.RLock()
        """Held through a pass and a close, so a fork() waits for both (see ``_before_fork``)."""
        _live_runners.add(self)

    def configure(self, detectors: DetectorSettings | None, rules: tuple[AlertRule, ...]) -> None:
        """Apply a reloaded config: detectors warm up again to the cursor; alert state carries over."""
        self.settings = detectors or DetectorSettings()
        self.rules = rules
        self.reset()

    def reset(self) -> None:
        """Forget the in-memory state (another analyser took over, or the config changed); the next pass
        warms up from the stored cursor."""
        self.engine = DetectorEngine(self.settings)
        self.evaluator = AlertEvaluator(self.rules)
        self._cursor = None
        self._warm = False
        self.close()

    def close(self) -> None:
        """Close the connections (a later pass opens them again)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
        self._reader = self._writer = None

    def run_pass(self, now: float | None = None) -> PassReport:
        """One pass; storage trouble is logged by the caller and retried next pass (connections reopen)."""
        started = time.perf_counter()
        now = time.time() if now is None else now
        report = PassReport()
        with self._lock:
            try:
                self._pass(now, report)
            except (sqlite3.Error, StoreError):
                self._close()
                raise
        report.seconds = time.perf_counter() - started
        return report

    def _pass(self, now: float, report: PassReport) -> None:
        if self._reader is None:
            self._reader = open_reader(self.db_path)
        if self._writer is None:
            self._writer = open_writer(self.db_path, self.busy_timeout_ms)
        if not self._warm:
            self._record_transitions(self.evaluator.load_state(alert_store.open_alerts(self._writer), now))
        conn = self._reader
        conn.execute("BEGIN")  # one snapshot for the whole read
        try:
            if not self._warm:
                self._warm_up(conn, now)
            points, events = self._read_new(conn)
            down = feed_queries.down_plugins(conn)
        finally:
            conn.execute("COMMIT")
        report.points, report.events = len(points), len(events)
        findings: list[Finding] = []
        items = sorted([(p.timestamp, 1, i) for i, p in enumerate(points)]
                       + [(e.timestamp, 0, i) for i, e in enumerate(events)])
        for _, kind, index in items:
            if kind == 0:
                e = events[index]
                findings.extend(self.engine.feed_event(e.plugin_id, e.event_type, e.timestamp, e.data_dict()))
            else:
                p = points[index]
                findings.extend(self.engine.feed_points(p.plugin_id, p.metric_type, ((p.timestamp, p.value),)))
        if self.halted:
            return
        for finding in findings:
            plugin_id, event_type, description, severity, data = finding_event(finding)
            self.monitor.record_event(plugin_id, event_type, description, severity, data,
                                      timestamp=finding.end or finding.start, notify=True)
        report.findings = len(findings)
        if self.rules:
            transitions = self.evaluator.evaluate(
                now, ((p.plugin_id, p.metric_type, p.timestamp, p.value) for p in points), down,
                alert_store.active_silences(self._writer, now))
            report.transitions = self._record_transitions(transitions)
        if self._cursor is not None:
            feed_queries.save_cursor(self._writer, *self._cursor)

    def _warm_up(self, conn: sqlite3.Connection, now: float) -> None:
        """Feed the history up to the stored cursor silently, so detectors have their windows at once.

        Without a cursor (the first analyser here), or one older than ``warmup``
        (nobody analysed for a long while), analysis starts from now.
        """
        newest = (feed_queries.last_point_id(conn), feed_queries.last_event_id(conn))
        cursor = feed_queries.load_cursor(conn)
        until: float | None = None
        if cursor is not None:
            seen = [t for t in (feed_queries.point_time(conn, cursor[0]), feed_queries.event_time(conn, cursor[1]))
                    if t is not None]
            until = max(seen) if seen else None
            if until is not None and until < now - self.warmup:
                cursor = None
        if cursor is None:
            cursor, until = newest, now
        if until is not None:  # None: the cursor saw no rows yet, so there is no history to warm up on
            since = until - self.warmup
            for event in feed_queries.last_lifecycle_before(conn, since):  # a plugin down for days is still down
                self.engine.feed_event(event.plugin_id, event.event_type, event.timestamp, event.data_dict())
            for _ in replay(conn, self.settings, since=since, until=until + 0.001, engine=self.engine):
                pass  # history: what it found was announced when it happened (or before pmon watched)
        self._cursor = cursor
        self._warm = True

    def _read_new(self, conn: sqlite3.Connection) -> tuple[list[feed_queries.NewPoint],
                                                           list[feed_queries.NewLifecycleEvent]]:
        assert self._cursor is not None
        point_id, event_id = self._cursor
        points: list[feed_queries.NewPoint] = []
        while True:
            batch = feed_queries.points_after(conn, point_id, BATCH)
            points.extend(batch)
            if batch:
                point_id = batch[-1].id
            if len(batch) < BATCH:
                break
        events = feed_queries.lifecycle_events_after(conn, event_id)
        if events:
            event_id = events[-1].id
        self._cursor = (point_id, event_id)
        return points, events

    def _record_transitions(self, transitions: list) -> int:
        if not transitions or self._writer is None or self.halted:
            return 0
        ids = alert_store.save_transitions(self._writer, transitions)
        for transition, alert_id in zip(transitions, ids):
            if transition.notify and alert_id is not None:
                self.monitor.record_event(transition.plugin_id, transition.event_type, transition.description,
                                          transition.severity, transition.event_data(alert_id),
                                          timestamp=transition.at, notify=True)
        return len(transitions)


class AnalysisThread:
    """Runs a pass every ``[analysis] interval`` on its own thread until stopped; never raises.

    Only the holder of the database's analysis lease analyses. The daemon runs
    one; a host after ``start_monitoring()`` runs one too but gives the lease up
    while a daemon collects into the same database (``yield_to_daemon``), and
    the daemon continues from the stored cursor.
    """

    def __init__(self, monitor: Monitor, db_path: Path, config: Config, *, yield_to_daemon: bool = False,
                 on_report: Callable[[PassReport], None] | None = None) -> None:
        from pmon.collect.daemon_lock import AnalysisLease

        self.config = config
        self.runner = AnalysisRunner(monitor, db_path, config.detectors, config.alerts,
                                     warmup=config.analysis.warmup, busy_timeout_ms=config.store.busy_timeout_ms)
        self.lease = AnalysisLease(db_path)
        self.yield_to_daemon = yield_to_daemon
        self.on_report = on_report
        self.failures = 0
        """Passes that failed (logged at most once a minute)."""
        self._stop = threading.Event()
        self._reconfigure: Config | None = None
        self._thread: threading.Thread | None = None
        self._logged_at = -LOG_AGAIN_SECONDS

    def start(self) -> None:
        """Start the thread (idempotent); the first pass a second later."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self.runner.halted = False
            self._thread = threading.Thread(target=self._run, name="pmon-analysis", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop; with the lease, a last pass over what was recorded until now (flushed first)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():  # a pass still running: it records nothing more, and ends on its own
                self.runner.halted = True
                return
            self._thread = None
        if self.lease.held:
            try:
                self.runner.monitor.flush(timeout=1.0)
                self._attempt()
            finally:
                self.runner.close()
                self.lease.release()

    def reconfigure(self, config: Config) -> None:
        """Use a reloaded config from the next pass (thread-safe)."""
        self._reconfigure = config

    def _run(self) -> None:
        pause = 1.0
        while not self._stop.wait(pause):
            pause = self.config.analysis.interval
            if self.yield_to_daemon and _daemon_collects(self.runner.db_path):
                if self.lease.held:
                    self.runner.reset()
                    self.lease.release()
                continue
            if not self.lease.try_acquire():
                continue
            self._attempt()

    def _attempt(self) -> None:
        try:
            config, self._reconfigure = self._reconfigure, None
            if config is not None:
                self.config = config
                self.runner.configure(config.detectors, config.alerts)
            report = self.runner.run_pass()
            if report.findings or report.transitions:
                log.info("analysis: %d findings, %d alert changes from %d points", report.findings,
                         report.transitions, report.points)
            if self.on_report is not None:
                self.on_report(report)
        except Exception as exc:  # storage busy, a detector bug: recording goes on, the next pass retries
            self.failures += 1
            now = time.monotonic()
            if now - self._logged_at >= LOG_AGAIN_SECONDS:
                self._logged_at = now
                log.warning("pmon: analysis pass failed (%s: %s); retrying every %gs", type(exc).__name__, exc,
                            self.config.analysis.interval, exc_info=not isinstance(exc, (sqlite3.Error, StoreError)))


def _daemon_collects(db_path: Path) -> bool:
    from pmon.collect.daemon_lock import running_daemon

    return running_daemon(db_path) is not None


_live_runners: weakref.WeakSet[AnalysisRunner] = weakref.WeakSet()
_held_for_fork: list[AnalysisRunner] = []


def _before_fork() -> None:
    """Close every runner's connections before fork(): SQLite's locks do not survive into a child.

    Why: a child inheriting open connections shares the parent's lock
    bookkeeping, so its own writer takes no real file locks, and the parent's
    last close then checkpoints and deletes the WAL the child is committing
    into: rows the child's ``flush()`` acknowledged vanish. The connections
    reopen on the next pass. A fork waits for a running pass (10 s at most).
    """
    for runner in list(_live_runners):
        if runner._lock.acquire(timeout=10):
            _held_for_fork.append(runner)
            runner._close()


def _after_fork_in_parent() -> None:
    while _held_for_fork:
        _held_for_fork.pop()._lock.release()


def _after_fork_in_child() -> None:
    _held_for_fork.clear()
    for runner in list(_live_runners):
        runner._lock = threading.RLock()
        runner._reader = runner._writer = None


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)

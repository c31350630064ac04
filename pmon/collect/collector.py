"""One sampling tick of the daemon: find each configured plugin's processes, sample them, record.

Metrics go through the same ``Monitor`` (and so the same writer) as the
recording API. Units: ``cpu_usage`` is % of one core summed over the
plugin's processes (two busy threads read ~200), ``memory_usage`` the
resident set in MiB, ``disk_io`` / ``network_io`` bytes per second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from pmon.collect.lifecycle import LifecycleTracker
from pmon.collect.matching import ProcessTable, match
from pmon.collect.sampler import ProcessSample, ProcessSampler, SystemSampler
from pmon.config import PluginSpec
from pmon.monitor import Monitor
from pmon.plain_text import escape_controls
from pmon.store.lifecycle_queries import StoredLifecycle

log = logging.getLogger("pmon.collect")

MIB = 1024 * 1024
SYSTEM_PLUGIN = "system"
STEADY_GAUGES = frozenset({"process.threads", "process.open_fds", "process.count"})
"""Counts that rarely change: recorded when they change, else every ``STEADY_HEARTBEAT_SECONDS``
(three rows in ten fewer per plugin per tick; a chart of them looks the same)."""
STEADY_HEARTBEAT_SECONDS = 30.0
DOWN_VALUES: dict[str, float | None] = {"cpu_usage": 0.0, "memory_usage": 0.0, "process.count": 0.0}
"""Recorded for a plugin with no process (like the steady counts: on change, else every heartbeat)."""
LOG_AGAIN_SECONDS = 60.0


@dataclass
class TickReport:
    """What one tick did, for the daemon's own health figures and for ``--once``."""

    plugins: int = 0
    processes: int = 0
    metrics: int = 0
    events: int = 0
    failed: int = 0
    """Plugins whose sampling raised this tick (logged, at most once a minute each)."""
    seconds: float = 0.0


def process_metrics(sample: ProcessSample) -> dict[str, float | None]:
    """The metrics recorded for a plugin's processes (seed names where one fits, ``process.*`` otherwise)."""
    read, write = sample.read_bytes_per_s, sample.write_bytes_per_s
    return {
        "cpu_usage": sample.cpu_percent,
        "memory_usage": sample.rss_bytes / MIB if sample.rss_bytes is not None else None,
        "disk_io": read + write if read is not None and write is not None else None,
        "process.memory_percent": sample.memory_percent,
        "process.disk_read_bytes_per_s": read,
        "process.disk_write_bytes_per_s": write,
        "process.threads": float(sample.threads) if sample.threads is not None else None,
        "process.open_fds": float(sample.open_fds) if sample.open_fds is not None else None,
        "process.ctx_switches_per_s": sample.ctx_switches_per_s,
        "process.count": float(sample.processes),
    }


class Collector:
    """Samples the ``[plugins.NAME]`` of the config (and the system) into a monitor."""

    def __init__(self, monitor: Monitor, plugins: dict[str, PluginSpec], *, base_dir: Path | None = None,
                 system: bool = True) -> None:
        self.monitor = monitor
        self.table = ProcessTable()
        self.sampler = ProcessSampler()
        self.system_sampler = SystemSampler() if system else None
        self.lifecycle = LifecycleTracker()
        self.base_dir = base_dir
        self.plugins: dict[str, PluginSpec] = {}
        self._problems: dict[str, str | None] = {}
        self._gauges: dict[tuple[str, str], tuple[float, float]] = {}
        self._failure_logged: dict[str, float] = {}
        self.heartbeat = STEADY_HEARTBEAT_SECONDS
        """Seconds after which an unchanged steady count is recorded again (the daemon sets it under
        half its snapshot interval, so every snapshot window holds one)."""
        self.configure(plugins, system=system)

    def seed(self, stored: dict[str, StoredLifecycle]) -> None:
        """The store's memory of each plugin, for the first tick's lifecycle events."""
        self.lifecycle.seed(stored)

    def configure(self, plugins: dict[str, PluginSpec], *, system: bool = True) -> None:
        """Apply a (re)loaded config: removed plugins are forgotten, new ones start as first sightings."""
        for name, spec in plugins.items():
            if name in self.plugins and self.plugins[name] != spec:  # another matcher: a first sighting, not a restart
                self.lifecycle.forget(name)
        for name in set(self.plugins) - set(plugins):
            self.lifecycle.forget(name)
            self._problems.pop(name, None)
            for metric in (*STEADY_GAUGES, *DOWN_VALUES):
                self._gauges.pop((name, metric), None)
        self.plugins = dict(plugins)
        if system and self.system_sampler is None:
            self.system_sampler = SystemSampler()
        elif not system:
            self.system_sampler = None

    def tick(self, now: float | None = None) -> TickReport:
        """Match, sample and record every plugin once."""
        started = time.perf_counter()
        now = time.time() if now is None else now
        clock = time.monotonic()  # one clock for the whole tick: every plugin's rates cover the same interval
        report = TickReport()
        self.table.refresh()
        for name, spec in self.plugins.items():
            try:
                self._tick_plugin(name, spec, now, clock, report)
            except Exception:  # one plugin's odd process must not cost the others their figures
                report.failed += 1
                if self._failure_logged.get(name, -LOG_AGAIN_SECONDS) <= clock - LOG_AGAIN_SECONDS:
                    self._failure_logged[name] = clock
                    log.exception("%s: sampling failed; the other plugins go on", escape_controls(name))
        if self.system_sampler is not None:
            report.metrics += self._record_system(now)
        report.seconds = time.perf_counter() - started
        return report

    def _tick_plugin(self, name: str, spec: PluginSpec, now: float, clock: float, report: TickReport) -> None:
        found = match(spec, self.table, self.base_dir)
        self._note_problem(name, found.problem)
        sample = self.sampler.sample(found.keys, clock) if found.keys else None
        roots = found.roots
        if sample is not None and len(sample.pids) < len(found.keys):  # exited (or a zombie) since the scan
            read = set(sample.pids)
            roots = frozenset(key for key in roots if key[0] in read)
        for event in self.lifecycle.update(name, roots, problem=found.problem):
            self.monitor.record_event(event.plugin_id, event.event_type, event.description, event.severity,
                                      event.data, timestamp=now)
            level = logging.WARNING if event.severity in ("high", "critical") else logging.INFO
            log.log(level, "%s: %s", escape_controls(name), escape_controls(event.description))
            report.events += 1
        report.plugins += 1
        last = self._gauges
        steady: Collection[str]
        if sample is None or not sample.processes:
            values, steady = DOWN_VALUES, DOWN_VALUES.keys()  # a stopped plugin's latest figures say so
        else:
            report.processes += sample.processes
            values, steady = process_metrics(sample), STEADY_GAUGES
            for metric in DOWN_VALUES:  # when it goes down again, its zeros are news
                if metric not in STEADY_GAUGES:
                    last.pop((name, metric), None)
        for metric, value in values.items():
            if value is None:
                continue
            if metric in steady:
                seen = last.get((name, metric))
                if seen is not None and seen[0] == value and now - seen[1] < self.heartbeat:
                    continue
                last[(name, metric)] = (value, now)
            self.monitor.record_metric(name, metric, value, timestamp=now)
            report.metrics += 1

    def _note_problem(self, name: str, problem: str | None) -> None:
        """Log a matcher's problem (bad pidfile...) once when it appears, and once when it is gone."""
        if self._problems.get(name) != problem:
            if problem:
                log.warning("%s: %s", escape_controls(name), escape_controls(problem))
            elif self._problems.get(name):
                log.info("%s: matched again", escape_controls(name))
            self._problems[name] = problem

    def _record_system(self, now: float) -> int:
        assert self.system_sampler is not None
        s = self.system_sampler.sample()
        values = {
            "cpu_usage": s.cpu_percent,
            "memory_usage": s.memory_used_bytes / MIB,
            "system.memory_percent": s.memory_percent,
            "system.memory_available_bytes": s.memory_available_bytes,
            "disk_io": (s.disk_read_bytes_per_s + s.disk_write_bytes_per_s
                        if s.disk_read_bytes_per_s is not None and s.disk_write_bytes_per_s is not None else None),
            "system.disk_read_bytes_per_s": s.disk_read_bytes_per_s,
            "system.disk_write_bytes_per_s": s.disk_write_bytes_per_s,
            "network_io": (s.net_recv_bytes_per_s + s.net_sent_bytes_per_s
                           if s.net_recv_bytes_per_s is not None and s.net_sent_bytes_per_s is not None else None),
            "system.net_recv_bytes_per_s": s.net_recv_bytes_per_s,
            "system.net_sent_bytes_per_s": s.net_sent_bytes_per_s,
        }
        count = 0
        for metric, value in values.items():
            if value is not None:
                self.monitor.record_metric(SYSTEM_PLUGIN, metric, value, timestamp=now)
                count += 1
        return count

"""Monitor: the recording API plugins call (the seed's ``AdvancedPluginMonitor``).

The hot path validates, timestamps, appends a tuple to the in-memory cache and
to the writer's queue, and returns: no disk, no lock, no JSON unless a
metadata / context / data dict is passed. Everything else (SQLite, alert
callbacks) happens on background threads, so a slow disk or a broken callback
never reaches the plugin that called.

The API starts lazily: the first ``record_*`` call starts the writer, so a
plugin can record before (or without) the host calling ``start_monitoring()``.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pmon import validate
from pmon.config import Config, MonitorConfig, build_section, database_path, load_config
from pmon.models import (
    SNAPSHOT_DICTS,
    SNAPSHOT_FIELDS,
    SNAPSHOT_NUMBERS,
    LogLevel,
    MetricType,
    PluginEvent,
    Severity,
    category_for,
    event_from_row,
    log_from_row,
    metric_from_row,
    snapshot_from_row,
)
from pmon.store.writer import Writer, WriterStats

if TYPE_CHECKING:
    from pmon.analysis.runner import AnalysisThread
    from pmon.collect.host_sampler import HostSampler
    from pmon.collect.threads import ThreadRegistration, ThreadRegistry
    from pmon.tracking import CallCounters, Tracker

log = logging.getLogger("pmon.monitor")

LOG_EVERY_SECONDS = 60.0
"""Least time between two warnings about rows dropped over the plugin id cap."""

AlertCallback = Callable[[PluginEvent], Any]
T = TypeVar("T")

_METRICS = validate.enum_lookup(MetricType)
_LEVELS = validate.enum_lookup(LogLevel)
_SEVERITIES = validate.enum_lookup(Severity)


class RecordCache(Generic[T]):
    """A bounded, newest-last cache that stores rows as tuples and builds objects when read.

    Behaves like the seed's caches (``len()``, iteration, indexing) while the hot
    path pays only for a tuple.
    """

    def __init__(self, maxlen: int, build: Callable[[tuple], T]) -> None:
        self.rows: deque[tuple] = deque(maxlen=maxlen)
        """The raw rows, oldest first."""
        self._build = build

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[T]:
        return (self._build(row) for row in list(self.rows))

    def __getitem__(self, index: int) -> T:
        return self._build(self.rows[index])

    def __bool__(self) -> bool:
        return bool(self.rows)

    @property
    def maxlen(self) -> int | None:
        """Capacity of the cache."""
        return self.rows.maxlen

    def clear(self) -> None:
        """Forget the cached rows (they are still in the database)."""
        self.rows.clear()

    def __repr__(self) -> str:
        return f"RecordCache(len={len(self)}, maxlen={self.maxlen})"


class Monitor:
    """Records metrics, logs, events and snapshots for plugins into one SQLite file.

    ``db_path`` and ``config`` default to the discovered pmon.toml / PMON_DB
    (resolved when the monitor starts, not at import). Keyword overrides
    replace ``[monitor]`` settings, e.g. ``Monitor(path, flush_interval=0.1)``.
    """

    def __init__(self, db_path: str | os.PathLike[str] | None = None, *, config: Config | None = None,
                 **settings: Any) -> None:
        self._explicit_db = db_path
        self._config = config
        self.settings: MonitorConfig = build_section(
            MonitorConfig, {**dataclasses.asdict(config.monitor if config else MonitorConfig()), **settings},
            "Monitor()")
        """The effective ``[monitor]`` settings."""
        self.metrics_cache = RecordCache(self.settings.metrics_cache, metric_from_row)
        """The most recent metrics, as ``DetailedMetric`` objects."""
        self.logs_cache = RecordCache(self.settings.logs_cache, log_from_row)
        """The most recent logs, as ``PluginLog`` objects."""
        self.events_cache = RecordCache(self.settings.events_cache, event_from_row)
        """The most recent events, as ``PluginEvent`` objects."""
        self._metric_rows, self._log_rows = self.metrics_cache.rows, self.logs_cache.rows
        self._known_ids: dict[str, str] = {}
        self._refused_rows = 0
        self._refused_last: str | None = None
        self._refused_logged_at = 0.0
        self._callbacks: list[AlertCallback] = []
        self._alert_rank = Severity(self.settings.alert_min_severity).rank
        self._lock = threading.Lock()
        self._writer: Writer | None = None
        self._queue: deque[Any] | None = None
        self._max_buffer = self.settings.max_buffer
        self._busy_at = min(self.settings.batch_size, self.settings.max_buffer + 1)
        """Queue length from which a record call wakes the writer (a full batch) or drops the oldest."""
        self._alerts: queue.SimpleQueue[PluginEvent | threading.Event | None] | None = None
        self._alert_thread: threading.Thread | None = None
        self._callback_errors = 0
        self._monitoring = False
        self._started_at: float | None = None
        self._db_path: Path | None = None
        self._atexit_registered = False
        self._last_stats: WriterStats | None = None
        self._created_in_pid = os.getpid()
        self._host_sampler: HostSampler | None = None
        self._analysis: AnalysisThread | None = None
        self._threads: ThreadRegistry | None = None
        self._track_counters: dict[str, CallCounters] = {}
        _after_fork_hooks.add(self)

    # -- lifecycle ----------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The config in effect: the one given, else the discovered pmon.toml (read once)."""
        if self._config is None:
            self._config = load_config()
        return self._config

    @property
    def db_path(self) -> Path:
        """The database file this monitor writes to."""
        if self._db_path is None:
            self._db_path = database_path(self.config, self._explicit_db)
        return self._db_path

    def _ensure_writer(self) -> Writer:
        with self._lock:
            if self._writer is None:
                s = self.settings
                writer = Writer(self.db_path, batch_size=s.batch_size, flush_interval=s.flush_interval,
                                max_buffer=s.max_buffer, busy_timeout_ms=self.config.store.busy_timeout_ms)
                writer.start()
                self._started_at = self._started_at or time.time()
                self._queue = writer.queue
                self._writer = writer
                if not self._atexit_registered:
                    atexit.register(_stop_at_exit, weakref.ref(self))
                    self._atexit_registered = True
                self._register_multiprocessing_exit()
            return self._writer

    def _register_multiprocessing_exit(self) -> None:
        """Flush when a multiprocessing child exits: it leaves through os._exit, skipping atexit.

        Registered when the writer starts, because the child's finalizer
        registry is cleared after the fork hooks run.
        """
        mp = sys.modules.get("multiprocessing")
        mp_util = sys.modules.get("multiprocessing.util")
        if mp is None or mp_util is None:
            return
        if os.getpid() != self._created_in_pid or mp.parent_process() is not None:
            mp_util.Finalize(self, self.stop_monitoring, exitpriority=100)

    def start_monitoring(self, *, sample: bool = True) -> None:
        """Start the background writer (recording also starts it on first use) and in-process sampling.

        Sampling (every ``sample_interval``, unless 0 or ``sample=False``) records
        the host process as plugin ``host_plugin`` and the CPU of every thread
        registered with ``register_thread``. Unless ``sample=False`` or
        ``[analysis] in_process = false``, the detectors and ``[[alerts]]`` rules
        also run here while no `pmon collect` daemon collects into the database.
        """
        self._ensure_writer()
        self._monitoring = True
        if sample and self.config.analysis.in_process and self._analysis is None:
            from pmon.analysis.runner import AnalysisThread

            self._analysis = AnalysisThread(self, self.db_path, self.config, yield_to_daemon=True)
            self._analysis.start()
        if sample and self.settings.sample_interval > 0:
            registry = self.threads
            with self._lock:
                if self._host_sampler is None:
                    from pmon.collect.host_sampler import HostSampler

                    self._host_sampler = HostSampler(self, registry, self.settings.host_plugin,
                                                     self.settings.sample_interval)
                self._host_sampler.start()

    @property
    def threads(self) -> ThreadRegistry:
        """The plugin threads whose CPU is sampled in-process (see ``register_thread``)."""
        with self._lock:
            if self._threads is None:
                from pmon.collect.threads import ThreadRegistry

                self._threads = ThreadRegistry()
            return self._threads

    def register_thread(self, plugin_id: str, thread: threading.Thread | None = None) -> ThreadRegistration:
        """Attribute a thread's CPU (the calling thread by default) to ``plugin_id``.

        Use it as a call, or as ``with monitor.register_thread("billing"):`` to
        unregister when the block ends. Sampled once ``start_monitoring()`` runs.
        """
        return self.threads.register(plugin_id, thread)

    def stop_monitoring(self, timeout: float | None = 10.0) -> bool:
        """Commit everything recorded so far and stop the background threads.

        Returns False if some rows could not be written within ``timeout``
        (they are counted in ``status()``). Recording afterwards starts again.
        """
        self._monitoring = False
        self._close_track_windows()
        sampler, self._host_sampler = self._host_sampler, None
        if sampler is not None:
            sampler.stop(timeout)
        analysis, self._analysis = self._analysis, None
        if analysis is not None:
            analysis.stop(timeout)
        with self._lock:
            writer, self._writer, self._queue = self._writer, None, None
        done = writer.stop(timeout) if writer is not None else True
        if writer is not None:
            self._last_stats = writer.stats
        if self._alerts is not None and self._alert_thread is not None:
            self._alerts.put(None)
            self._alert_thread.join(timeout)
            self._alert_thread = None
            self._alerts = None
        return done

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Return once every row recorded before this call is committed (True); False on timeout, or when a row
        before it could never be stored (rejected: ``status()["rejected"]`` counts them)."""
        writer = self._writer
        if writer is None:
            return True
        return writer.flush(timeout)

    # -- plugin ids ---------------------------------------------------------------

    def _plugin(self, plugin_id: Any) -> str | None:
        """The checked id, or None when its rows are dropped (over the cap); record_metric / record_log inline it."""
        try:
            return self._known_ids[plugin_id]
        except (KeyError, TypeError):  # a new id (or an unhashable one, which the check names)
            return self._new_plugin(plugin_id)

    def _new_plugin(self, plugin_id: Any) -> str | None:
        """Check an id not seen before; None (the row is dropped and counted) once MAX_PLUGIN_IDS are known.

        Why drop rather than raise: the cap is reached at run time, after a
        call worked in every test; like full storage, it must not raise into
        the host. ``status()`` counts the dropped rows and the log says so
        once a minute. A malformed id still raises ``ValueError`` at once.
        """
        pid = validate.plugin_id(plugin_id, {})
        with self._lock:
            if pid in self._known_ids or len(self._known_ids) < validate.MAX_PLUGIN_IDS:
                self._known_ids[pid] = pid
                return pid
        self._refuse(pid)
        return None

    def _refuse(self, plugin_id: str, *_: Any) -> None:
        """Count a row dropped over the plugin id cap; warn at most once a minute."""
        with self._lock:
            self._refused_rows += 1
            self._refused_last = plugin_id
            now = time.monotonic()
            if self._refused_logged_at and now - self._refused_logged_at < LOG_EVERY_SECONDS:
                return
            self._refused_logged_at = now
        log.warning("pmon: this monitor already records %s distinct plugin ids (the cap, "
                    "pmon.validate.MAX_PLUGIN_IDS); rows of new ids such as %r are dropped (%d so far, "
                    "status()['plugin_overflow_rows'])", f"{validate.MAX_PLUGIN_IDS:,}", plugin_id,
                    self._refused_rows)

    def accepts_plugin(self, plugin_id: str) -> bool:
        """False when ``plugin_id`` is new and MAX_PLUGIN_IDS ids are already known (its rows would be dropped).

        For front ends that can tell their client (the HTTP API) rather than drop.
        """
        return len(self._known_ids) < validate.MAX_PLUGIN_IDS or plugin_id in self._known_ids

    # -- tracking -----------------------------------------------------------------

    def track(self, plugin_id: str, operation: str | None = None) -> Tracker:
        """Time, count and catch failures of calls: ``@monitor.track("billing", "charge")`` or ``with monitor.track(...)``.

        Each call records RESPONSE_TIME (ms, with ``{"operation": ...}`` metadata
        when given); each ``flush_interval`` the plugin's THROUGHPUT and
        ERROR_RATE are recorded (see ``pmon.tracking``). An exception records an
        ERROR log with its traceback and an ``error`` event, then propagates unchanged.
        """
        from pmon.tracking import CallCounters, Tracker

        pid = self._known_ids.get(plugin_id) if isinstance(plugin_id, str) else None
        if pid is None:
            pid = validate.plugin_id(plugin_id, {})
        if operation is not None and (not isinstance(operation, str) or not operation.strip()
                                      or len(operation) > 128):
            raise ValueError(f"operation: {operation!r} must be a non-empty string of at most 128 characters")
        if not self.accepts_plugin(pid):  # over the cap: calls run as usual, their rows are dropped and counted
            tracker = Tracker(self, pid, operation, CallCounters(pid, self.settings.flush_interval))
            tracker._record_time = self._refuse
            return tracker
        pid = self._new_plugin(pid) or pid
        with self._lock:
            counters = self._track_counters.get(pid)
            if counters is None:
                counters = self._track_counters[pid] = CallCounters(pid, self.settings.flush_interval)
        return Tracker(self, pid, operation, counters)

    def _record_response_time(self, plugin_id: str, ms: float, metadata: str | None) -> None:
        """``record_metric`` for a tracked call: the id was validated and the metadata serialised at ``track()``."""
        row = ("m", plugin_id, MetricType.RESPONSE_TIME, ms, time.time(), metadata)
        self._metric_rows.append(row)
        q = self._queue
        if q is None:
            q = self._ensure_writer().queue
        q.append(row)
        if len(q) >= self._busy_at:
            self._queue_full()

    def _close_track_windows(self) -> None:
        """Record the throughput and error rate of every tracked plugin's open window (at stop)."""
        if not self._track_counters:
            return
        from pmon.tracking import record_rates

        now = time.perf_counter_ns()
        for pid, counters in list(self._track_counters.items()):
            with counters.lock:
                rates = counters.close_window(now)
            try:
                record_rates(self, pid, rates)
            except Exception:
                log.exception("pmon: could not record the tracked rates of %s", pid)

    # -- hot path -----------------------------------------------------------------

    def _enqueue(self, row: tuple) -> None:
        q = self._queue
        if q is None:
            q = self._ensure_writer().queue
        q.append(row)
        if len(q) >= self._busy_at:
            self._queue_full()

    def _queue_full(self) -> None:
        """A batch is waiting: wake the writer; over max_buffer, drop the oldest (tolerates a concurrent stop)."""
        writer = self._writer
        if writer is not None:
            if len(writer.queue) > self._max_buffer:
                writer.drop_oldest()
            writer.nudge()

    def record_metric(self, plugin_id: str, metric_type: MetricType | str, value: float,
                      metadata: dict[str, Any] | None = None, *, timestamp: Any = None) -> None:
        """Record one metric value (e.g. ``MetricType.CPU_USAGE``, 45.2).

        Besides the seed's seven types, a dotted lowercase name (``custom.queue_depth``)
        records a custom metric; the daemon records ``process.*``, ``system.*``, ``pmon.*`` ones.
        """
        try:
            pid = self._known_ids[plugin_id]
        except (KeyError, TypeError):  # a new id (or an unhashable one, which the check names)
            pid = self._new_plugin(plugin_id)
            if pid is None:
                return
        mtype = _METRICS.get(metric_type) if isinstance(metric_type, str) else None
        if mtype is None:
            mtype = validate.custom_metric(metric_type, MetricType)
        if type(value) is not float or value - value != 0.0:
            value = validate.number("value", value)
        ts = time.time() if timestamp is None else validate.timestamp(timestamp)
        meta = None if metadata is None else validate.json_text("metadata", metadata, self.settings.max_text_bytes)
        row = ("m", pid, mtype, value, ts, meta)
        self._metric_rows.append(row)
        q = self._queue  # _enqueue inlined: this is the hottest call
        if q is None:
            q = self._ensure_writer().queue
        q.append(row)
        if len(q) >= self._busy_at:
            self._queue_full()

    def record_log(self, plugin_id: str, level: LogLevel | str, message: str,
                   context: dict[str, Any] | None = None, traceback: str | None = None, *,
                   timestamp: Any = None) -> None:
        """Record one log line, with an optional context dict and traceback text."""
        try:
            pid = self._known_ids[plugin_id]
        except (KeyError, TypeError):  # a new id (or an unhashable one, which the check names)
            pid = self._new_plugin(plugin_id)
            if pid is None:
                return
        lvl = _LEVELS.get(level) if isinstance(level, str) else None
        if lvl is None:
            raise validate.bad_enum("level", level, LogLevel)
        limit = self.settings.max_text_bytes
        if type(message) is not str or len(message) * 4 > limit:
            message = validate.text("message", message, limit)
        if traceback is not None and (type(traceback) is not str or len(traceback) * 4 > limit):
            traceback = validate.text("traceback", traceback, limit)
        ts = time.time() if timestamp is None else validate.timestamp(timestamp)
        ctx = None if context is None else validate.json_text("context", context, limit)
        row = ("l", pid, lvl, message, ts, ctx, traceback)
        self._log_rows.append(row)
        q = self._queue
        if q is None:
            q = self._ensure_writer().queue
        q.append(row)
        if len(q) >= self._busy_at:
            self._queue_full()

    def record_event(self, plugin_id: str, event_type: str, description: str, severity: Severity | str = "info",
                     data: dict[str, Any] | None = None, *, timestamp: Any = None, notify: bool | None = None) -> None:
        """Record an event; at or above ``alert_min_severity`` it also goes to the alert callbacks.

        ``notify`` True passes it to the callbacks whatever its severity (pmon's own
        alerts: a rule's firing and resolving always reach them), False never.
        """
        pid = self._plugin(plugin_id)
        if pid is None:
            return
        sev = _SEVERITIES.get(severity) if isinstance(severity, str) else None
        if sev is None:
            raise validate.bad_enum("severity", severity, Severity)
        if not isinstance(event_type, str) or not event_type.strip() or len(event_type) > 128:
            raise ValueError(f"event_type: {event_type!r} must be a non-empty string of at most 128 characters")
        limit = self.settings.max_text_bytes
        description = validate.text("description", description, limit)
        ts = time.time() if timestamp is None else validate.timestamp(timestamp)
        payload = None if data is None else validate.json_text("data", data, limit)
        row = ("e", pid, event_type, description, sev, ts, payload, category_for(event_type))
        self.events_cache.rows.append(row)
        self._enqueue(row)
        if self._callbacks and (notify if notify is not None else sev.rank >= self._alert_rank):
            self._alert(row)

    def create_snapshot(self, plugin_id: str, snapshot_data: dict[str, Any], *, timestamp: Any = None) -> None:
        """Record a performance snapshot with the seed's fields (missing numbers are 0, dicts empty)."""
        pid = self._plugin(plugin_id)
        if pid is None:
            return
        if not isinstance(snapshot_data, dict):
            raise ValueError(f"snapshot_data: expected a dict, got {type(snapshot_data).__name__}")
        unknown = set(snapshot_data) - set(SNAPSHOT_FIELDS)
        if unknown:
            raise ValueError(f"snapshot_data: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                             f"allowed: {', '.join(SNAPSHOT_FIELDS)} (put others in custom_metrics)")
        values: dict[str, Any] = {}
        for name in SNAPSHOT_NUMBERS:
            check = validate.count if name == "request_count" else validate.number
            values[name] = check(f"snapshot_data[{name!r}]", snapshot_data.get(name, 0))
        limit = self.settings.max_text_bytes
        for name in SNAPSHOT_DICTS:
            # scrubbed here: the writer's retry for lone surrogates looks at a row's strings, not into this dict
            values[name] = validate.scrub(validate.json_text(f"snapshot_data[{name!r}]", snapshot_data.get(name) or {},
                                                             limit))
        ts = time.time() if timestamp is None else validate.timestamp(timestamp)
        self._enqueue(("s", pid, ts, values))

    # -- alerts -------------------------------------------------------------------

    def add_alert_callback(self, callback: AlertCallback) -> None:
        """Call ``callback(event)`` for every event at or above ``alert_min_severity``, off the caller's thread."""
        if not callable(callback):
            raise ValueError(f"callback: {callback!r} is not callable")
        with self._lock:
            self._callbacks = [*self._callbacks, callback]

    def remove_alert_callback(self, callback: AlertCallback) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._lock:
            self._callbacks = [cb for cb in self._callbacks if cb is not callback and cb != callback]

    def _alert(self, row: tuple) -> None:
        if self._alerts is None:
            with self._lock:
                if self._alerts is None:
                    self._alerts = queue.SimpleQueue()
                    self._alert_thread = threading.Thread(target=self._run_callbacks, args=(self._alerts,),
                                                          name="pmon-alerts", daemon=True)
                    self._alert_thread.start()
        self._alerts.put(event_from_row(row))

    def _run_callbacks(self, alerts: queue.SimpleQueue[PluginEvent | threading.Event | None]) -> None:
        while (event := alerts.get()) is not None:
            if isinstance(event, threading.Event):
                event.set()
                continue
            for callback in self._callbacks:
                try:
                    callback(event)
                except Exception:
                    self._callback_errors += 1
                    log.exception("pmon: alert callback %r raised; the other callbacks still run", callback)

    def wait_for_alerts(self, timeout: float = 10.0) -> bool:
        """Block until alert callbacks queued so far have run (for tests and short scripts)."""
        alerts = self._alerts
        if alerts is None:
            return True
        barrier = threading.Event()
        alerts.put(barrier)
        return barrier.wait(timeout)

    # -- introspection ------------------------------------------------------------

    def buffer_room(self) -> int:
        """Rows that can still be queued before the oldest are dropped (cheap: for back-pressure, e.g. the API's 503)."""
        writer = self._writer
        return self._max_buffer - (writer.backlog if writer else 0)

    def status(self) -> dict[str, Any]:
        """Monitor status: caches, queue, rows written, drops, errors, database size."""
        writer = self._writer
        stats = writer.stats if writer else self._last_stats
        try:
            db_path: Path | None = self.db_path
        except ValueError as exc:  # a broken pmon.toml: a host's health endpoint must still get its answer
            db_path, config_error = None, str(exc)
        else:
            config_error = None
        try:
            db_size = None if db_path is None else sum(
                os.path.getsize(f"{db_path}{suffix}") for suffix in ("", "-wal") if os.path.exists(f"{db_path}{suffix}"))
        except OSError:
            db_size = None
        return {
            "monitoring": self._monitoring,
            "writer_running": bool(writer and writer.running),
            "pid": os.getpid(),
            "db_path": None if db_path is None else str(db_path),
            "db_size_bytes": db_size,
            "uptime_seconds": round(time.time() - self._started_at, 3) if self._started_at else 0.0,
            "plugins_seen": len(self._known_ids),
            "plugins_max": validate.MAX_PLUGIN_IDS,
            "plugin_overflow_rows": self._refused_rows,
            "plugin_overflow_last": self._refused_last,
            "cache_sizes": {"metrics": len(self.metrics_cache), "logs": len(self.logs_cache),
                            "events": len(self.events_cache)},
            "queue_depth": writer.backlog if writer else 0,
            "rows_written": dict(stats.rows_written) if stats else {},
            "batches": stats.batches if stats else 0,
            "dropped": stats.dropped if stats else 0,
            "rejected": stats.rejected if stats else 0,
            "write_errors": stats.write_errors if stats else 0,
            "last_error": config_error or (stats.last_error if stats else None),
            "last_flush_ms": round(stats.last_flush_ms, 3) if stats else None,
            "wal_bytes": stats.wal_bytes if stats else 0,
            "wal_pinned_since": stats.wal_pinned_since if stats else None,
            "alert_callbacks": len(self._callbacks),
            "callback_errors": self._callback_errors,
        }

    # -- fork ---------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """The child gets its own writer; rows queued in the parent stay the parent's to write."""
        self._lock = threading.Lock()
        self._writer, self._queue = None, None
        self._alerts, self._alert_thread = None, None
        self._started_at = None
        self._host_sampler = None  # its thread did not survive the fork; start_monitoring() starts one
        self._analysis = None
        for counters in self._track_counters.values():  # the parent's calls are not the child's
            counters.lock = threading.Lock()
            counters.close_window(time.perf_counter_ns())


class _ForkHooks:
    """Weakly tracks monitors so each can reset itself in a forked child."""

    def __init__(self) -> None:
        self._monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_in_child)

    def add(self, monitor: Monitor) -> None:
        self._monitors.add(monitor)

    def _after_in_child(self) -> None:
        for monitor in list(self._monitors):
            monitor._after_fork_in_child()


_after_fork_hooks = _ForkHooks()


def _stop_at_exit(ref: weakref.ref[Monitor]) -> None:
    monitor = ref()
    if monitor is not None:
        monitor.stop_monitoring(timeout=10.0)


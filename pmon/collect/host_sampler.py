"""In-process sampling: the host application's own process, and CPU per plugin thread.

Started by ``monitor.start_monitoring()``. Plugins that run in their own
threads register them (``monitor.register_thread(plugin_id)``) and get a
``cpu_usage`` of their own from per-thread CPU clocks: CPU per plugin inside
one process, which a process-level monitor cannot give.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from pmon.collect.collector import process_metrics
from pmon.collect.sampler import ProcessSampler
from pmon.collect.threads import ThreadRegistry

if TYPE_CHECKING:
    from pmon.monitor import Monitor

log = logging.getLogger("pmon.monitor")


class HostSampler:
    """A daemon thread recording the host process and the registered threads every ``interval``."""

    def __init__(self, monitor: Monitor, registry: ThreadRegistry, host_plugin: str, interval: float) -> None:
        self.monitor = monitor
        self.registry = registry
        self.host_plugin = host_plugin
        self.interval = interval
        self._sampler = ProcessSampler()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        """Samples that failed (logged once a minute); sampling goes on."""
        self._last_logged = 0.0

    def start(self) -> None:
        """Start the thread (idempotent); the first sample is a baseline for the rates."""
        if self._thread is not None and self._thread.is_alive():
            return
        import psutil

        me = psutil.Process()
        self._key = (me.pid, me.create_time())
        self._stop.clear()
        self._sample(record=False)
        self._thread = threading.Thread(target=self._run, name="pmon-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread; nothing more is recorded."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(record=True)

    def _sample(self, record: bool) -> None:
        try:
            now = time.time()
            sample = self._sampler.sample([self._key])
            threads = self.registry.sample()
            if not record:
                return
            for metric, value in process_metrics(sample).items():
                if value is not None:
                    self.monitor.record_metric(self.host_plugin, metric, value, timestamp=now)
            for plugin_id, cpu in threads.items():
                self.monitor.record_metric(plugin_id, "cpu_usage", cpu, timestamp=now)
        except Exception as exc:  # sampling must never take the host down
            self.errors += 1
            if time.monotonic() - self._last_logged > 60:
                self._last_logged = time.monotonic()
                log.warning("pmon: in-process sampling failed (%s); retrying every %gs", exc, self.interval)

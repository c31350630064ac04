"""CPU per plugin inside one process, from the CPU clocks of the threads each plugin runs on.

The in-process monitor cannot tell plugins apart with process figures when
they share the host's process; a plugin registers the threads it works on and
``sample()`` turns their CPU clocks into percent of one core per plugin.

On Linux each thread's clock is read with ``clock_gettime`` (about a
microsecond). The clock id is taken once, at registration, while the thread is
certainly alive: ``pthread_getcpuclockid`` on the handle of a thread that has
exited may read a freed thread descriptor, while ``clock_gettime`` on a stale
clock id only fails. Where there are no thread clocks, ``psutil.Process().threads()`` is read
once per sample and matched by ``native_id``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

import psutil

from pmon.validate import plugin_id as check_plugin_id

_HAS_THREAD_CLOCKS = hasattr(time, "pthread_getcpuclockid")


@dataclass(slots=True)
class _Registration:
    thread: threading.Thread
    clock_id: int | None
    """None: read through psutil by ``native_id``."""
    cpu: float
    """CPU seconds at the last reading (registration or sample)."""
    count: int = 1
    """Nested ``registered()`` blocks of one plugin on one thread."""


class ThreadRegistration:
    """What ``register`` returns: call ``unregister()``, or use it as a ``with`` block."""

    __slots__ = ("registry", "plugin_id", "thread", "_active")

    def __init__(self, registry: ThreadRegistry, plugin_id: str, thread: threading.Thread) -> None:
        self.registry = registry
        self.plugin_id = plugin_id
        self.thread = thread
        self._active = True

    def unregister(self) -> None:
        """Stop counting the thread for the plugin; a second call does nothing."""
        if self._active:
            self._active = False
            self.registry.unregister(self.plugin_id, self.thread)

    def __enter__(self) -> ThreadRegistration:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.unregister()


class ThreadRegistry:
    """Which threads work for which plugin, and the CPU they used since the last sample.

    Thread-safe: plugins register from their own threads while the monitor's
    thread samples.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plugins: dict[str, dict[int, _Registration]] = {}
        self._banked: dict[str, float] = {}
        """CPU seconds of threads unregistered since the last sample, so short jobs still count."""
        self._known_ids: dict[str, str] = {}
        self._sampled_at = time.monotonic()

    def register(self, plugin_id: str, thread: threading.Thread | None = None) -> ThreadRegistration:
        """Count ``thread`` (default: the calling one) as working for ``plugin_id`` from now on.

        A thread may work for several plugins (it counts for each); registering
        it again for the same plugin nests, and needs as many ``unregister`` calls.
        """
        plugin = check_plugin_id(plugin_id, self._known_ids)
        thread = thread if thread is not None else threading.current_thread()
        if thread.ident is None or thread.native_id is None:
            raise ValueError(f"thread: {thread.name!r} has not started; register it once it runs")
        with self._lock:
            threads = self._plugins.setdefault(plugin, {})
            registration = threads.get(thread.ident)
            if registration is not None and registration.thread is thread:
                registration.count += 1
                return ThreadRegistration(self, plugin, thread)
            clock_id = _clock_id(thread)
            cpu = _read_clock(clock_id, thread, None)
            if cpu is None:
                if not threads:
                    del self._plugins[plugin]
                raise ValueError(f"thread: {thread.name!r} has already finished")
            threads[thread.ident] = _Registration(thread, clock_id, cpu)
        return ThreadRegistration(self, plugin, thread)

    def unregister(self, plugin_id: str, thread: threading.Thread | None = None) -> None:
        """Stop counting ``thread`` for ``plugin_id``; its CPU up to now still shows in the next sample.

        Unregistering a thread that is not registered (or already dropped as dead) does nothing.
        """
        thread = thread if thread is not None else threading.current_thread()
        with self._lock:
            threads = self._plugins.get(plugin_id)
            registration = threads.get(thread.ident) if threads is not None and thread.ident is not None else None
            if registration is None or registration.thread is not thread:
                return
            registration.count -= 1
            if registration.count > 0:
                return
            cpu = _read_clock(registration.clock_id, thread, None)
            if cpu is not None:
                self._banked[plugin_id] = self._banked.get(plugin_id, 0.0) + max(cpu - registration.cpu, 0.0)
            del threads[thread.ident]
            if not threads:
                del self._plugins[plugin_id]

    def registered(self, plugin_id: str) -> ThreadRegistration:
        """``with registry.registered(plugin_id):`` - the calling thread works for the plugin inside the block."""
        return self.register(plugin_id)

    def plugins(self) -> dict[str, int]:
        """Registered threads per plugin (dead ones are only dropped at the next sample)."""
        with self._lock:
            return {plugin: len(threads) for plugin, threads in self._plugins.items()}

    def sample(self, now: float | None = None) -> dict[str, float]:
        """Percent of ONE core per plugin since the previous sample (or since the registry was made).

        Several threads of a plugin are summed, so two busy ones show ~200. A
        thread registered since the last sample counts from its registration; a
        thread that has ended is dropped, with the CPU it used after the last
        sample lost (a thread cannot be read once it is gone).
        """
        if now is None:
            now = time.monotonic()
        with self._lock:
            elapsed = now - self._sampled_at
            self._sampled_at = now
            by_native_id = _psutil_thread_times() if not _HAS_THREAD_CLOCKS else None
            used = self._banked
            self._banked = {}
            for plugin, threads in list(self._plugins.items()):
                total = used.get(plugin, 0.0)
                for ident, registration in list(threads.items()):
                    cpu = _read_clock(registration.clock_id, registration.thread, by_native_id)
                    if cpu is None:
                        del threads[ident]
                        continue
                    total += max(cpu - registration.cpu, 0.0)
                    registration.cpu = cpu
                if not threads:
                    del self._plugins[plugin]
                used[plugin] = total
        if elapsed <= 0:
            return {plugin: 0.0 for plugin in used}
        return {plugin: seconds * 100.0 / elapsed for plugin, seconds in used.items()}


def _clock_id(thread: threading.Thread) -> int | None:
    """The thread's CPU clock; called only for a live thread (see the module docstring)."""
    if not _HAS_THREAD_CLOCKS or not thread.is_alive():
        return None
    try:
        return time.pthread_getcpuclockid(thread.ident)  # type: ignore[arg-type]
    except OSError:
        return None


def _read_clock(clock_id: int | None, thread: threading.Thread, by_native_id: dict[int, float] | None) -> float | None:
    """CPU seconds of the thread, or None once it has ended."""
    if not thread.is_alive():
        return None
    if clock_id is not None:
        try:
            return time.clock_gettime(clock_id)
        except OSError:
            return None
    if by_native_id is None:
        by_native_id = _psutil_thread_times()
    return by_native_id.get(thread.native_id)  # type: ignore[arg-type]


def _psutil_thread_times() -> dict[int, float]:
    """CPU seconds of this process's threads by native id, where there are no thread clocks."""
    try:
        return {thread.id: thread.user_time + thread.system_time for thread in psutil.Process().threads()}
    except psutil.Error:
        return {}

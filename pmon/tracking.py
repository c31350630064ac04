"""`monitor.track(...)`: time calls, count them and their failures, record errors.

Each tracked call records its RESPONSE_TIME in ms. Calls and errors are counted
per plugin (all operations together); THROUGHPUT (calls/s) and ERROR_RATE
(errors / calls, 0-1) are recorded by the first tracked call after
``flush_interval`` has passed since the window opened, and by
``stop_monitoring()`` for the window still open. Why lazily on the calling
thread: it needs no background thread, so it works without
``start_monitoring()``, and an idle plugin records nothing new (its last rate
stays its last figure). A window is as long as it really lasted, so a rate
recorded after a quiet spell is the average over that spell.

The operation (when given) is serialised to metadata JSON once, at ``track()``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from pmon import validate
from pmon.models import MetricType

if TYPE_CHECKING:
    from pmon.monitor import Monitor

log = logging.getLogger("pmon.tracking")

F = TypeVar("F", bound=Callable[..., Any])

ERROR_SEVERITY = "medium"
"""Severity of the event a tracked failure records: a failed call, not a failed plugin."""

_perf_ns = time.perf_counter_ns

_open_blocks: contextvars.ContextVar[tuple[Any, int, Any] | None] = contextvars.ContextVar(
    "pmon_open_track_blocks", default=None)
"""The ``with`` blocks open in this thread / task, innermost first: (tracker, started_ns, outer)."""


class CallCounters:
    """Calls and errors of one plugin in the current window, and when the window closes."""

    __slots__ = ("plugin_id", "calls", "errors", "opened_ns", "closes_ns", "interval_ns", "lock")

    def __init__(self, plugin_id: str, interval_s: float) -> None:
        self.plugin_id = plugin_id
        self.calls = 0
        self.errors = 0
        self.interval_ns = max(int(interval_s * 1e9), 1)
        self.opened_ns = _perf_ns()
        self.closes_ns = self.opened_ns + self.interval_ns
        self.lock = threading.Lock()

    def close_window(self, now_ns: int) -> tuple[float, float] | None:
        """Reset the counters; (throughput, error_rate) of the window just closed, None if it had no calls.

        Call with ``lock`` held.
        """
        calls, errors, elapsed = self.calls, self.errors, now_ns - self.opened_ns
        self.calls = self.errors = 0
        self.opened_ns = now_ns
        self.closes_ns = now_ns + self.interval_ns
        if not calls:
            return None
        return calls * 1e9 / max(elapsed, 1), errors / calls


def record_rates(monitor: Monitor, plugin_id: str, rates: tuple[float, float] | None) -> None:
    """Record a closed window's THROUGHPUT and ERROR_RATE (nothing for an empty window)."""
    if rates is None:
        return
    monitor.record_metric(plugin_id, MetricType.THROUGHPUT, rates[0])
    monitor.record_metric(plugin_id, MetricType.ERROR_RATE, rates[1])


class Tracker:
    """What ``monitor.track(plugin_id, operation)`` returns: a decorator and a (sync or async) context manager.

    One tracker may decorate many functions and open many blocks, nested or
    concurrent (threads, asyncio tasks): each block's start time is kept in the
    caller's context, not on the tracker.
    """

    __slots__ = ("monitor", "plugin_id", "operation", "_counters", "_meta", "_record_time", "_data", "_context")

    def __init__(self, monitor: Monitor, plugin_id: str, operation: str | None, counters: CallCounters) -> None:
        self.monitor = monitor
        """The monitor the calls are recorded through."""
        self.plugin_id = plugin_id
        """The plugin every call is counted for."""
        self.operation = operation
        """Stored as ``{"operation": ...}`` metadata on each response time, and on errors; None for none."""
        self._counters = counters
        self._data = None if operation is None else {"operation": operation}
        self._meta = validate.json_text("metadata", self._data)
        self._record_time = monitor._record_response_time

    # -- the per-call path ----------------------------------------------------------

    def _finish(self, started_ns: int, failed: bool) -> None:
        now = _perf_ns()
        self._record_time(self.plugin_id, (now - started_ns) / 1e6, self._meta)
        c = self._counters
        with c.lock:
            c.calls += 1
            if failed:
                c.errors += 1
            if now < c.closes_ns:
                return
            rates = c.close_window(now)
        record_rates(self.monitor, self.plugin_id, rates)

    def _failed(self, started_ns: int, exc: BaseException) -> None:
        """Count and record a failure; never raises, so the caller's exception is the one that propagates."""
        try:
            self._finish(started_ns, True)
            context = self._data
            self.monitor.record_log(self.plugin_id, "error", f"{type(exc).__name__}: {exc}", context,
                                    "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            self.monitor.record_event(self.plugin_id, "error", f"{type(exc).__name__}: {exc}", ERROR_SEVERITY,
                                      data=context)
        except Exception:  # recording must not replace the plugin's own exception
            log.exception("pmon: could not record a tracked failure of %s", self.plugin_id)

    # -- decorator --------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        """Wrap ``fn`` (a function or an ``async def``) so that every call is tracked."""
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(f"track: cannot time generator function {fn.__qualname__}; "
                            "use `with monitor.track(...)` around the loop that consumes it")
        finish, failed, perf_ns = self._finish, self._failed, _perf_ns

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def tracked_async(*args: Any, **kwargs: Any) -> Any:
                started = perf_ns()
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    failed(started, exc)
                    raise
                except BaseException:  # cancellation, KeyboardInterrupt: timed, not an error
                    finish(started, False)
                    raise
                finish(started, False)
                return result

            return tracked_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            started = perf_ns()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                failed(started, exc)
                raise
            except BaseException:
                finish(started, False)
                raise
            finish(started, False)
            return result

        return tracked  # type: ignore[return-value]

    # -- context manager --------------------------------------------------------------

    def __enter__(self) -> Tracker:
        _open_blocks.set((self, _perf_ns(), _open_blocks.get()))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        block = _open_blocks.get()
        if block is None or block[0] is not self:
            raise RuntimeError("track: a `with` block closed that this context did not open")
        _, started, outer = block
        _open_blocks.set(outer)
        if exc is not None and isinstance(exc, Exception):
            self._failed(started, exc)
        else:
            self._finish(started, False)

    async def __aenter__(self) -> Tracker:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"Tracker(plugin_id={self.plugin_id!r}, operation={self.operation!r})"

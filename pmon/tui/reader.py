"""Everything the console reads from the store, gathered in one call on a worker thread.

This module imports no Textual: it turns the store's query functions into the
plain frozen dataclasses the tabs render, so it can be tested and timed alone.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pmon.models import LogLevel, MetricType, PluginEvent, PluginLog
from pmon.store import alert_store, console_queries, queries
from pmon.store.queries import PluginSummary
from pmon.store.schema import StoreError, open_reader

IDLE_AFTER = 60.0
"""Seconds without a record after which an active plugin shows as idle."""
DOWN_AFTER = 300.0
"""Seconds without a record after which a plugin shows as down."""
SPARKLINE_SAMPLES = 60
"""How many recent CPU / memory values a sparkline summarises."""
P95_WINDOW = 300.0
"""Seconds of response times the overview's p95 covers."""
LOG_PAGE = 200
"""Logs loaded when the Logs tab (re)starts, and the most read per refresh after that."""


@dataclass(frozen=True, slots=True)
class PluginRow:
    """One plugin as the overview shows it."""

    plugin_id: str
    status: str
    last_seen: float
    cpu: tuple[float, ...]
    memory: tuple[float, ...]
    p95_response_ms: float | None
    error_rate: float | None
    throughput: float | None
    last_event: PluginEvent | None


@dataclass(frozen=True, slots=True)
class Overview:
    """Every plugin plus the totals in the overview header."""

    rows: tuple[PluginRow, ...]
    error_logs_last_minute: int
    serious_events_last_hour: int
    read_at: float
    firing_alerts: int = 0
    """Alerts firing now (acked and silenced ones included), as `pmon alerts` would list them."""


@dataclass(frozen=True, slots=True)
class LogQuery:
    """What the Logs tab wants next; ``generation`` changes with the filters so stale answers are dropped."""

    generation: int = 0
    min_level: LogLevel | None = None
    text: str | None = None
    after_id: int | None = None
    plugin_id: str | None = None


@dataclass(frozen=True, slots=True)
class LogBatch:
    """Logs answering one ``LogQuery``, oldest first."""

    query: LogQuery
    logs: tuple[PluginLog, ...]
    newest_id: int
    """The store's highest log id just before reading: a tail need not rescan rows up to it."""


class PanelQuery(Protocol):
    """What one tab or screen wants read on this refresh; it reads itself on the worker thread.

    Implementations are frozen dataclasses in modules that import no Textual,
    so each panel's data layer can be tested and timed without the UI.
    """

    def read(self, conn: sqlite3.Connection, now: float) -> object:
        """Run the queries and return a plain, immutable result for the panel's ``show_panel``."""
        ...


@dataclass(frozen=True, slots=True)
class Reading:
    """One refresh: what every visible tab and screen needs, read under one lock."""

    overview: Overview | None
    """None when a drill-down screen covers the tabs (the read is then only the screen's own)."""
    logs: LogBatch | None
    panels: Mapping[str, object] = field(default_factory=dict)
    """Results of the ``PanelQuery`` objects passed to ``read``, by panel key."""


def status_of(plugin: PluginSummary, now: float) -> str:
    """active / idle / down: ``down`` if the store says so or nothing came for DOWN_AFTER seconds."""
    age = now - plugin.last_seen
    if plugin.status == "down" or age > DOWN_AFTER:
        return "down"
    if age > IDLE_AFTER:
        return "idle"
    return "active"


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (0 < fraction <= 1) of ``values``, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _latest(plugin: PluginSummary, metric: MetricType) -> float | None:
    value = plugin.latest.get(metric.value)
    return value.value if value is not None else None


class ConsoleReader:
    """A read-only connection that reopens itself when the file appears, disappears or is replaced.

    A lock serialises readers: a manual refresh may start while the timed one
    is still running on another worker thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        """The database file being watched."""
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._wal_at_open = True
        """Whether a -wal existed when the connection opened (without one it may be immutable: see _connection)."""
        self._lock = threading.RLock()

    def _connection(self) -> sqlite3.Connection:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self.close()
            raise StoreError(f"{self.path}: no database here yet") from None
        identity = (stat.st_dev, stat.st_ino)
        if self._conn is not None and identity != self._identity:
            self.close()
        if self._conn is not None and not self._wal_at_open and os.path.exists(f"{self.path}-wal"):
            # Opened while nobody wrote (maybe immutable, in a folder this user cannot write): such a
            # connection never sees later writes, so a writer's -wal appearing means: open again.
            self.close()
        if self._conn is None:
            self._wal_at_open = os.path.exists(f"{self.path}-wal")
            self._conn = open_reader(self.path)
            self._identity = identity
        return self._conn

    def close(self) -> None:
        """Drop the connection; the next read opens a new one.

        Under the lock: closing a connection while a worker thread runs a
        statement on it frees memory SQLite is still using (a segfault when
        the console quits mid-refresh).
        """
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def read(self, now: float, log_query: LogQuery, panels: Mapping[str, PanelQuery] | None = None, *,
             tabs: bool = True) -> Reading:
        """Read the overview and the Logs tab's next batch (unless ``tabs`` is False) and each panel's query.

        StoreError names the path on any failure.
        """
        with self._lock:
            conn = self._connection()
            try:
                overview = self._overview(conn, now) if tabs else None
                logs = self._logs(conn, log_query) if tabs else None
                results = {key: query.read(conn, now) for key, query in (panels or {}).items()}
                return Reading(overview, logs, results)
            except sqlite3.Error as exc:
                self.close()
                raise StoreError(f"{self.path}: {exc}") from None

    def _overview(self, conn: sqlite3.Connection, now: float) -> Overview:
        plugins = queries.plugins(conn)
        ids = [plugin.plugin_id for plugin in plugins]
        cpu, memory, response = MetricType.CPU_USAGE.value, MetricType.MEMORY_USAGE.value, MetricType.RESPONSE_TIME.value
        recent = console_queries.recent_values_for(conn, [(pid, m) for pid in ids for m in (cpu, memory)],
                                                   SPARKLINE_SAMPLES)
        p95 = console_queries.percentile_since_for(conn, [(pid, response) for pid in ids], now - P95_WINDOW, 0.95)
        last_events = console_queries.last_events_for(conn, ids)
        rows = tuple(
            PluginRow(
                plugin_id=plugin.plugin_id,
                status=status_of(plugin, now),
                last_seen=plugin.last_seen,
                cpu=tuple(recent.get((plugin.plugin_id, cpu), ())),
                memory=tuple(recent.get((plugin.plugin_id, memory), ())),
                p95_response_ms=p95.get((plugin.plugin_id, response)),
                error_rate=_latest(plugin, MetricType.ERROR_RATE),
                throughput=_latest(plugin, MetricType.THROUGHPUT),
                last_event=last_events.get(plugin.plugin_id),
            )
            for plugin in plugins
        )
        return Overview(
            rows=rows,
            error_logs_last_minute=console_queries.count_logs_since(conn, now - 60),
            serious_events_last_hour=console_queries.count_events_since(conn, now - 3600),
            read_at=now,
            firing_alerts=alert_store.firing_count(conn),
        )

    def _logs(self, conn: sqlite3.Connection, query: LogQuery) -> LogBatch:
        newest = console_queries.newest_log_id(conn)
        if query.after_id is None:
            found = queries.logs(conn, plugin_id=query.plugin_id, min_level=query.min_level, text=query.text,
                                 limit=LOG_PAGE)
            found.reverse()
        else:
            found = queries.logs(conn, plugin_id=query.plugin_id, min_level=query.min_level, text=query.text,
                                 after_id=query.after_id, limit=LOG_PAGE, newest_first=False)
        return LogBatch(query, tuple(found), newest)

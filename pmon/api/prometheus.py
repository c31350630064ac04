"""``GET /metrics``: the store and pmon's own health as a Prometheus text exposition.

A custom collector, not client-side metric objects: every scrape reads the
latest values from the store (one index seek per series), so values recorded
by other processes into the same file show up too. Log and event counts are
counters kept in this process and advanced by the rows recorded since the
previous scrape (``pmon.store.exposition_queries``), so a scrape stays cheap on
a 10 M-row store and the counters never go down when retention prunes.
Label values are recorded data: prometheus_client escapes them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pmon.analysis.alerting import OPEN_STATES, Alert, AlertState
from pmon.store.alert_store import open_alerts
from pmon.store.exposition_queries import CountStep, event_counts_since, log_counts_since
from pmon.store.queries import PluginSummary, plugins
from pmon.store.schema import StoreError, open_reader

_HEALTH = (  # Monitor.status() key, family, name, help
    ("queue_depth", GaugeMetricFamily, "pmon_queue_depth", "Rows recorded but not yet committed by the writer."),
    ("db_size_bytes", GaugeMetricFamily, "pmon_db_size_bytes", "Size of the database file and its WAL."),
    ("uptime_seconds", GaugeMetricFamily, "pmon_uptime_seconds", "Seconds since this process started monitoring."),
    ("dropped", CounterMetricFamily, "pmon_dropped_rows", "Rows dropped because the write buffer was full."),
    ("write_errors", CounterMetricFamily, "pmon_write_errors", "Batches the writer failed to commit."),
)
_API = (  # the server's counters, status()["api"]
    ("requests", CounterMetricFamily, "pmon_api_requests", "HTTP requests received."),
    ("refused_connections", CounterMetricFamily, "pmon_api_refused_connections",
     "Connections refused at the connection cap."),
    ("open_connections", GaugeMetricFamily, "pmon_api_open_connections", "HTTP connections open now."),
    ("stream_clients", GaugeMetricFamily, "pmon_api_stream_clients", "WebSocket clients of the live stream now."),
)


class _RowCounter:
    """A counter per (plugin, rank) that only ever grows, advanced by each step past its mark."""

    def __init__(self, step: Callable[[sqlite3.Connection, int], CountStep]) -> None:
        self._step = step
        self.after = 0
        self.totals: Counter[tuple[str, str]] = Counter()

    def advance(self, conn: sqlite3.Connection) -> None:
        found = self._step(conn, self.after)
        self.totals.update(found.counts)
        self.after = found.last_id


class StoreCollector:
    """Exposes one pmon database and the health of the process serving it to a Prometheus registry.

    ``collect`` runs in whatever executor thread serves the scrape: the
    reader connection is opened lazily and shared under a lock, and a store
    that cannot be read yields ``pmon_store_up 0`` and the health metrics
    instead of an error, since a failed scrape would hide the health too.
    """

    def __init__(self, db_path: Path, health: Callable[[], dict[str, Any]]) -> None:
        self.db_path = Path(db_path)
        """The database read on each scrape."""
        self._health = health
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._logs = _RowCounter(log_counts_since)
        self._events = _RowCounter(event_counts_since)

    def collect(self) -> Iterator[Metric]:
        """Every family for one scrape, read under the lock so counts are advanced once per scrape."""
        with self._lock:
            try:
                families = self._store_families()
                up = 1
            except (sqlite3.Error, StoreError):
                self._close_reader()  # reopened next scrape: the file may come back or be replaced
                families, up = [], 0
        store_up = GaugeMetricFamily("pmon_store_up", "1 when the last scrape read the database, else 0.")
        store_up.add_metric([], up)
        return iter([store_up, *families, *_health_families(self._health)])

    def close(self) -> None:
        """Close the reader connection (the next scrape would open it again)."""
        with self._lock:
            self._close_reader()

    def _close_reader(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _store_families(self) -> list[Metric]:
        if self._conn is None:
            self._conn = open_reader(self.db_path)  # check_same_thread=False: executor threads take turns
        conn = self._conn
        summaries = plugins(conn)
        alerts = open_alerts(conn)
        self._logs.advance(conn)
        self._events.advance(conn)
        return [*_plugin_families(summaries),
                _counter_family("pmon_logs", "Log rows recorded (pruned rows stay counted).", "level",
                                self._logs.totals),
                _counter_family("pmon_events", "Event rows recorded (pruned rows stay counted).", "severity",
                                self._events.totals),
                *_alert_families(alerts)]


def _plugin_families(summaries: list[PluginSummary]) -> list[Metric]:
    value = GaugeMetricFamily("pmon_metric", "Latest recorded value of a plugin's metric.",
                              labels=["plugin", "metric"])
    stamp = GaugeMetricFamily("pmon_metric_timestamp_seconds", "When the latest value of a metric was recorded.",
                              labels=["plugin", "metric"])
    plugin_up = GaugeMetricFamily("pmon_plugin_up", "0 when the plugin's stored status is down, else 1.",
                                  labels=["plugin"])
    last_seen = GaugeMetricFamily("pmon_plugin_last_seen_timestamp_seconds",
                                  "Timestamp of the plugin's newest recorded row.", labels=["plugin"])
    for summary in summaries:
        plugin_up.add_metric([summary.plugin_id], 0 if summary.status == "down" else 1)
        last_seen.add_metric([summary.plugin_id], summary.last_seen)
        for metric, latest in sorted(summary.latest.items()):
            value.add_metric([summary.plugin_id, metric], latest.value)
            stamp.add_metric([summary.plugin_id, metric], latest.timestamp)
    return [value, stamp, plugin_up, last_seen]


def _counter_family(name: str, help_text: str, rank: str, totals: Counter[tuple[str, str]]) -> Metric:
    family = CounterMetricFamily(name, help_text, labels=["plugin", rank])
    for labels, count in sorted(totals.items()):
        family.add_metric(labels, count)
    return family


def _alert_families(alerts: list[Alert]) -> list[Metric]:
    by_state = GaugeMetricFamily("pmon_alerts", "Open alerts by state.", labels=["state"])
    states = Counter(alert.state for alert in alerts)
    for state in OPEN_STATES:
        by_state.add_metric([state.value], states[state])
    firing = GaugeMetricFamily("pmon_alert_firing", "1 for each firing alert.", labels=["rule", "plugin", "severity"])
    for alert in alerts:
        if alert.state is AlertState.FIRING:
            firing.add_metric([alert.rule, alert.plugin_id, alert.severity], 1)
    return [by_state, firing]

def _health_families(health: Callable[[], dict[str, Any]]) -> list[Metric]:
    """pmon's own health from ``Monitor.status()`` (plus the API's counters); nothing when it fails."""
    try:
        status = health()
        api = status.get("api") or {}
    except Exception:  # the store's metrics are still worth serving
        return []
    families: list[Metric] = [family(name, help_text, value=source[key])
                              for source, specs in ((status, _HEALTH), (api, _API))
                              for key, family, name, help_text in specs if _is_number(source.get(key))]
    labelled = (
        (CounterMetricFamily("pmon_rows_written", "Rows committed by this process's writer, by kind.", labels=["kind"]),
         status.get("rows_written") or {}),
        (CounterMetricFamily("pmon_api_error_responses", "HTTP responses with a 4xx or 5xx status.", labels=["class"]),
         {cls: api.get(f"responses_{cls}") for cls in ("4xx", "5xx")}),
    )
    for family, values in labelled:
        for label, count in sorted(values.items()):
            if _is_number(count):
                family.add_metric([label], count)
        if family.samples:
            families.append(family)
    return families


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def exposition(collector: StoreCollector) -> bytes:
    """The text exposition of ``collector`` alone, on a private registry so no process-global metrics leak in."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)

"""Periodic performance snapshots, with the seed's fields, from what was recorded in the window.

The daemon takes one per plugin every ``collector.snapshot_interval`` for
every plugin that recorded metrics in that window (sampled by the daemon or
recorded by the plugin itself), so snapshots can be compared later even for
plugins nobody snapshots by hand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pmon.models import MetricType
from pmon.store.window_queries import WindowAggregate

SEED_METRICS = frozenset(m.value for m in MetricType)

# Which recorded series feed the disk_io / network_io dicts, and under which key.
_IO_FIELDS = {
    "disk_io": {"disk_io": "bytes_per_s", "process.disk_read_bytes_per_s": "read_bytes_per_s",
                "process.disk_write_bytes_per_s": "write_bytes_per_s", "system.disk_read_bytes_per_s": "read_bytes_per_s",
                "system.disk_write_bytes_per_s": "write_bytes_per_s"},
    "network_io": {"network_io": "bytes_per_s", "system.net_recv_bytes_per_s": "recv_bytes_per_s",
                   "system.net_sent_bytes_per_s": "sent_bytes_per_s"},
}
_IO_SOURCES = {name for fields in _IO_FIELDS.values() for name in fields}


def _tidy(value: float) -> float | int:
    """Six significant digits, and whole numbers as ints: a snapshot is read by people and diffed."""
    rounded = float(f"{value:.6g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < 2**53 else rounded


def build_snapshots(aggregates: Iterable[WindowAggregate], window_seconds: float) -> dict[str, dict[str, Any]]:
    """``create_snapshot`` data per plugin.

    cpu_usage is the window's mean; memory_usage the newest value;
    response_time the mean of the RESPONSE_TIME points; request_count the
    number of those points (else throughput x window); throughput the mean
    THROUGHPUT (else requests / window); error_rate the mean ERROR_RATE; the I/O
    dicts hold mean bytes/s; custom_metrics the newest value of every other metric.
    """
    by_plugin: dict[str, dict[str, WindowAggregate]] = defaultdict(dict)
    for agg in aggregates:
        by_plugin[agg.plugin_id][agg.metric_type] = agg
    window = max(window_seconds, 1e-9)
    snapshots = {}
    for plugin_id, series in by_plugin.items():
        def mean(name: str) -> float:
            found = series.get(name)
            return found.avg if found else 0.0

        response = series.get(MetricType.RESPONSE_TIME.value)
        tput = series.get(MetricType.THROUGHPUT.value)
        if response is not None:
            requests = response.count
        elif tput is not None:
            requests = round(tput.avg * window)
        else:
            requests = 0
        memory = series.get(MetricType.MEMORY_USAGE.value)
        data: dict[str, Any] = {
            "cpu_usage": mean(MetricType.CPU_USAGE.value),
            "memory_usage": memory.last if memory else 0.0,
            "response_time": response.avg if response else 0.0,
            "error_rate": mean(MetricType.ERROR_RATE.value),
            "request_count": requests,
            "throughput": tput.avg if tput else requests / window,
        }
        for field, sources in _IO_FIELDS.items():
            data[field] = {key: _tidy(series[name].avg) for name, key in sources.items() if name in series}
        data["custom_metrics"] = {name: _tidy(agg.last) for name, agg in sorted(series.items())
                                  if name not in SEED_METRICS and name not in _IO_SOURCES}
        snapshots[plugin_id] = data
    return snapshots

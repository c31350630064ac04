"""Replay stored history through a fresh DetectorEngine: what the detectors would have said, recorded nothing.

Why a replay and not a separate batch algorithm: the live engine and the
backtest must agree on the same data, so both are the same engine fed the
same samples in time order. Every series is read in batches off its index and
merged by time with the lifecycle events (events first at equal times), which
is the order the live engine sees them tick by tick. Points backfilled with
``timestamp=`` are in the store like any others, so they are replayed in place.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator

from pmon.analysis.detectors.engine import DetectorEngine
from pmon.analysis.detectors.finding import Finding, episodes
from pmon.analysis.detectors.settings import DetectorSettings
from pmon.store.history_queries import history_series, lifecycle_history, series_points

_EVENT, _POINT = 0, 1


def _watched(settings: DetectorSettings) -> tuple[str, ...]:
    metrics: set[str] = set()
    if settings.leak.enabled:
        metrics.add(settings.leak.metric)
    if settings.anomaly.enabled:
        metrics.update(settings.anomaly.metrics)
    if settings.error_spike.enabled:
        metrics.update(("error_rate", "throughput"))
    return tuple(sorted(metrics))


def _tagged(series_index: int, plugin_id: str, metric: str, points: Iterator[tuple[float, float]]) -> Iterator[tuple]:
    for ts, value in points:
        yield ts, _POINT, series_index, plugin_id, metric, value


def replay(conn: sqlite3.Connection, settings: DetectorSettings | None = None, plugin_id: str | None = None,
           since: float | None = None, until: float | None = None,
           engine: DetectorEngine | None = None) -> Iterator[Finding]:
    """Every finding as the live engine emits it (an episode's opening, then its closing), in replay order.

    ``engine``: feed this one (the live runner warms its engine up this way) instead of a fresh one.
    """
    settings = settings or (engine.settings if engine is not None else DetectorSettings())
    engine = engine if engine is not None else DetectorEngine(settings)
    events = ((e.timestamp, _EVENT, i, e.plugin_id, e.event_type, e.data)
              for i, e in enumerate(lifecycle_history(conn, plugin_id, since, until)))
    streams = [_tagged(i, s.plugin_id, s.metric_type, series_points(conn, s.series_id, since, until))
               for i, s in enumerate(history_series(conn, plugin_id, _watched(settings)))]
    for ts, kind, _, plugin, name, payload in heapq.merge(events, *streams, key=lambda item: item[:3]):
        if kind == _EVENT:
            yield from engine.feed_event(plugin, name, ts, payload)
        else:
            yield from engine.feed_points(plugin, name, ((ts, payload),))


def backtest(conn: sqlite3.Connection, settings: DetectorSettings | None = None, plugin_id: str | None = None,
             since: float | None = None, until: float | None = None) -> list[Finding]:
    """One finding per episode over the stored history in [since, until); ``end`` None: still going at the end."""
    return episodes(list(replay(conn, settings, plugin_id, since, until)))

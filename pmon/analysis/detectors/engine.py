"""Feeds every detector, and collects their findings: the same code runs live and in a backtest.

The live daemon feeds the rows it reads from the store each tick; the backtest
feeds the whole stored history in time order. For both to reach the same
findings, a caller feeds each chunk's lifecycle events before its points, and
each series' points in time order (a point older than its series' last one is
skipped: it arrived late, e.g. backfilled after the fact, and only a backtest
sees it in its place).

While a plugin is down (from ``stopped`` / ``not_found`` to ``started`` /
``restarted``) its points are not judged (the daemon records zeros for a down
plugin), and what comes after is judged afresh: the first point after a down
period ends the plugin's open findings at the time it went down and resets its
detectors.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from pmon.analysis.detectors.anomaly import AnomalyDetector
from pmon.analysis.detectors.down import DownDetector
from pmon.analysis.detectors.error_spike import ErrorSpikeDetector
from pmon.analysis.detectors.finding import Finding
from pmon.analysis.detectors.leak import LeakDetector
from pmon.analysis.detectors.settings import DetectorSettings
from pmon.models import LIFECYCLE_STATUS

DOWN_PERIODS_KEPT = 32
"""Down periods remembered per plugin, for points that arrive after the events that enclose them."""


class _Plugin:
    """A plugin's down periods and lifecycle; its error-spike detector spans two series."""

    def __init__(self, plugin_id: str) -> None:
        self.down = DownDetector(plugin_id)
        self.down_periods: deque[list[Any]] = deque(maxlen=DOWN_PERIODS_KEPT)
        """[start, end or None], oldest first."""
        self.error_spike: ErrorSpikeDetector | None = None
        self.error_spike_since = float("-inf")

    def down_period(self, ts: float) -> list[Any] | None:
        """The latest down period that started at or before ts."""
        for period in reversed(self.down_periods):
            if period[0] <= ts:
                return period
        return None


class _Series:
    """One plugin's metric: its last timestamp and the per-series detectors watching it."""

    def __init__(self, detectors: list[LeakDetector | AnomalyDetector]) -> None:
        self.detectors = detectors
        self.last_ts = float("-inf")
        self.since = float("-inf")
        """Start of the down period this series was last reset for."""


def _restart(detector: Any, down_at: float, found: list[Finding]) -> None:
    if detector.open_finding is not None:
        found.append(detector.open_finding.ended(down_at, ended_by="plugin down"))
    detector.reset()


class DetectorEngine:
    """Every enabled detector for every plugin and metric it is fed."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._plugins: dict[str, _Plugin] = {}
        self._series: dict[tuple[str, str], _Series] = {}

    def _plugin(self, plugin_id: str) -> _Plugin:
        plugin = self._plugins.get(plugin_id)
        if plugin is None:
            plugin = self._plugins[plugin_id] = _Plugin(plugin_id)
        return plugin

    def _new_series(self, plugin_id: str, metric: str) -> _Series:
        s = self.settings
        detectors: list[LeakDetector | AnomalyDetector] = []
        if s.leak.enabled and metric == s.leak.metric:
            detectors.append(LeakDetector(s.leak, plugin_id, metric))
        if s.anomaly.enabled and metric in s.anomaly.metrics:
            detectors.append(AnomalyDetector(s.anomaly, plugin_id, metric))
        series = self._series[(plugin_id, metric)] = _Series(detectors)
        return series

    def feed_points(self, plugin_id: str, metric: str, points: Iterable[tuple[float, float]]) -> list[Finding]:
        """New points of one series (epoch seconds, value), oldest first; the findings they open or close."""
        series = self._series.get((plugin_id, metric)) or self._new_series(plugin_id, metric)
        plugin = self._plugin(plugin_id)
        spike = None
        if self.settings.error_spike.enabled and metric in ("error_rate", "throughput"):
            if plugin.error_spike is None:
                plugin.error_spike = ErrorSpikeDetector(self.settings.error_spike, plugin_id)
            spike = plugin.error_spike
        if not series.detectors and spike is None:
            return []
        found: list[Finding] = []
        for ts, value in points:
            if ts < series.last_ts:
                continue
            series.last_ts = ts
            period = plugin.down_period(ts) if plugin.down_periods else None
            if period is not None:
                if period[0] > series.since:
                    series.since = period[0]
                    for detector in series.detectors:
                        _restart(detector, period[0], found)
                if spike is not None and period[0] > plugin.error_spike_since:
                    plugin.error_spike_since = period[0]
                    _restart(spike, period[0], found)
                if period[1] is None or ts < period[1]:
                    continue
            for detector in series.detectors:
                finding = detector.update(ts, value)
                if finding is not None:
                    found.append(finding)
            if spike is not None:
                found.extend(spike.update(ts, value) if metric == "error_rate" else spike.update_throughput(ts, value))
        return found

    def feed_event(self, plugin_id: str, event_type: str, ts: float, data: dict[str, Any] | None = None) -> list[Finding]:
        """An event of the plugin; only lifecycle events (started, stopped, ...) matter."""
        status = LIFECYCLE_STATUS.get(event_type)
        if status is None:
            return []
        plugin = self._plugin(plugin_id)
        last = plugin.down_periods[-1] if plugin.down_periods else None
        if status == "down" and (last is None or last[1] is not None):
            plugin.down_periods.append([ts, None])
        elif status == "active" and last is not None and last[1] is None:
            last[1] = ts
        if not self.settings.down.enabled:
            return []
        finding = plugin.down.update(ts, event_type, data)
        return [] if finding is None else [finding]

    def open_findings(self) -> list[Finding]:
        """Episodes going on now, across every detector."""
        detectors: list[Any] = [p.down for p in self._plugins.values()]
        detectors += [p.error_spike for p in self._plugins.values() if p.error_spike is not None]
        detectors += [d for s in self._series.values() for d in s.detectors]
        return sorted((d.open_finding for d in detectors if d.open_finding is not None), key=lambda f: f.start)

"""Anomaly: a robust z-score against the rolling median and MAD of one plugin's metric.

Why median and MAD: the spike being judged must not drag its own yardstick
along, and neither must the last spike. A sample is the mean of a
clock-aligned bucket (a minute by default) of the points: a 2 s series' noise
lasts seconds, and an anomaly worth a finding lasts minutes. Each sample is
scored against the window of samples before it, then joins the window, so a level shift is an
anomaly while it is new and the normal once it fills half the window. m of the
last n samples must be anomalous, so a lone outlier (a GC pause) is not one;
the episode ends when none of the last n is.

When more than half the window holds one value, MAD is 0 (a constant series, an
idle plugin's throughput). Then the scale is the mean absolute deviation from
the median (x 1.2533, a normal's sigma); in a perfectly constant window the
median itself scores 0 and any other value an infinite z (capped in evidence),
so a constant series never alarms and a jump from it does.

A change must also be at least ``min_change`` of the median: with a quiet
window, MAD is small enough that a wobble of a few percent scores far beyond
3.5 without meaning anything.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from pmon.analysis.detectors.finding import Finding
from pmon.analysis.detectors.settings import AnomalySettings


def median_and_mad(ordered: list[float]) -> tuple[float, float]:
    """Median and median absolute deviation of a sorted list, in O(n) without sorting the deviations."""
    n = len(ordered)
    half = n // 2
    if n % 2:
        median = ordered[half]
        below, above = half - 1, half + 1
        wanted = (half, half)  # ranks of the deviations whose mean is the MAD; rank 0 is ordered[half] itself
        rank, deviation = 0, 0.0
    else:
        median = (ordered[half - 1] + ordered[half]) / 2
        below, above = half - 1, half
        wanted = (half - 1, half)
        rank, deviation = -1, 0.0
    low = 0.0
    while rank < wanted[1]:
        left = median - ordered[below] if below >= 0 else math.inf
        right = ordered[above] - median if above < n else math.inf
        if left <= right:
            deviation, below = left, below - 1
        else:
            deviation, above = right, above + 1
        rank += 1
        if rank == wanted[0]:
            low = deviation
    return median, (low + deviation) / 2


class AnomalyDetector:
    """One plugin's metric: its window, and its last n verdicts."""

    def __init__(self, settings: AnomalySettings, plugin_id: str, metric: str) -> None:
        self.settings = settings
        self.plugin_id = plugin_id
        self.metric = metric
        self.reset()

    def reset(self) -> None:
        """Forget the window (the plugin was down: what it does next is judged afresh)."""
        self._arrival: deque[float] = deque()
        self._ordered: list[float] = []
        self._verdicts: deque[bool] = deque()
        self._anomalous = 0
        self._open: Finding | None = None
        self._peak = 0.0
        self._bucket = -1
        self._sum = 0.0
        self._count = 0

    @property
    def open_finding(self) -> Finding | None:
        """The anomaly going on now, if any."""
        return self._open

    def score(self, value: float) -> tuple[float, float, float]:
        """z of a value against the current window, with the window's median and scale (sigma-equivalent)."""
        ordered = self._ordered
        median, mad = median_and_mad(ordered)
        if mad > 0:
            scale = mad / 0.6745
        else:
            mean_ad = sum(abs(v - median) for v in ordered) / len(ordered)
            scale = 1.2533 * mean_ad
        if scale > 0:
            return (value - median) / scale, median, scale
        return (0.0 if value == median else math.copysign(math.inf, value - median)), median, scale

    def update(self, ts: float, value: float) -> Finding | None:
        """Add a point; when it closes a bucket, the bucket's mean is judged (a finding when an anomaly starts or ends)."""
        resolution = self.settings.resolution
        if resolution <= 0:
            return self._judge(ts, value)
        index = math.floor(ts / resolution)
        finding = None
        if index != self._bucket:
            if self._count:
                finding = self._judge((self._bucket + 1) * resolution, self._sum / self._count)
            self._bucket, self._sum, self._count = index, 0.0, 0
        self._sum += value
        self._count += 1
        return finding

    def _judge(self, ts: float, value: float) -> Finding | None:
        s = self.settings
        anomalous = False
        z = median = scale = 0.0
        if len(self._ordered) >= s.min_samples:
            z, median, scale = self.score(value)
            anomalous = abs(z) > s.threshold and abs(value - median) >= s.min_change * abs(median)
        self._verdicts.append(anomalous)
        self._anomalous += anomalous
        if len(self._verdicts) > s.n:
            self._anomalous -= self._verdicts.popleft()
        self._arrival.append(value)
        bisect.insort(self._ordered, value)
        if len(self._arrival) > s.window:
            old = self._arrival.popleft()
            del self._ordered[bisect.bisect_left(self._ordered, old)]
        if self._open is not None:
            self._peak = max(self._peak, abs(z))
            if self._anomalous == 0:
                closed, self._open = self._open.ended(ts, peak_z=_finite(self._peak)), None
                return closed
            return None
        if self._anomalous >= s.m:
            self._peak = abs(z)
            self._open = Finding(
                "anomaly", self.plugin_id, self.metric, ts, None, "medium",
                f"{self.metric} {value:.4g} is {_finite(z):+.1f} robust z from the median {median:.4g} "
                f"({self._anomalous} of the last {s.n} samples beyond {s.threshold:g})",
                {"value": value, "median": median, "scale": scale, "z": _finite(z),
                 "anomalous": self._anomalous, "n": s.n, "threshold": s.threshold, "window": len(self._ordered),
                 "resolution": s.resolution})
            return self._open
        return None


def _finite(z: float) -> float:
    """A z fit for JSON: infinite (a constant window left) is capped."""
    return round(max(-1e9, min(1e9, z)), 3)

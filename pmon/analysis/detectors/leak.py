"""Memory leak: a least-squares line through each window's segment means, steep, straight and rising.

Why segment means: a process's memory jitters by megabytes from sample to
sample (allocator, garbage collector), so a steady 20 MiB/h climb is invisible
step by step. Each window (30 min by default) is cut into ten equal segments
aligned to the clock; the line is fitted to their means, and "rising steps" are
counted between consecutive means. A window is evaluated whenever a segment
closes, so the check slides by a tenth of a window; a leak is reported when the
windows ending now and ``windows_in_a_row - 1`` whole windows earlier all pass,
and it ends when they all fail. Memory per detector is a few dozen floats.
"""

from __future__ import annotations

import math
from collections import deque

from pmon.analysis.detectors.finding import Finding
from pmon.analysis.detectors.settings import LeakSettings

SEGMENTS = 10
"""Segments per window."""
MIN_PRESENT = 8
"""Segments of a window that must hold samples for it to be judged (a gap fails the window)."""


class LeakDetector:
    """One plugin's memory series."""

    def __init__(self, settings: LeakSettings, plugin_id: str, metric: str) -> None:
        self.settings = settings
        self.plugin_id = plugin_id
        self.metric = metric
        self._segment_s = settings.window / SEGMENTS
        self._history = (settings.windows_in_a_row - 1) * SEGMENTS + 1
        self.reset()

    def reset(self) -> None:
        """Forget everything (the plugin was down: its memory starts afresh)."""
        self._index: int | None = None
        self._count = 0
        self._sum_t = 0.0
        self._sum_v = 0.0
        self._segments: deque[tuple[float, float] | None] = deque(maxlen=SEGMENTS)
        self._passes: deque[dict | None] = deque(maxlen=self._history)
        self._open: Finding | None = None

    @property
    def open_finding(self) -> Finding | None:
        """The leak going on now, if any."""
        return self._open

    def update(self, ts: float, value: float) -> Finding | None:
        """Add a sample (times never go backwards); a finding when a leak starts or ends."""
        index = math.floor(ts / self._segment_s)
        finding = None
        if self._index is not None and index != self._index:
            finding = self._close_segments(index, ts)
        if self._index != index:
            self._index, self._count, self._sum_t, self._sum_v = index, 0, 0.0, 0.0
        self._count += 1
        self._sum_t += ts - index * self._segment_s
        self._sum_v += value
        return finding

    def _close_segments(self, new_index: int, ts: float) -> Finding | None:
        assert self._index is not None
        start = self._index * self._segment_s
        self._segments.append((start + self._sum_t / self._count, self._sum_v / self._count))
        finding = self._judge(ts)
        # A gap: its empty segments fail the windows they fall in. At most history - 1 of them are judged,
        # so an episode opened just now cannot also close before the caller sees it opened.
        empty = new_index - self._index - 1
        judged = min(empty, self._history - 1)
        for _ in range(judged):
            self._segments.append(None)
            finding = self._judge(ts) or finding
        self._segments.extend([None] * min(empty - judged, SEGMENTS))
        return finding

    def _judge(self, ts: float) -> Finding | None:
        self._passes.append(self._evaluate())
        checked = [self._passes[i] for i in range(len(self._passes) - 1, -1, -SEGMENTS)]
        if len(checked) < self.settings.windows_in_a_row:
            return None
        if self._open is None and all(checked):
            self._open = self._opened(ts, checked)
            return self._open
        if self._open is not None and not any(checked):
            closed, self._open = self._open.ended(ts), None
            return closed
        return None

    def _evaluate(self) -> dict | None:
        """The window's fit when it passes every threshold, else None."""
        points = [p for p in self._segments if p is not None]
        if len(self._segments) < SEGMENTS or len(points) < MIN_PRESENT:
            return None
        n = len(points)
        mean_t = sum(t for t, _ in points) / n
        mean_v = sum(v for _, v in points) / n
        sxx = sum((t - mean_t) ** 2 for t, _ in points)
        syy = sum((v - mean_v) ** 2 for _, v in points)
        sxy = sum((t - mean_t) * (v - mean_v) for t, v in points)
        if sxx <= 0 or syy <= 0:
            return None
        slope_h = sxy / sxx * 3600.0
        r2 = sxy * sxy / (sxx * syy)
        steps = [b > a for a, b in zip(self._segments, list(self._segments)[1:]) if a is not None and b is not None]
        rising = sum(steps) / len(steps) if steps else 0.0
        s = self.settings
        if slope_h < s.min_slope or r2 < s.min_r2 or rising < s.min_rising:
            return None
        return {"slope_per_hour": slope_h, "r2": r2, "rising": rising, "since": points[0][0], "last": points[-1][1]}

    def _opened(self, ts: float, windows: list) -> Finding:
        s = self.settings
        newest = windows[0]
        unit = " MiB" if self.metric == "memory_usage" else ""
        evidence = {
            "slope_per_hour": round(newest["slope_per_hour"], 3),
            "r2": round(newest["r2"], 4),
            "rising": round(newest["rising"], 3),
            "windows": [{"slope_per_hour": round(w["slope_per_hour"], 3), "r2": round(w["r2"], 4),
                         "rising": round(w["rising"], 3)} for w in reversed(windows)],
            "window_s": s.window,
            "since": windows[-1]["since"],
            "value": round(newest["last"], 3),
        }
        summary = (f"{self.metric} growing {newest['slope_per_hour']:.1f}{unit}/h for {len(windows)} windows "
                   f"of {s.window / 60:g} min in a row")
        severity = "medium"
        if s.limit > 0:
            hours = max(0.0, (s.limit - newest["last"]) / newest["slope_per_hour"])
            evidence["limit"] = s.limit
            evidence["hours_to_limit"] = round(hours, 2)
            summary += f"; reaches {s.limit:g}{unit} in about {hours:.1f} h"
            if hours < 24:
                severity = "high"
        return Finding("leak", self.plugin_id, self.metric, ts, None, severity, summary, evidence)

"""Error-rate spike: the mean error rate of the last few minutes against the hour before, with enough traffic.

Requests are counted from throughput, not from response_time points: the
daemon and most hosts record throughput as a rate every few seconds, while
response_time points may be one a request or one an interval. Requests in the
short window = mean throughput of its samples x short_window seconds. A plugin
that records no throughput has no request count and is never judged.

Both inputs are consumed in time order: an error_rate sample is judged once
throughput has reached its timestamp (throughput at the same timestamp counts),
so the findings do not depend on which series a caller feeds first (the live
engine reads the store in chunks, the backtest in one pass). A stream that
lags the other by more than baseline_window is not waited for: its oldest
samples are dropped (error rates unjudged), which bounds the memory.
"""

from __future__ import annotations

from collections import deque

from pmon.analysis.detectors.finding import Finding
from pmon.analysis.detectors.settings import ErrorSpikeSettings


class ErrorSpikeDetector:
    """One plugin's error_rate and throughput series."""

    def __init__(self, settings: ErrorSpikeSettings, plugin_id: str) -> None:
        self.settings = settings
        self.plugin_id = plugin_id
        self.reset()

    def reset(self) -> None:
        """Forget both windows (the plugin was down)."""
        self._errors_waiting: deque[tuple[float, float]] = deque()
        self._throughput_waiting: deque[tuple[float, float]] = deque()
        self._throughput_reached = float("-inf")
        self._short: deque[tuple[float, float]] = deque()
        self._short_sum = 0.0
        self._baseline: deque[tuple[float, float]] = deque()
        self._baseline_sum = 0.0
        self._requests: deque[tuple[float, float]] = deque()
        self._requests_sum = 0.0
        self._open: Finding | None = None
        self._last_true = 0.0
        self._peak = 0.0

    @property
    def open_finding(self) -> Finding | None:
        """The spike going on now, if any."""
        return self._open

    def update(self, ts: float, error_rate: float) -> list[Finding]:
        """Add an error_rate sample (a 0-1 fraction); findings when a spike starts or ends."""
        self._errors_waiting.append((ts, error_rate))
        while ts - self._errors_waiting[0][0] > self.settings.baseline_window:
            self._errors_waiting.popleft()
        return self._drain()

    def update_throughput(self, ts: float, per_second: float) -> list[Finding]:
        """Add a throughput sample (requests per second); it may let waiting error rates be judged."""
        self._throughput_waiting.append((ts, per_second))
        self._throughput_reached = max(self._throughput_reached, ts)
        while ts - self._throughput_waiting[0][0] > self.settings.baseline_window:
            self._take_throughput(*self._throughput_waiting.popleft())
        return self._drain()

    def _drain(self) -> list[Finding]:
        found = []
        while self._errors_waiting:
            ts = self._errors_waiting[0][0]
            while self._throughput_waiting and self._throughput_waiting[0][0] <= ts:
                self._take_throughput(*self._throughput_waiting.popleft())
            if self._throughput_reached < ts:
                break
            finding = self._judge(*self._errors_waiting.popleft())
            if finding is not None:
                found.append(finding)
        return found

    def _take_throughput(self, ts: float, per_second: float) -> None:
        self._requests.append((ts, per_second))
        self._requests_sum += per_second
        while self._requests[0][0] <= ts - self.settings.short_window:  # a plugin with no error_rate stays bounded
            self._requests_sum -= self._requests.popleft()[1]

    def _judge(self, ts: float, error_rate: float) -> Finding | None:
        s = self.settings
        self._short.append((ts, error_rate))
        self._short_sum += error_rate
        while self._short[0][0] <= ts - s.short_window:
            moved = self._short.popleft()
            self._short_sum -= moved[1]
            self._baseline.append(moved)
            self._baseline_sum += moved[1]
        while self._baseline and self._baseline[0][0] <= ts - s.short_window - s.baseline_window:
            self._baseline_sum -= self._baseline.popleft()[1]
        while self._requests and self._requests[0][0] <= ts - s.short_window:
            self._requests_sum -= self._requests.popleft()[1]
        short_rate = self._short_sum / len(self._short)
        requests = self._requests_sum / len(self._requests) * s.short_window if self._requests else 0.0
        known = bool(self._baseline) and self._baseline[-1][0] - self._baseline[0][0] >= s.short_window
        baseline_rate = self._baseline_sum / len(self._baseline) if self._baseline else 0.0
        spiking = (known and short_rate >= s.factor * baseline_rate and short_rate >= s.min_rate
                   and requests >= s.min_requests)
        if self._open is not None:
            self._peak = max(self._peak, short_rate)
            if spiking:
                self._last_true = ts
            elif ts - self._last_true >= s.short_window:
                closed, self._open = self._open.ended(ts, peak_rate=round(self._peak, 5)), None
                return closed
            return None
        if not spiking:
            return None
        self._last_true, self._peak = ts, short_rate
        ratio = short_rate / baseline_rate if baseline_rate > 0 else None
        times = f"x{ratio:.1f}" if ratio is not None else "from none"
        self._open = Finding(
            "error_spike", self.plugin_id, "error_rate", ts, None, "high",
            f"error rate {short_rate:.1%} over {s.short_window / 60:g} min against {baseline_rate:.1%} over the "
            f"{s.baseline_window / 60:g} min before ({times}), about {requests:.0f} requests",
            {"short_rate": round(short_rate, 5), "baseline_rate": round(baseline_rate, 5),
             "ratio": None if ratio is None else round(ratio, 3), "requests": round(requests, 1),
             "short_window": s.short_window, "baseline_window": s.baseline_window})
        return self._open

"""Labelled synthetic streams for the detector quality tests: what a plugin records, and what truly happened.

Every stream is built from the same normal behaviour, then one thing is done to
it (a leak, a spike, a shift, a down period, an error burst) and labelled. The
normal behaviour (``Normal``) is meant to look like a real service, not like
what the detectors find easy:

- load follows the day: 0.1 at 04:00 to 0.9 at 16:00 (a 24 h sine);
- cpu_usage (%, every 2 s): 5 + 40 x load, AR(1) noise (sd 3, ~1 min memory) and white noise (sd 2);
- memory_usage (MiB, every 2 s): a base of 150-600 MiB, a daily swing of +/-15 MiB with the load,
  AR(1) wander (sd 3 MiB, ~10 min memory) and white noise (sd 1.5 MiB);
- throughput (req/s, every 10 s): Poisson requests at peak x load (peak 10-60 req/s), counted per 10 s;
- response_time (ms, mean per 10 s): 40-120 ms x (1 + 0.5 x load) with log-normal noise (sd 8 %),
  and one interval in 200 slowed x1.5-3 (a GC pause, a slow query) for that interval only;
- error_rate (0-1, every 10 s): each request fails with probability 1 %, counted per 10 s
  (0 when no requests came).

A restart (after a down period) comes back at 90 % of the memory base and fills
the rest with a 5 minute time constant (imports, then caches).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

DAY = 86400.0
T0 = 1_700_006_400.0
"""A UTC midnight; streams start at T0 plus their own offset."""
FAST = 2.0
"""Seconds between cpu and memory samples (the daemon's default)."""
SLOW = 10.0
"""Seconds between request figures (throughput, response time, error rate)."""


@dataclass
class Label:
    """Something that truly happened: which detector should report it, on what, from when to when."""

    detector: str
    plugin_id: str
    metric: str
    onset: float
    end: float


@dataclass
class Stream:
    """One plugin's recorded series and lifecycle events, with the labels of what happened in them."""

    plugin_id: str
    description: str
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def load(ts: float) -> float:
    """Daily load, 0.1 at 04:00 UTC to 0.9 at 16:00 UTC."""
    return 0.5 - 0.4 * math.cos(2 * math.pi * ((ts - T0) / DAY - 4 / 24))


class Normal:
    """A plugin's normal behaviour, sampled on demand with its own seeded RNG."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.memory_base = self.rng.uniform(150, 600)
        self.peak = self.rng.uniform(10, 60)
        self.latency = self.rng.uniform(40, 120)

    def ar1(self, count: int, step: float, sd: float, tau: float) -> list[float]:
        """Stationary AR(1) noise with standard deviation sd and time constant tau."""
        phi = math.exp(-step / tau)
        innovation = sd * math.sqrt(1 - phi * phi)
        x, out = self.rng.gauss(0, sd), []
        for _ in range(count):
            x = phi * x + self.rng.gauss(0, innovation)
            out.append(x)
        return out

    def times(self, start: float, hours: float, step: float) -> list[float]:
        return [start + i * step for i in range(int(hours * 3600 / step))]

    def cpu(self, start: float, hours: float) -> list[tuple[float, float]]:
        ts = self.times(start, hours, FAST)
        wander = self.ar1(len(ts), FAST, 3.0, 60.0)
        return [(t, max(0.0, 5 + 40 * load(t) + w + self.rng.gauss(0, 2))) for t, w in zip(ts, wander)]

    def memory(self, start: float, hours: float) -> list[tuple[float, float]]:
        ts = self.times(start, hours, FAST)
        wander = self.ar1(len(ts), FAST, 3.0, 600.0)
        return [(t, self.memory_base + 30 * (load(t) - 0.5) + w + self.rng.gauss(0, 1.5)) for t, w in zip(ts, wander)]

    def requests(self, start: float, hours: float, error_p: float = 0.01
                 ) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[tuple[float, float]]]:
        """throughput, response_time and error_rate series, from the same simulated requests."""
        throughput, latency, errors = [], [], []
        for t in self.times(start, hours, SLOW):
            count = _poisson(self.rng, self.peak * load(t) * SLOW)
            throughput.append((t, count / SLOW))
            slow = self.rng.uniform(1.5, 3) if self.rng.random() < 1 / 200 else 1.0
            ms = self.latency * (1 + 0.5 * load(t)) * math.exp(self.rng.gauss(0, 0.08)) * slow
            latency.append((t, ms))
            failed = min(count, _poisson(self.rng, count * error_p))
            errors.append((t, failed / count if count else 0.0))
        return throughput, latency, errors


def leak_stream(seed: int, rate_mib_h: float) -> Stream:
    """Normal memory, then a leak of rate MiB/h (starting 90-120 min in) for 2 h, then flat again for 1 h."""
    normal = Normal(seed * 1000 + int(rate_mib_h))
    start = T0 + normal.rng.uniform(0, DAY)
    onset = start + normal.rng.uniform(5400, 7200)
    stop = onset + 7200
    memory = [(t, v + rate_mib_h * (min(t, stop) - onset) / 3600 if t > onset else v)
              for t, v in normal.memory(start, 6.0)]
    stream = Stream(f"leak-{rate_mib_h:g}-{seed}", f"memory leak of {rate_mib_h:g} MiB/h for 2 h",
                    {"memory_usage": memory, "cpu_usage": normal.cpu(start, 6.0)})
    stream.labels.append(Label("leak", stream.plugin_id, "memory_usage", onset, stop))
    return stream


def latency_spike_stream(seed: int) -> Stream:
    """Response times x3-6 for 2-10 min (a saturated database), in 4 h of normal traffic."""
    normal = Normal(seed)
    start = T0 + normal.rng.uniform(0, DAY)
    onset = start + normal.rng.uniform(3600, 10800)
    end = onset + normal.rng.uniform(120, 600)
    factor = normal.rng.uniform(3, 6)
    throughput, latency, errors = normal.requests(start, 4.0)
    latency = [(t, v * factor if onset <= t < end else v) for t, v in latency]
    stream = Stream(f"spike-{seed}", f"latency x{factor:.1f} for {end - onset:.0f} s",
                    {"throughput": throughput, "response_time": latency, "error_rate": errors})
    stream.labels.append(Label("anomaly", stream.plugin_id, "response_time", onset, end))
    return stream


def level_shift_stream(seed: int, metric: str) -> Stream:
    """A lasting change of level, 1-3 h into 4 h: cpu +25-40 points (a runaway thread), memory +80-200 MiB
    at once (a big cache loaded), or throughput down to 20-35 % (an upstream stopped sending)."""
    normal = Normal(seed)
    start = T0 + normal.rng.uniform(0, DAY)
    onset = start + normal.rng.uniform(3600, 10800)
    series: dict[str, list[tuple[float, float]]] = {}
    if metric == "cpu_usage":
        jump = normal.rng.uniform(25, 40)
        series["cpu_usage"] = [(t, v + jump if t >= onset else v) for t, v in normal.cpu(start, 4.0)]
        what, step = f"cpu +{jump:.0f} points", FAST
    elif metric == "memory_usage":
        jump = normal.rng.uniform(80, 200)
        series["memory_usage"] = [(t, v + jump if t >= onset else v) for t, v in normal.memory(start, 4.0)]
        what, step = f"memory +{jump:.0f} MiB at once", FAST
    else:
        keep = normal.rng.uniform(0.2, 0.35)
        throughput, latency, errors = normal.requests(start, 4.0)
        series["throughput"] = [(t, v * keep if t >= onset else v) for t, v in throughput]
        series["response_time"] = latency
        what, step = f"throughput down to {keep:.0%}", SLOW
    stream = Stream(f"shift-{metric}-{seed}", what, series)
    stream.labels.append(Label("anomaly", stream.plugin_id, metric, onset, onset + 60 * step))
    return stream


def error_burst_stream(seed: int) -> Stream:
    """Errors up to 10-40 % of requests for 5-20 min (a bad deploy, a failing dependency), in 4 h."""
    normal = Normal(seed)
    start = T0 + normal.rng.uniform(0, DAY)
    onset = start + normal.rng.uniform(5400, 10800)
    end = onset + normal.rng.uniform(300, 1200)
    burst = normal.rng.uniform(0.10, 0.40)
    throughput, latency, errors = normal.requests(start, 4.0)
    rng = random.Random(seed + 1)
    burst_errors = []
    for (t, rate), (_, per_s) in zip(errors, throughput):
        if onset <= t < end:
            count = round(per_s * SLOW)
            failed = sum(rng.random() < burst for _ in range(count))
            rate = failed / count if count else 0.0
        burst_errors.append((t, rate))
    stream = Stream(f"errors-{seed}", f"errors at {burst:.0%} for {end - onset:.0f} s",
                    {"throughput": throughput, "response_time": latency, "error_rate": burst_errors})
    stream.labels.append(Label("error_spike", stream.plugin_id, "error_rate", onset, end))
    return stream


def down_stream(seed: int) -> Stream:
    """Stopped for 5-30 min, 1-3 h into 4 h: the daemon records `stopped`, zeros while down, then `started`
    and a process that comes back at 90 % of its memory and fills the rest within minutes."""
    normal = Normal(seed)
    start = T0 + normal.rng.uniform(0, DAY)
    stop = start + normal.rng.uniform(3600, 10800)
    back = stop + normal.rng.uniform(300, 1800)
    deficit = 0.1 * normal.memory_base

    def shaped(points: list[tuple[float, float]], warm: bool) -> list[tuple[float, float]]:
        out = []
        for t, v in points:
            if stop <= t < back:
                v = 0.0
            elif warm and t >= back:
                v -= deficit * math.exp(-(t - back) / 300)
            out.append((t, v))
        return out

    # Samples fall on the daemon's 2 s tick, so the events do too.
    stop, back = start + round((stop - start) / FAST) * FAST, start + round((back - start) / FAST) * FAST
    stream = Stream(f"down-{seed}", f"down for {back - stop:.0f} s",
                    {"memory_usage": shaped(normal.memory(start, 4.0), True),
                     "cpu_usage": shaped(normal.cpu(start, 4.0), False)},
                    [(stop, "stopped"), (back, "started")])
    stream.labels.append(Label("down", stream.plugin_id, "", stop, back))
    return stream


def normal_day(seed: int) -> Stream:
    """24 h of everything normal, with the daily cycle."""
    normal = Normal(seed)
    throughput, latency, errors = normal.requests(T0, 24.0)
    return Stream(f"normal-{seed}", "24 h noisy normal with daily periodicity",
                  {"cpu_usage": normal.cpu(T0, 24.0), "memory_usage": normal.memory(T0, 24.0),
                   "throughput": throughput, "response_time": latency, "error_rate": errors})


def quiet_day(seed: int) -> Stream:
    """24 h of a plugin that is rarely called: 0.02-0.18 req/s, 5 % of calls failing (a noisy error rate
    of 0, 0.5 or 1 on few requests), its throughput mostly 0."""
    normal = Normal(seed)
    normal.peak = 0.2
    throughput, latency, errors = normal.requests(T0, 24.0, error_p=0.05)
    return Stream(f"quiet-{seed}", "24 h of a rarely called plugin",
                  {"throughput": throughput, "response_time": latency, "error_rate": errors})

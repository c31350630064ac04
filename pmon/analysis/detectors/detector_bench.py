"""How long one sample takes in each detector (`pmon bench --analysis`): the budget is 50 us a sample.

Each detector gets a realistic series (noisy memory, cpu at a 2 s cadence,
error rates and throughput at 10 s) and the median of several timed passes
is reported, per update, in microseconds.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from pmon.analysis.detectors.anomaly import AnomalyDetector
from pmon.analysis.detectors.down import DownDetector
from pmon.analysis.detectors.engine import DetectorEngine
from pmon.analysis.detectors.error_spike import ErrorSpikeDetector
from pmon.analysis.detectors.leak import LeakDetector
from pmon.analysis.detectors.settings import AnomalySettings, DetectorSettings, ErrorSpikeSettings, LeakSettings

BUDGET_US = 50.0
"""Per-sample budget of every detector."""


def _series(count: int, step: float, level: float, noise: float, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(1_700_000_000.0 + i * step, level + rng.gauss(0, noise)) for i in range(count)]


def _time(make: Callable[[], Callable[[float, float], object]], points: list[tuple[float, float]],
          repeats: int) -> float:
    """Median microseconds per update over fresh detectors."""
    runs = []
    for _ in range(repeats):
        update = make()
        started = time.perf_counter()
        for ts, value in points:
            update(ts, value)
        runs.append((time.perf_counter() - started) / len(points) * 1e6)
    return statistics.median(runs)


def bench_detectors(samples: int = 20_000, repeats: int = 5) -> dict[str, float]:
    """Microseconds per update, median of ``repeats`` runs, per detector and for the engine with all of them."""
    memory = _series(samples, 2.0, 400.0, 3.0, 1)
    cpu = _series(samples, 2.0, 30.0, 4.0, 2)
    errors = [(ts, abs(v)) for ts, v in _series(samples, 10.0, 0.01, 0.005, 3)]
    throughput = _series(samples, 10.0, 20.0, 2.0, 4)

    def spike() -> Callable[[float, float], object]:
        detector = ErrorSpikeDetector(ErrorSpikeSettings(), "bench")
        flow = iter(throughput)

        def update(ts: float, value: float) -> object:
            detector.update_throughput(*next(flow))
            return detector.update(ts, value)
        return update

    def raw_anomaly() -> Callable[[float, float], object]:
        return AnomalyDetector(AnomalySettings(resolution=0.0), "bench", "cpu_usage").update

    def down() -> Callable[[float, float], object]:
        detector = DownDetector("bench")
        kinds = ("stopped", "started")
        return lambda ts, value: detector.update(ts, kinds[int(ts) % 2])

    def engine() -> Callable[[float, float], object]:
        everything = DetectorEngine(DetectorSettings())
        return lambda ts, value: everything.feed_points("bench", "memory_usage", ((ts, value),))

    results = {
        "leak": _time(lambda: LeakDetector(LeakSettings(), "bench", "memory_usage").update, memory, repeats),
        "anomaly": _time(lambda: AnomalyDetector(AnomalySettings(), "bench", "cpu_usage").update, cpu, repeats),
        "anomaly_every_point": _time(raw_anomaly, cpu, repeats),
        "error_spike": _time(spike, errors, repeats) / 2,  # two updates (error rate and throughput) per call
        "down": _time(down, memory, repeats),
        "engine_memory_point": _time(engine, memory, repeats),
    }
    return {name: round(us, 3) for name, us in results.items()}


if __name__ == "__main__":
    for name, us in bench_detectors().items():
        print(f"{name:22} {us:8.2f} us/update  ({'ok' if us <= BUDGET_US else 'OVER BUDGET'})")

"""Figures for the analyses (`pmon bench --analysis`): performance statistics over a million response times.

The store is recorded through ``Monitor`` with backfilled timestamps, as a
host application would fill it. The baseline is the obvious way: every value
sorted by SQLite (``ORDER BY value``), then nearest-rank quantiles in Python.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pmon.analysis.histogram import exact_quantile
from pmon.analysis.performance import performance
from pmon.monitor import Monitor
from pmon.store import analysis_queries as aq
from pmon.store.schema import open_reader

PLUGINS = 5
DAY = 86400.0


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def record_response_times(path: Path, rows: int, now: float, plugins: int = PLUGINS) -> None:
    """``rows`` log-normal response times (median 20 ms) spread over ``plugins`` plugins and the last 24 h."""
    monitor = Monitor(path, flush_interval=0.5, max_buffer=rows + 10)
    rng = random.Random(5)
    start = now - DAY
    for i in range(rows):
        monitor.record_metric(f"plugin_{i % plugins:03d}", "response_time", rng.lognormvariate(3.0, 1.0),
                              timestamp=start + i * DAY / rows)
    if not monitor.stop_monitoring(timeout=600):
        raise RuntimeError("the benchmark store was not written in time")


def bench_performance(rows: int = 1_000_000, repeats: int = 5) -> dict[str, float]:
    """Median ms of ``performance()`` over ``rows`` points and of the naive baseline, and the estimate's error."""
    with tempfile.TemporaryDirectory(prefix="pmon-analysis-bench-") as tmp:
        path = Path(tmp) / "analysis.db"
        now = time.time()
        record_response_times(path, rows, now)
        conn = open_reader(path)
        try:
            since, until = now - DAY - 1, now + 1
            stats = performance(conn, since, until)
            start_ms, end_ms = int(since * 1000), int(until * 1000)

            def naive() -> list[float | None]:
                values: list[float] = []
                for series_id in aq.series_by_plugin(conn, "response_time").values():
                    values.extend(aq.sorted_point_values(conn, series_id, start_ms, end_ms))
                values.sort()
                return [exact_quantile(values, q) for q in (0.5, 0.95, 0.99)]

            exact = naive()
            estimated = (stats.overall.p50_ms, stats.overall.p95_ms, stats.overall.p99_ms)
            error = max((abs(e - x) / abs(x) for e, x in zip(estimated, exact) if e is not None and x), default=0.0)
            return {
                "rows": float(stats.overall.requests),
                "performance_ms": _median_ms(lambda: performance(conn, since, until), repeats),
                "baseline_ms": _median_ms(naive, repeats),
                "max_relative_error_pct": error * 100,
                "exact": float(stats.overall.exact),
            }
        finally:
            conn.close()

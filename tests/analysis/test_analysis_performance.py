"""Performance statistics over a range: exact percentiles of known data, the histogram beyond, uptime from lifecycle events."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmon import Monitor
from pmon.analysis.histogram import LogHistogram, exact_quantile, nearest_rank
from pmon.analysis.performance import downtime, performance
from pmon.store.schema import open_reader

T0 = 1_700_000_000.0


def build(path: Path) -> None:
    monitor = Monitor(path, flush_interval=0.05)
    for i in range(100):
        monitor.record_metric("api", "response_time", float(i + 1), timestamp=T0 + i)
    for i in range(50):
        monitor.record_metric("worker", "response_time", 1000.0 + i, timestamp=T0 + i)
    monitor.record_metric("api", "error_rate", 0.1, timestamp=T0 + 1)
    monitor.record_metric("api", "error_rate", 0.3, timestamp=T0 + 2)
    monitor.record_metric("worker", "error_rate", 0.5, timestamp=T0 + 2)
    monitor.record_metric("api", "throughput", 10.0, timestamp=T0 + 1)
    monitor.record_metric("api", "throughput", 30.0, timestamp=T0 + 2)
    monitor.record_metric("worker", "throughput", 5.0, timestamp=T0 + 2)
    monitor.record_metric("api", "response_time", 9999.0, timestamp=T0 + 1000)  # after the range: left out
    monitor.record_event("api", "started", "up", timestamp=T0)
    monitor.record_event("api", "stopped", "down", timestamp=T0 + 100)
    monitor.record_event("api", "restarted", "up again", timestamp=T0 + 400)
    monitor.stop_monitoring()


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "pmon.db"
    build(path)
    return open_reader(path)


def test_a_plugins_figures_are_exact_for_known_data(conn: sqlite3.Connection) -> None:
    stats = performance(conn, T0, T0 + 1000)
    api = {p.plugin_id: p for p in stats.plugins}["api"]
    assert api.requests == 100 and api.exact
    assert (api.mean_ms, api.p50_ms, api.p95_ms, api.p99_ms) == (50.5, 50.0, 95.0, 99.0)
    assert api.error_rate == pytest.approx(0.2) and api.throughput == pytest.approx(20.0)


def test_uptime_counts_the_time_between_stopped_and_the_next_start_as_down(conn: sqlite3.Connection) -> None:
    by_id = {p.plugin_id: p for p in performance(conn, T0, T0 + 1000).plugins}
    assert by_id["api"].downtime_s == pytest.approx(300.0) and by_id["api"].uptime_pct == pytest.approx(70.0)
    assert by_id["worker"].uptime_pct == 100.0  # no lifecycle events: up


def test_a_range_starting_while_down_counts_from_its_start(conn: sqlite3.Connection) -> None:
    api = performance(conn, T0 + 200, T0 + 600, plugin_id="api").plugins[0]
    assert api.downtime_s == pytest.approx(200.0) and api.uptime_pct == pytest.approx(50.0)


def test_overall_pools_the_response_times_and_sums_the_throughputs(conn: sqlite3.Connection) -> None:
    overall = performance(conn, T0, T0 + 1000).overall
    values = sorted([float(i + 1) for i in range(100)] + [1000.0 + i for i in range(50)])
    assert overall.plugin_id is None and overall.requests == 150 and overall.exact
    assert overall.p95_ms == exact_quantile(values, 0.95) and overall.mean_ms == pytest.approx(sum(values) / 150)
    assert overall.error_rate == pytest.approx(0.3) and overall.throughput == pytest.approx(25.0)
    assert overall.uptime_pct == pytest.approx(85.0)


def test_beyond_the_exact_limit_percentiles_come_from_the_histogram_within_two_percent(conn: sqlite3.Connection) -> None:
    stats = performance(conn, T0, T0 + 1000, exact_limit=10)
    api = {p.plugin_id: p for p in stats.plugins}["api"]
    assert not api.exact and not stats.overall.exact
    assert api.requests == 100 and api.mean_ms == 50.5  # counts and means stay exact
    for got, want in ((api.p50_ms, 50.0), (api.p95_ms, 95.0), (api.p99_ms, 99.0)):
        assert got == pytest.approx(want, rel=0.02)
    assert stats.overall.p99_ms == pytest.approx(1048.0, rel=0.02)


def test_sqlite_buckets_values_exactly_as_the_histogram_does(conn: sqlite3.Connection) -> None:
    api = performance(conn, T0, T0 + 1000, plugin_id="api", exact_limit=10).plugins[0]
    histogram = LogHistogram()
    histogram.extend(float(i + 1) for i in range(100))
    assert (api.p50_ms, api.p95_ms, api.p99_ms) == tuple(histogram.quantile(q) for q in (0.5, 0.95, 0.99))


def test_an_unknown_plugin_is_listed_with_nothing_recorded(conn: sqlite3.Connection) -> None:
    stats = performance(conn, T0, T0 + 1000, plugin_id="nobody")
    assert [p.plugin_id for p in stats.plugins] == ["nobody"]
    assert stats.plugins[0].requests == 0 and stats.plugins[0].p50_ms is None
    assert stats.to_dict()["plugins"][0]["uptime_pct"] == 100.0


def test_downtime_runs_to_the_range_end_when_never_restarted() -> None:
    assert downtime(False, [("stopped", 10.0), ("not_found", 20.0)], 0.0, 100.0) == 90.0
    assert downtime(True, [], 0.0, 100.0) == 100.0


values_strategy = st.lists(
    st.one_of(st.floats(min_value=1e-6, max_value=1e9), st.floats(min_value=-1e6, max_value=-1e-6), st.just(0.0)),
    min_size=1, max_size=400)


@settings(max_examples=200, deadline=None)
@given(values_strategy, st.floats(min_value=0.0, max_value=1.0))
def test_histogram_quantiles_are_within_two_percent_of_the_exact_ones(values: list[float], fraction: float) -> None:
    histogram = LogHistogram()
    histogram.extend(values)
    exact = exact_quantile(sorted(values), fraction)
    assert histogram.count == len(values)
    got = histogram.quantile(fraction)
    assert got is not None and exact is not None
    assert math.isclose(got, exact, rel_tol=0.02) or (exact == 0.0 and got == 0.0)


@settings(max_examples=100, deadline=None)
@given(values_strategy, values_strategy, st.floats(min_value=0.0, max_value=1.0))
def test_merged_histograms_equal_the_histogram_of_all_values(left: list[float], right: list[float],
                                                             fraction: float) -> None:
    a, b, both = LogHistogram(), LogHistogram(), LogHistogram()
    a.extend(left)
    for value in right:
        b.add(value)
    both.extend(left + right)
    a.merge(b)
    assert a.count == both.count and a.quantile(fraction) == both.quantile(fraction)


def test_nearest_rank_matches_the_usual_definition() -> None:
    assert [nearest_rank(q, 100) for q in (0.0, 0.5, 0.95, 0.99, 1.0)] == [1, 50, 95, 99, 100]
    assert LogHistogram().quantile(0.5) is None
    with pytest.raises(ValueError):
        LogHistogram().add(math.nan)


def test_the_analyses_import_no_console_libraries() -> None:
    code = ("import sys, pmon.analysis.trends, pmon.analysis.performance, pmon.analysis.baseline, "
            "pmon.analysis.errors, pmon.analysis.analysis_bench; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"

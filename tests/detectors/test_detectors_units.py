"""Each detector's behaviour a user relies on: one finding per episode, its evidence, its edge cases."""

from __future__ import annotations

import json

from pmon.analysis.detectors import (AnomalySettings, DetectorEngine, DetectorSettings, ErrorSpikeSettings,
                                     LeakSettings)
from pmon.analysis.detectors.anomaly import AnomalyDetector
from pmon.analysis.detectors.error_spike import ErrorSpikeDetector
from pmon.analysis.detectors.leak import LeakDetector

T = 1_700_006_400.0


def _feed(detector, points):
    return [f for ts, v in points if (f := detector.update(ts, v)) is not None]


def test_a_steady_leak_is_one_finding_with_its_rate_and_time_to_the_limit() -> None:
    leak = LeakDetector(LeakSettings(limit=1000.0), "app", "memory_usage")
    climbing = [(T + i * 2, 300 + 60 * i * 2 / 3600) for i in range(4 * 1800)]  # 60 MiB/h for 4 h
    findings = _feed(leak, climbing)
    assert len(findings) == 1 and findings[0].end is None
    evidence = findings[0].evidence
    assert abs(evidence["slope_per_hour"] - 60) < 0.5
    assert 8 < evidence["hours_to_limit"] < 11
    assert "60.0 MiB/h" in findings[0].summary and "1000 MiB" in findings[0].summary
    json.dumps(evidence)


def test_a_leak_that_stops_ends_its_episode() -> None:
    leak = LeakDetector(LeakSettings(), "app", "memory_usage")
    points = [(T + i * 2, 300 + 60 * min(i, 3600) * 2 / 3600) for i in range(4 * 1800)]
    findings = _feed(leak, points)
    assert [f.end is None for f in findings] == [True, False]
    assert findings[1].start == findings[0].start and findings[1].end > T + 7200


def test_flat_memory_is_no_leak() -> None:
    leak = LeakDetector(LeakSettings(), "app", "memory_usage")
    assert _feed(leak, [(T + i * 2, 300.0 + (i % 7)) for i in range(4 * 1800)]) == []


def test_a_constant_series_raises_no_anomaly_and_a_jump_from_it_does() -> None:
    anomaly = AnomalyDetector(AnomalySettings(resolution=0.0), "app", "cpu_usage")
    assert _feed(anomaly, [(T + i, 5.0) for i in range(200)]) == []
    assert anomaly.score(50.0)[0] == float("inf")  # no division by zero: any other value is infinitely far
    jumped = _feed(anomaly, [(T + 200 + i, 50.0) for i in range(3)])
    assert len(jumped) == 1 and jumped[0].evidence["z"] > 3.5
    json.dumps(jumped[0].evidence)


def test_a_lone_outlier_is_not_an_anomaly_but_three_of_five_are() -> None:
    anomaly = AnomalyDetector(AnomalySettings(resolution=0.0), "app", "response_time")
    base = [(T + i, 100.0 + (i % 5)) for i in range(100)]
    assert _feed(anomaly, base + [(T + 100, 900.0)] + [(T + 101 + i, 101.0) for i in range(10)]) == []
    spike = _feed(anomaly, [(T + 200 + i, 900.0) for i in range(3)])
    assert len(spike) == 1 and spike[0].evidence["anomalous"] == 3


def test_an_anomaly_stays_one_finding_while_it_lasts() -> None:
    anomaly = AnomalyDetector(AnomalySettings(resolution=0.0, window=60), "app", "cpu_usage")
    _feed(anomaly, [(T + i, 20.0 + (i % 3)) for i in range(100)])
    findings = _feed(anomaly, [(T + 100 + i, 80.0 + (i % 3)) for i in range(100)])
    assert [f.end is None for f in findings] == [True, False]


def _errors(detector: ErrorSpikeDetector, seconds: float, rate: float, per_second: float, start: float):
    found = []
    for i in range(int(seconds / 10)):
        ts = start + i * 10
        found += detector.update_throughput(ts, per_second)
        found += detector.update(ts, rate)
    return found


def test_an_error_burst_with_traffic_is_a_spike_and_ends_when_it_clears() -> None:
    spike = ErrorSpikeDetector(ErrorSpikeSettings(), "api")
    assert _errors(spike, 3600, 0.01, 20, T) == []
    opened = _errors(spike, 600, 0.3, 20, T + 3600)
    closed = _errors(spike, 1200, 0.01, 20, T + 4200)
    assert len(opened) == 1 and opened[0].evidence["requests"] >= 100 and opened[0].severity == "high"
    assert len(closed) == 1 and closed[0].end is not None and closed[0].evidence["peak_rate"] >= 0.29


def test_an_error_burst_on_few_requests_is_not_a_spike() -> None:
    spike = ErrorSpikeDetector(ErrorSpikeSettings(), "cron")
    _errors(spike, 3600, 0.0, 0.1, T)
    assert _errors(spike, 600, 1.0, 0.1, T + 3600) == []


def test_error_rates_wait_for_throughput_so_feeding_order_does_not_matter() -> None:
    first, second = ErrorSpikeDetector(ErrorSpikeSettings(), "api"), ErrorSpikeDetector(ErrorSpikeSettings(), "api")
    rates = [(T + i * 10, 0.01 if i < 360 else 0.3) for i in range(420)]
    found_a = [f for ts, r in rates for f in first.update(ts, r)]
    found_a += [f for ts, _ in rates for f in first.update_throughput(ts, 20.0)]
    found_b = [f for ts, r in rates for f in second.update_throughput(ts, 20.0) + second.update(ts, r)]
    assert found_a == found_b and len(found_a) == 1


def test_a_down_plugin_is_one_finding_resolved_when_it_starts_and_its_zeros_are_not_judged() -> None:
    engine = DetectorEngine(DetectorSettings())
    found = engine.feed_points("app", "cpu_usage", [(T + i * 2, 30.0 + (i % 4)) for i in range(1800)])
    found += engine.feed_event("app", "stopped", T + 3600)
    found += engine.feed_event("app", "not_found", T + 3602)
    found += engine.feed_points("app", "cpu_usage", [(T + 3600 + i * 2, 0.0) for i in range(600)])
    found += engine.feed_event("app", "started", T + 4800)
    found += engine.feed_points("app", "cpu_usage", [(T + 4800 + i * 2, 30.0 + (i % 4)) for i in range(900)])
    assert [(f.detector, f.start, f.end) for f in found] == [("down", T + 3600, None), ("down", T + 3600, T + 4800)]
    assert engine.open_findings() == []


def test_alert_and_other_events_are_ignored() -> None:
    engine = DetectorEngine()
    assert engine.feed_event("app", "alert_fired", T) == [] and engine.feed_event("app", "deploy", T) == []


def test_disabled_detectors_report_nothing() -> None:
    off = DetectorSettings(leak=LeakSettings(enabled=False))
    engine = DetectorEngine(off)
    assert engine.feed_points("app", "memory_usage", [(T + i * 2, 300 + i * 0.1) for i in range(7200)]) == []


def test_every_detector_updates_within_its_50_microsecond_budget() -> None:
    from pmon.analysis.detectors.detector_bench import BUDGET_US, bench_detectors

    timings = bench_detectors(samples=3000, repeats=3)
    assert {"leak", "anomaly", "error_spike", "down"} <= set(timings)
    assert all(us <= BUDGET_US for us in timings.values()), timings

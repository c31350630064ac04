"""Comparing two snapshots: every field, nested dicts flattened, rises in the watched fields flagged."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmon.analysis.snapshot_diff import MISSING, Direction, FieldDiff, diff_snapshots, flatten
from pmon.models import PerformanceSnapshot

T0 = datetime(2023, 11, 14, 22, 0, tzinfo=timezone.utc)


def snap(**fields: object) -> PerformanceSnapshot:
    values: dict = {"plugin_id": "alpha", "timestamp": T0, "cpu_usage": 20.0, "memory_usage": 200.0,
                    "response_time": 40.0, "error_rate": 0.01, "request_count": 1000, "throughput": 50.0}
    values.update(fields)
    return PerformanceSnapshot(**values)  # type: ignore[arg-type]


def by_path(a: PerformanceSnapshot, b: PerformanceSnapshot, **options: object) -> dict[str, FieldDiff]:
    return {row.path: row for row in diff_snapshots(a, b, **options).rows}  # type: ignore[arg-type]


def test_every_number_is_compared_with_delta_and_percent_change() -> None:
    rows = by_path(snap(), snap(cpu_usage=25.0, request_count=1100, throughput=45.0))
    assert list(rows) == ["cpu_usage", "memory_usage", "response_time", "error_rate", "request_count", "throughput"]
    cpu = rows["cpu_usage"]
    assert (cpu.a, cpu.b, cpu.delta, cpu.pct_change, cpu.direction) == (20.0, 25.0, 5.0, 25.0, Direction.UP)
    assert rows["request_count"].delta == 100 and rows["request_count"].pct_change == pytest.approx(10.0)
    assert rows["throughput"].direction is Direction.DOWN and rows["throughput"].pct_change == pytest.approx(-10.0)
    assert rows["memory_usage"].direction is Direction.SAME and rows["memory_usage"].delta == 0


def test_rises_in_cpu_memory_response_and_errors_beyond_the_threshold_are_regressions() -> None:
    a = snap()
    b = snap(cpu_usage=21.0, memory_usage=260.0, response_time=44.5, error_rate=0.02, request_count=5000,
             throughput=500.0)
    rows = by_path(a, b)
    assert not rows["cpu_usage"].regression  # +5 %: noise
    assert rows["memory_usage"].regression
    assert rows["response_time"].regression  # +11.25 %
    assert rows["error_rate"].regression
    assert not rows["request_count"].regression and not rows["throughput"].regression  # not watched
    assert [r.path for r in diff_snapshots(a, b).regressions] == ["memory_usage", "response_time", "error_rate"]


def test_the_threshold_is_a_parameter() -> None:
    a, b = snap(), snap(cpu_usage=23.0)  # +15 %
    assert by_path(a, b)["cpu_usage"].regression is True
    assert by_path(a, b, threshold_pct=20.0)["cpu_usage"].regression is False
    assert by_path(a, snap(cpu_usage=22.0))["cpu_usage"].regression is False  # exactly 10 % is not beyond it
    assert by_path(a, b, watched=("disk_io.read_bytes",))["cpu_usage"].regression is False
    with pytest.raises(ValueError, match="threshold_pct"):
        diff_snapshots(a, b, threshold_pct=-1)


def test_falls_beyond_the_threshold_are_improvements_and_a_rise_from_zero_is_a_regression() -> None:
    rows = by_path(snap(response_time=100.0, error_rate=0.0), snap(response_time=50.0, error_rate=0.05))
    assert rows["response_time"].improvement and not rows["response_time"].regression
    errors = rows["error_rate"]
    assert errors.pct_change is None and errors.delta == pytest.approx(0.05)
    assert errors.regression


def test_nested_dicts_are_flattened_and_keys_on_one_side_are_missing_on_the_other() -> None:
    a = snap(disk_io={"read_bytes": 1000, "write_bytes": 500},
             custom_metrics={"cache": {"hits": 10, "misses": 2}, "old": 1})
    b = snap(disk_io={"read_bytes": 3000, "write_bytes": 500},
             custom_metrics={"cache": {"hits": 12, "misses": 2}, "new": 7})
    rows = by_path(a, b)
    assert rows["disk_io.read_bytes"].delta == 2000 and rows["disk_io.read_bytes"].pct_change == 200.0
    assert rows["disk_io.write_bytes"].direction is Direction.SAME
    assert rows["custom_metrics.cache.hits"].keys == ("custom_metrics", "cache", "hits")
    assert rows["custom_metrics.cache.hits"].delta == 2
    assert rows["custom_metrics.old"].b is MISSING and rows["custom_metrics.old"].direction is Direction.REMOVED
    assert rows["custom_metrics.new"].a is MISSING and rows["custom_metrics.new"].direction is Direction.ADDED
    assert rows["custom_metrics.new"].delta is None and rows["custom_metrics.new"].pct_change is None
    assert not any(path.startswith("network_io") for path in rows)  # empty on both sides: nothing to show


def test_text_booleans_and_lists_compare_as_text() -> None:
    a = snap(custom_metrics={"state": "ok", "tls": True, "shards": [1, 2], "mixed": 3})
    b = snap(custom_metrics={"state": "degraded", "tls": True, "shards": [1, 2, 3], "mixed": "n/a"})
    rows = by_path(a, b)
    assert rows["custom_metrics.state"].direction is Direction.CHANGED and rows["custom_metrics.state"].delta is None
    assert rows["custom_metrics.tls"].direction is Direction.SAME
    assert rows["custom_metrics.shards"].direction is Direction.CHANGED
    assert rows["custom_metrics.mixed"].direction is Direction.CHANGED


def test_the_time_between_them_is_signed() -> None:
    a, b = snap(), snap(timestamp=T0 + timedelta(minutes=3, seconds=20))
    assert diff_snapshots(a, b).seconds_between == 200
    assert diff_snapshots(b, a).seconds_between == -200


json_leaf = st.one_of(st.integers(-10**9, 10**9), st.floats(-1e9, 1e9, allow_nan=False), st.text(max_size=5),
                      st.booleans(), st.none())
json_dict = st.recursive(st.dictionaries(st.text(max_size=4), json_leaf, max_size=4),
                         lambda inner: st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)
numbers = st.floats(0, 1e6, allow_nan=False)


@given(json_dict, json_dict, numbers, numbers)
def test_any_pair_compares_every_leaf_of_both_sides_once(left: dict, right: dict, cpu_a: float, cpu_b: float) -> None:
    a, b = snap(custom_metrics=left, cpu_usage=cpu_a), snap(custom_metrics=right, cpu_usage=cpu_b)
    rows = diff_snapshots(a, b).rows
    keys = [row.keys for row in rows]
    assert len(keys) == len(set(keys))
    custom = {row.keys for row in rows if row.keys[0] == "custom_metrics"}
    expected = ({("custom_metrics", *k) for k, _ in flatten(left)} if left else set()) | \
               ({("custom_metrics", *k) for k, _ in flatten(right)} if right else set())
    assert custom == expected
    for row in rows:
        assert not (row.regression and row.improvement)
        if row.pct_change is not None:
            assert row.delta is not None and row.a not in (0, MISSING)


@given(json_dict, numbers, numbers)
def test_swapping_a_and_b_reverses_every_change(custom: dict, cpu_a: float, cpu_b: float) -> None:
    a, b = snap(cpu_usage=cpu_a, custom_metrics=custom), snap(cpu_usage=cpu_b)
    forward, backward = diff_snapshots(a, b).rows, diff_snapshots(b, a).rows
    assert [r.keys for r in forward] == [r.keys for r in backward]
    for f, r in zip(forward, backward):
        assert (f.a, f.b) == (r.b, r.a)
        if f.delta is not None:
            assert r.delta == pytest.approx(-f.delta)


def test_the_analysis_package_imports_no_textual() -> None:
    code = ("import sys, pmon.analysis.snapshot_diff\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

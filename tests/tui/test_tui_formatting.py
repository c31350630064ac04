"""Sparklines and numbers fit narrow cells and read correctly."""

from __future__ import annotations

from pmon.tui import units
from pmon.tui.sparkline_text import BLOCKS, resample, sparkline


def test_sparkline_rises_with_the_values() -> None:
    assert sparkline(list(range(8)), 8) == BLOCKS


def test_sparkline_of_a_flat_series_is_flat_and_low() -> None:
    assert sparkline([5.0] * 60, 6) == BLOCKS[1] * 6


def test_sparkline_of_few_values_is_right_aligned() -> None:
    assert sparkline([1.0, 2.0], 5) == "   " + BLOCKS[0] + BLOCKS[-1]


def test_sparkline_of_nothing_is_blank() -> None:
    assert sparkline([], 4) == "    "


def test_resample_averages_into_buckets() -> None:
    assert resample([1.0, 3.0, 5.0, 7.0], 2) == [2.0, 6.0]


def test_units_fit_narrow_columns() -> None:
    assert units.compact(12345) == "12k"
    assert units.compact(2500) == "2.5k"
    assert units.compact(0.05) == "0.05"
    assert units.fraction_percent(0.08) == "8.0%"
    assert units.fraction_percent(0.25) == "25%"
    assert units.milliseconds(1234) == "1.2s"
    assert units.milliseconds(None) == "-"
    assert units.age(400) == "6m"
    assert units.age(0.2) == "now"

"""``[[alerts]]`` tables: what a user may write, and the one-line error for everything else."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from pmon.analysis.alert_rules import AlertRule, format_duration, parse_duration, parse_rules

EXAMPLE = """
[[alerts]]
name = "cpu_hot"
metric = "cpu_usage"
plugin = "web-*"
comparison = ">"
threshold = 90
for = "5m"
clear = 75
severity = "critical"
description = "web CPU saturated"

[[alerts]]
name = "queue_empty"
metric = "custom.queue_depth"
comparison = "<="
threshold = 0
for = 30
"""


def parse_one(**table: Any) -> AlertRule:
    base: dict[str, Any] = {"name": "r", "metric": "cpu_usage", "comparison": ">", "threshold": 1}
    return parse_rules([{**base, **table}], "pmon.toml")[0]


def error_for(table: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as caught:
        parse_rules([table], "pmon.toml")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_documented_example_parses_with_defaults_filled_in() -> None:
    hot, empty = parse_rules(tomllib.loads(EXAMPLE)["alerts"], "pmon.toml")
    assert hot == AlertRule(name="cpu_hot", metric="cpu_usage", plugin="web-*", comparison=">", threshold=90.0,
                            for_=300.0, clear=75.0, severity="critical", description="web CPU saturated")
    assert (empty.plugin, empty.for_, empty.clear, empty.clear_at, empty.severity) == ("*", 30.0, None, 0.0, "high")


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("name", "has space", "name must be 1-64 characters"),
    ("name", 5, "name must be 1-64 characters"),
    ("metric", "cpu", "metric 'cpu' is not one of cpu_usage"),
    ("metric", "Custom.Depth", "nor a dotted custom metric"),
    ("metric", 3, "metric must be a string"),
    ("plugin", "", "plugin must be a plugin id or a glob"),
    ("plugin", "web server", "plugin must be a plugin id or a glob"),
    ("comparison", "==", "comparison must be one of >, >=, <, <=, got '=='"),
    ("threshold", "90", "threshold must be a finite number, got '90'"),
    ("threshold", True, "threshold must be a finite number"),
    ("threshold", float("nan"), "threshold must be a finite number"),
    ("for", "5", "for must be seconds or a duration such as 90s"),
    ("for", "5 minutes", "for must be seconds or a duration"),
    ("for", -1, "for must be a finite duration of 0 or more"),
    ("for", "31d", "for must be at most 30d"),
    ("clear", "low", "clear must be a finite number"),
    ("severity", "HIGH", "severity must be one of info, low, medium, high, critical"),
    ("description", 7, "description must be a string"),
    ("description", "x" * 501, "description must be at most 500 characters"),
    ("threshhold", 1, "unknown key 'threshhold' (allowed: name, metric, plugin"),
])
def test_each_bad_key_is_one_line_naming_the_table_and_the_key(key: str, value: Any, expected: str) -> None:
    table = {"name": "cpu_hot", "metric": "cpu_usage", "comparison": ">", "threshold": 90, key: value}
    message = error_for(table)
    shown = table["name"] if isinstance(table["name"], str) else "?"
    assert message.startswith(f"pmon.toml: [[alerts]] #1 ({shown}): ")
    assert expected in message


@pytest.mark.parametrize("missing", ["name", "metric", "comparison", "threshold"])
def test_a_missing_required_key_is_named(missing: str) -> None:
    table = {"name": "r", "metric": "cpu_usage", "comparison": ">", "threshold": 1}
    del table[missing]
    assert f"missing required key {missing!r}" in error_for(table)


def test_names_must_be_unique_and_the_error_points_at_the_first_use() -> None:
    table = {"name": "dup", "metric": "cpu_usage", "comparison": ">", "threshold": 1}
    with pytest.raises(ValueError, match=r"\[\[alerts\]\] #2 \(dup\): name 'dup' is already used by \[\[alerts\]\] #1"):
        parse_rules([table, dict(table)], "pmon.toml")


@pytest.mark.parametrize(("comparison", "clear"), [(">", 95), (">=", 90.5), ("<", 5), ("<=", 9)])
def test_clear_on_the_alarm_side_of_the_threshold_is_refused(comparison: str, clear: float) -> None:
    threshold = 90 if comparison.startswith(">") else 10
    message = error_for({"name": "r", "metric": "cpu_usage", "comparison": comparison, "threshold": threshold,
                         "clear": clear})
    assert "clear must be at" in message and "for comparison" in message


@pytest.mark.parametrize(("comparison", "clear"), [(">", 80), (">", 90), ("<", 20), ("<=", 10)])
def test_clear_on_the_resolving_side_or_equal_is_accepted(comparison: str, clear: float) -> None:
    threshold = 90 if comparison.startswith(">") else 10
    assert parse_one(comparison=comparison, threshold=threshold, clear=clear).clear_at == clear


def test_the_array_and_its_items_must_be_tables() -> None:
    with pytest.raises(ValueError, match="alerts must be an array of tables"):
        parse_rules({"name": "x"}, "pmon.toml")
    with pytest.raises(ValueError, match=r"\[\[alerts\]\] #1 \(\?\): must be a table"):
        parse_rules(["cpu_usage > 90"], "pmon.toml")


@pytest.mark.parametrize(("text", "seconds"), [
    (0, 0.0), (90, 90.0), (1.5, 1.5), ("45s", 45.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800.0),
    ("1w", 604800.0), (" 1H ", 3600.0), ("0.5h", 1800.0),
])
def test_durations_are_seconds_or_text_with_units(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5x", "5m5", "1h-", True, None])
def test_durations_without_a_unit_or_with_junk_are_refused(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.5, 45.0, 300.0, 5400.0, 90061.0])
def test_a_formatted_duration_reads_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_plugin_globs_match_like_fnmatch_and_are_case_sensitive() -> None:
    rule = parse_one(plugin="web-[0-9]*")
    assert rule.matches("web-1") and rule.matches("web-22a")
    assert not rule.matches("web-a") and not rule.matches("WEB-1")

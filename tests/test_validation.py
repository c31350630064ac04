"""Bad arguments raise ValueError naming the argument; odd text is stored safely."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlite_rows import rows
from hypothesis import given, settings
from hypothesis import strategies as st

from pmon import LogLevel, MetricType, Monitor, Severity


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda m: m.record_metric("p", "cpu", 1.0), "metric_type"),
        (lambda m: m.record_metric("p", 7, 1.0), "metric_type"),
        (lambda m: m.record_metric("p", "cpu_usage", math.nan), "value"),
        (lambda m: m.record_metric("p", "cpu_usage", math.inf), "value"),
        (lambda m: m.record_metric("p", "cpu_usage", -math.inf), "value"),
        (lambda m: m.record_metric("p", "cpu_usage", "45.2"), "value"),
        (lambda m: m.record_metric("p", "cpu_usage", None), "value"),
        (lambda m: m.record_metric("p", "cpu_usage", True), "value"),
        (lambda m: m.record_metric("", "cpu_usage", 1.0), "plugin_id"),
        (lambda m: m.record_metric("has space", "cpu_usage", 1.0), "plugin_id"),
        (lambda m: m.record_metric("x" * 129, "cpu_usage", 1.0), "plugin_id"),
        (lambda m: m.record_metric("[red]x", "cpu_usage", 1.0), "plugin_id"),
        (lambda m: m.record_metric(None, "cpu_usage", 1.0), "plugin_id"),
        (lambda m: m.record_metric("p", "cpu_usage", 1.0, metadata=["not", "a", "dict"]), "metadata"),
        (lambda m: m.record_metric("p", "cpu_usage", 1.0, timestamp=datetime(2024, 1, 1)), "timestamp"),
        (lambda m: m.record_metric("p", "cpu_usage", 1.0, timestamp=math.nan), "timestamp"),
        (lambda m: m.record_metric("p", "cpu_usage", 1.0, timestamp=-5), "timestamp"),
        (lambda m: m.record_log("p", "verbose", "x"), "level"),
        (lambda m: m.record_log("p", "info", None), "message"),
        (lambda m: m.record_log("p", "info", "x", context="not a dict"), "context"),
        (lambda m: m.record_event("p", "startup", "x", "urgent"), "severity"),
        (lambda m: m.record_event("p", "", "x", "info"), "event_type"),
        (lambda m: m.record_event("p", "startup", "x", "info", data=42), "data"),
        (lambda m: m.create_snapshot("p", {"cpu_usage": "high"}), "snapshot_data['cpu_usage']"),
        (lambda m: m.create_snapshot("p", {"cpus": 1}), "snapshot_data"),
        (lambda m: m.create_snapshot("p", [1, 2]), "snapshot_data"),
        (lambda m: m.add_alert_callback("not callable"), "callback"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_argument(monitor: Monitor, call, argument: str) -> None:
    with pytest.raises(ValueError) as info:
        call(monitor)
    assert str(info.value).startswith(f"{argument}:"), str(info.value)
    assert len(monitor.metrics_cache) == 0 and len(monitor.logs_cache) == 0


def test_error_messages_say_what_is_allowed(monitor: Monitor) -> None:
    with pytest.raises(ValueError, match="cpu_usage, memory_usage, response_time"):
        monitor.record_metric("p", "cpu", 1.0)
    with pytest.raises(ValueError, match="A-Z a-z 0-9 _ . : -"):
        monitor.record_metric("bad id", "cpu_usage", 1.0)
    with pytest.raises(ValueError, match="info, low, medium, high, critical"):
        monitor.record_event("p", "x", "y", "urgent")


def test_circular_metadata_is_a_clear_error(monitor: Monitor) -> None:
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="^context: contains a circular reference"):
        monitor.record_log("p", "info", "x", context=loop)


def test_enum_members_and_string_values_are_interchangeable(monitor: Monitor, db_path: Path) -> None:
    monitor.record_metric("p", MetricType.THROUGHPUT, 1)
    monitor.record_metric("p", "throughput", 2)
    monitor.record_metric("p", "THROUGHPUT", 3)
    monitor.record_log("p", LogLevel.WARNING, "a")
    monitor.record_log("p", "warning", "b")
    monitor.record_event("p", "user_login", "c", Severity.LOW)
    monitor.record_event("p", "user_login", "d", "low")
    assert monitor.flush()
    assert rows(db_path, "SELECT DISTINCT metric_type FROM plugin_metrics") == [("throughput",)]
    assert rows(db_path, "SELECT DISTINCT level FROM plugin_logs") == [("warning",)]
    assert rows(db_path, "SELECT DISTINCT severity, category FROM plugin_events") == [("low", "user")]


def test_values_json_cannot_hold_use_the_documented_fallback(monitor: Monitor, db_path: Path) -> None:
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    monitor.record_log("p", "info", "x", context={"when": when, "ratio": math.nan, "ok": 1})
    assert monitor.flush()
    (context,) = rows(db_path, "SELECT context FROM plugin_logs")[0]
    assert context == '{"when": "datetime.datetime(2024, 5, 1, 0, 0, tzinfo=datetime.timezone.utc)", "ratio": "nan", "ok": 1}'


def test_invalid_utf8_and_lone_surrogates_are_stored_with_replacement_characters(monitor: Monitor, db_path: Path) -> None:
    monitor.record_log("p", "info", b"caf\xc3\xa9 \xff\xfe broken")
    monitor.record_log("p", "error", "lone \ud800 surrogate", traceback="tb \udfff end")
    monitor.record_event("p", "x", "desc \ud83d", "info")
    assert monitor.flush()
    messages = rows(db_path, "SELECT message, traceback FROM plugin_logs ORDER BY id")
    assert messages[0][0] == "café \ufffd\ufffd broken"
    assert messages[1][0].startswith("lone \ufffd") and messages[1][0].endswith(" surrogate")
    assert "\ufffd" in messages[1][1]
    assert "\ufffd" in rows(db_path, "SELECT description FROM plugin_events")[0][0]
    assert monitor.status()["write_errors"] == 0


def test_one_megabyte_message_is_truncated_with_a_visible_marker(monitor: Monitor, db_path: Path) -> None:
    monitor.record_log("p", "error", "é" * 1_000_000, traceback="T" * 1_000_000)
    assert monitor.flush()
    message, traceback = rows(db_path, "SELECT message, traceback FROM plugin_logs")[0]
    assert len(message.encode()) < 65_536 + 100
    assert message.endswith("bytes]") and "[pmon: truncated 1934464 bytes]" in message
    assert "[pmon: truncated 934464 bytes]" in traceback


def test_huge_integers_are_stored_as_floats(monitor: Monitor, db_path: Path) -> None:
    monitor.record_metric("p", "throughput", 2**64)
    monitor.record_metric("p", "throughput", 2**63 - 1)
    monitor.record_metric("p", "throughput", -0.0)
    assert monitor.flush()
    assert [r[0] for r in rows(db_path, "SELECT value FROM plugin_metrics ORDER BY id")] == [2.0**64, float(2**63 - 1), 0.0]


@settings(max_examples=60, deadline=None)
@given(message=st.text(), context_value=st.one_of(st.text(), st.floats(), st.integers()))
def test_any_text_and_context_is_recorded_without_raising(tmp_path_factory, message: str, context_value) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "pmon.db"
    monitor = Monitor(path, flush_interval=0.05)
    monitor.record_log("fuzz", "info", message, context={"v": context_value})
    assert monitor.flush()
    monitor.stop_monitoring()
    assert monitor.status()["write_errors"] == 0
    assert len(rows(path, "SELECT message FROM plugin_logs")) == 1

"""`monitor.track`: a tracked call's time, its plugin's throughput and error rate, and its failures."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from sqlite_rows import rows

from pmon import Monitor


def metrics(db_path: Path, metric: str) -> list[tuple[float, str | None]]:
    return rows(db_path, "SELECT value, metadata FROM plugin_metrics WHERE plugin_id = 'billing' AND metric_type = ? "
                "ORDER BY id", (metric,))


def fail_with(exc: Exception) -> None:
    raise exc


def test_a_decorated_function_records_its_response_time_and_keeps_its_name(monitor: Monitor, db_path: Path) -> None:
    @monitor.track("billing", "charge")
    def charge(amount: int, *, fee: int = 0) -> int:
        """Charge an amount."""
        time.sleep(0.002)
        return amount + fee

    assert charge(10, fee=1) == 11
    assert charge.__name__ == "charge" and charge.__doc__ == "Charge an amount."
    assert monitor.flush()
    [(ms, meta)] = metrics(db_path, "response_time")
    assert ms >= 2.0
    assert json.loads(meta) == {"operation": "charge"}


def test_without_an_operation_no_metadata_is_stored(monitor: Monitor, db_path: Path) -> None:
    monitor.track("billing")(lambda: None)()
    assert monitor.flush()
    assert [meta for _, meta in metrics(db_path, "response_time")] == [None]


def test_an_async_function_is_timed_across_its_awaits(monitor: Monitor, db_path: Path) -> None:
    @monitor.track("billing", "refund")
    async def refund() -> str:
        await asyncio.sleep(0.002)
        return "refunded"

    assert asyncio.run(refund()) == "refunded"
    assert monitor.flush()
    [(ms, meta)] = metrics(db_path, "response_time")
    assert ms >= 2.0 and json.loads(meta) == {"operation": "refund"}


def test_a_failing_call_reraises_the_same_exception_and_records_a_log_and_an_event(
        monitor: Monitor, db_path: Path) -> None:
    original = KeyError("card 42")
    tracked = monitor.track("billing", "charge")(fail_with)
    with pytest.raises(KeyError) as caught:
        tracked(original)
    assert caught.value is original
    frames = []
    tb = caught.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == "fail_with"  # the frame that raised is still at the end of the traceback

    assert monitor.flush()
    [(level, message, context, traceback)] = rows(
        db_path, "SELECT level, message, context, traceback FROM plugin_logs WHERE plugin_id = 'billing'")
    assert (level, message, json.loads(context)) == ("error", "KeyError: 'card 42'", {"operation": "charge"})
    assert "in fail_with" in traceback and traceback.rstrip().endswith("KeyError: 'card 42'")
    [(event_type, description, severity, data)] = rows(
        db_path, "SELECT event_type, description, severity, data FROM plugin_events WHERE plugin_id = 'billing'")
    assert (event_type, description, severity) == ("error", "KeyError: 'card 42'", "medium")
    assert json.loads(data) == {"operation": "charge"}
    assert len(metrics(db_path, "response_time")) == 1  # a failed call is timed too


def test_a_failing_async_call_reraises_the_same_exception(monitor: Monitor, db_path: Path) -> None:
    original = TimeoutError("gateway")

    @monitor.track("billing")
    async def charge() -> None:
        await asyncio.sleep(0)
        raise original

    with pytest.raises(TimeoutError) as caught:
        asyncio.run(charge())
    assert caught.value is original
    assert monitor.flush()
    assert rows(db_path, "SELECT message FROM plugin_logs") == [("TimeoutError: gateway",)]
    assert rows(db_path, "SELECT description FROM plugin_events") == [("TimeoutError: gateway",)]


def test_a_with_block_is_tracked_and_its_exception_propagates(monitor: Monitor, db_path: Path) -> None:
    with monitor.track("billing", "charge"):
        time.sleep(0.002)
    original = ValueError("bad amount")
    with pytest.raises(ValueError) as caught, monitor.track("billing", "charge"):
        raise original
    assert caught.value is original
    assert monitor.flush()
    times = metrics(db_path, "response_time")
    assert len(times) == 2 and times[0][0] >= 2.0
    assert rows(db_path, "SELECT message FROM plugin_logs") == [("ValueError: bad amount",)]


def test_nested_and_async_with_blocks_each_time_their_own_span(monitor: Monitor, db_path: Path) -> None:
    tracker = monitor.track("billing", "outer")
    with tracker:
        with tracker:
            pass
        time.sleep(0.003)

    async def main() -> None:
        async with monitor.track("billing", "async"):
            await asyncio.sleep(0.002)

    asyncio.run(main())
    assert monitor.flush()
    inner, outer, in_task = (ms for ms, _ in metrics(db_path, "response_time"))
    assert inner < outer and outer >= 3.0 and in_task >= 2.0


def test_throughput_and_error_rate_are_recorded_once_an_interval_has_passed(db_path: Path) -> None:
    monitor = Monitor(db_path, flush_interval=0.05)  # never started: the rates come from the calls themselves
    ok = monitor.track("billing", "charge")(lambda: None)
    failing = monitor.track("billing", "refund")(fail_with)
    for _ in range(3):
        ok()
    with pytest.raises(RuntimeError):
        failing(RuntimeError("declined"))
    time.sleep(0.06)
    ok()  # the first call after the interval closes the window
    assert monitor.flush()
    throughputs, error_rates = metrics(db_path, "throughput"), metrics(db_path, "error_rate")
    assert len(throughputs) == len(error_rates) >= 1
    assert all(value > 0 for value, _ in throughputs)
    assert any(0 < value <= 1 for value, _ in error_rates)  # one failure among the calls of some window
    monitor.stop_monitoring()


def test_stop_records_the_open_window(db_path: Path) -> None:
    monitor = Monitor(db_path, flush_interval=3600)
    tracked = monitor.track("billing")(lambda: None)
    tracked()
    tracked()
    with pytest.raises(OSError):
        monitor.track("billing", "upload")(fail_with)(OSError("disk full"))
    monitor.stop_monitoring()
    assert len(metrics(db_path, "throughput")) == 1
    [(error_rate, _)] = metrics(db_path, "error_rate")
    assert error_rate == pytest.approx(1 / 3)


@pytest.mark.parametrize("plugin_id", ["", "has space", "x" * 129, None, 42])
def test_a_bad_plugin_id_is_refused_when_tracking_is_set_up(monitor: Monitor, plugin_id: object) -> None:
    with pytest.raises(ValueError, match="plugin_id"):
        monitor.track(plugin_id)  # type: ignore[arg-type]


def test_a_bad_operation_is_refused(monitor: Monitor) -> None:
    with pytest.raises(ValueError, match="operation"):
        monitor.track("billing", "")


def test_a_generator_function_is_refused(monitor: Monitor) -> None:
    def rows_of() -> object:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        monitor.track("billing")(rows_of)

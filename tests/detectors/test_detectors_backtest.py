"""The backtest replays what a Monitor recorded (backfilled with timestamp=) and agrees with the live engine."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from detector_streams import Stream, down_stream, error_burst_stream, leak_stream

from pmon import Monitor
from pmon.analysis.detectors import DetectorEngine, DetectorSettings, Finding, backtest, episodes
from pmon.store.schema import open_reader

TICK = 60.0


def _stored(ts: float) -> float:
    """A timestamp as the store gives it back (whole milliseconds)."""
    return int(ts * 1000) / 1000


def _record(path: Path, streams: list[Stream]) -> None:
    monitor = Monitor(path, flush_interval=0.05)
    try:
        for stream in streams:
            for metric, points in stream.series.items():
                for ts, value in points:
                    monitor.record_metric(stream.plugin_id, metric, value, timestamp=ts)
            for ts, kind in stream.events:
                monitor.record_event(stream.plugin_id, kind, f"{kind} (synthetic)", "high", timestamp=ts)
        assert monitor.flush()
    finally:
        monitor.stop_monitoring()


def _live(streams: list[Stream], settings: DetectorSettings) -> list[Finding]:
    """What a daemon feeding the engine every minute would emit: each tick's events, then each series' points."""
    engine = DetectorEngine(settings)
    start = min(points[0][0] for s in streams for points in s.series.values())
    end = max(points[-1][0] for s in streams for points in s.series.values())
    found: list[Finding] = []
    tick = start
    while tick <= end:
        for stream in streams:
            for ts, kind in stream.events:
                if tick <= ts < tick + TICK:
                    found += engine.feed_event(stream.plugin_id, kind, ts)
        for stream in streams:
            for metric, points in stream.series.items():
                chunk = [(_stored(ts), v) for ts, v in points if tick <= _stored(ts) < tick + TICK]
                found += engine.feed_points(stream.plugin_id, metric, chunk)
        tick += TICK
    return found


def test_backtest_of_backfilled_history_finds_the_leak_the_error_burst_and_the_down_period(tmp_path: Path) -> None:
    streams = [leak_stream(0, 200), error_burst_stream(300), down_stream(400)]
    path = tmp_path / "pmon.db"
    _record(path, streams)
    conn = open_reader(path)
    try:
        found = backtest(conn, DetectorSettings())
        only_leak = backtest(conn, DetectorSettings(), plugin_id=streams[0].plugin_id)
    finally:
        conn.close()
    kinds = {(f.detector, f.plugin_id) for f in found}
    assert ("leak", streams[0].plugin_id) in kinds
    assert ("error_spike", streams[1].plugin_id) in kinds
    assert ("down", streams[2].plugin_id) in kinds
    down = next(f for f in found if f.detector == "down")
    assert (down.start, down.end) == (streams[2].events[0][0], streams[2].events[1][0])
    assert {f.plugin_id for f in only_leak} == {streams[0].plugin_id}
    leak = next(f for f in found if f.detector == "leak")
    assert leak.evidence["slope_per_hour"] > 100
    assert "MiB/h" in leak.summary


def test_the_live_engine_fed_tick_by_tick_and_the_backtest_agree(tmp_path: Path) -> None:
    streams = [leak_stream(1, 60), error_burst_stream(301), down_stream(401)]
    path = tmp_path / "pmon.db"
    _record(path, streams)
    settings = DetectorSettings()
    conn = open_reader(path)
    try:
        replayed = backtest(conn, settings)
    finally:
        conn.close()
    live = episodes(_live(streams, settings))
    assert live == replayed
    assert {f.detector for f in live} >= {"leak", "error_spike", "down"}


def test_since_and_until_bound_the_replay(tmp_path: Path) -> None:
    stream = down_stream(402)
    path = tmp_path / "pmon.db"
    _record(path, [stream])
    stopped, started = (ts for ts, _ in stream.events)
    conn = open_reader(path)
    try:
        before = backtest(conn, DetectorSettings(), until=stopped)
        during = backtest(conn, DetectorSettings(), since=stopped - 1, until=started)
    finally:
        conn.close()
    assert [f for f in before if f.detector == "down"] == []
    assert [(f.detector, f.end) for f in during if f.detector == "down"] == [("down", None)]


def test_a_backtest_records_nothing(tmp_path: Path) -> None:
    path = tmp_path / "pmon.db"
    _record(path, [down_stream(403)])
    count = "SELECT count(*) FROM plugin_events"
    before = sqlite3.connect(path).execute(count).fetchone()[0]
    conn = open_reader(path)
    try:
        assert backtest(conn)
    finally:
        conn.close()
    assert sqlite3.connect(path).execute(count).fetchone()[0] == before


def test_the_detectors_import_neither_textual_nor_rich() -> None:
    code = ("import sys, pmon.analysis.detectors, pmon.analysis.detectors.detector_bench; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""The console's data layer reads the store without Textual and classifies plugins by age."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tui_helpers import NOW

from pmon.store.schema import StoreError
from pmon.tui.reader import ConsoleReader, LogQuery, percentile


def test_reader_imports_no_textual() -> None:
    code = "import sys, pmon.tui.reader\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_status_is_active_idle_or_down_by_age(store: Path) -> None:
    reading = ConsoleReader(store).read(NOW, LogQuery())
    assert {r.plugin_id: r.status for r in reading.overview.rows} == {"alpha": "active", "beta": "idle",
                                                                       "gamma": "down"}


def test_overview_has_sparkline_samples_p95_and_totals(store: Path) -> None:
    overview = ConsoleReader(store).read(NOW, LogQuery()).overview
    alpha = next(r for r in overview.rows if r.plugin_id == "alpha")
    assert len(alpha.cpu) == 60 and len(alpha.memory) == 60
    assert alpha.p95_response_ms == 96  # nearest rank 57 of the 60 response times 40..99
    assert alpha.throughput == 50.0 and alpha.error_rate == 0.01
    assert alpha.last_event is not None and alpha.last_event.event_type == "startup"
    assert overview.error_logs_last_minute == 1
    assert overview.serious_events_last_hour == 2  # the crash, and the critical memory alert


def test_logs_tail_after_the_last_id(store: Path) -> None:
    reader = ConsoleReader(store)
    first = reader.read(NOW, LogQuery()).logs
    assert [log.message for log in first.logs] == ["handled 52 requests", "health check ok",
                                                "slow query took 900 ms\nsecond line", "PaymentDeclined: gateway timeout"]
    last_id = first.logs[-1].id
    assert reader.read(NOW, LogQuery(after_id=last_id)).logs.logs == ()


def test_missing_database_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="nothing-here.db"):
        ConsoleReader(tmp_path / "nothing-here.db").read(NOW, LogQuery())


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile(list(range(1, 101)), 0.95) == 95


def _values(conn, plugin: str, metric: str, since: float = 0.0) -> list[float]:  # type: ignore[no-untyped-def]
    """The plain answer, oldest first, from the original design's view."""
    return [v for (v,) in conn.execute(
        "SELECT value FROM plugin_metrics WHERE plugin_id = ? AND metric_type = ? AND timestamp >= ? "
        "ORDER BY timestamp", (plugin, metric, since))]


def test_the_one_statement_reads_match_the_per_plugin_answers(store: Path) -> None:
    from pmon.store import console_queries, queries
    from pmon.store.schema import open_reader

    conn = open_reader(store)
    plugins = ["alpha", "beta", "gamma", "nobody"]
    keys = [(p, m) for p in plugins for m in ("cpu_usage", "memory_usage", "disk_io")]
    recent = console_queries.recent_values_for(conn, keys, 7)
    last = console_queries.last_events_for(conn, plugins)
    for plugin, metric in keys:
        expected = _values(conn, plugin, metric)[-7:]
        assert recent.get((plugin, metric), []) == expected
    for plugin in plugins:
        newest = queries.events(conn, plugin_id=plugin, limit=1)
        assert last.get(plugin) == (newest[0] if newest else None)
    assert set(last) == {"alpha", "beta", "gamma"}
    conn.close()


def test_percentiles_ranked_in_sqlite_match_the_nearest_rank(tmp_path: Path) -> None:
    from pmon import Monitor
    from pmon.store import console_queries
    from pmon.store.schema import open_reader

    path = tmp_path / "ranks.db"
    monitor = Monitor(path, flush_interval=0.05)
    for n, count in enumerate((1, 2, 19, 20, 21, 613)):
        for i in range(count):
            monitor.record_metric(f"p{n}", "response_time", ((i * 7919) % 613) / 3, timestamp=NOW - 100 + i * 0.1)
    monitor.flush()
    monitor.stop_monitoring()
    conn = open_reader(path)
    keys = [(f"p{n}", "response_time") for n in range(6)] + [("nobody", "response_time")]
    for fraction in (0.5, 0.95, 1.0):
        ranked = console_queries.percentile_since_for(conn, keys, NOW - 200, fraction)
        for plugin, metric in keys[:-1]:
            values = _values(conn, plugin, metric, NOW - 200)
            assert ranked[(plugin, metric)] == percentile(values, fraction)
        assert ("nobody", "response_time") not in ranked
    conn.close()


def test_sparkline_values_come_back_exactly(tmp_path: Path) -> None:
    from pmon import Monitor
    from pmon.store import console_queries
    from pmon.store.schema import open_reader

    awkward = [0.1 + 0.2, 1 / 3, 1e-300, 123456789.123456789, -0.0, 2.0**53 + 2, 5e-324, 1e308]
    monitor = Monitor(tmp_path / "exact.db", flush_interval=0.05)
    for i, value in enumerate(awkward):
        monitor.record_metric("p", "cpu_usage", value, timestamp=NOW - 100 + i)
    monitor.flush()
    monitor.stop_monitoring()
    conn = open_reader(tmp_path / "exact.db")
    assert console_queries.recent_values_for(conn, [("p", "cpu_usage")], 60)[("p", "cpu_usage")] == awkward
    conn.close()

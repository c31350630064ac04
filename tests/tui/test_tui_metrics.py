"""The Metrics tab: a chart of one plugin's metric over a range, with its statistics, driven from the keyboard."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from textual.widgets import TabbedContent
from tui_helpers import NOW, frozen_clock, screen_text, wait_until

from pmon import Monitor
from pmon.store import metric_queries, queries
from pmon.store.schema import open_reader
from pmon.tui.app import PmonApp
from pmon.tui.metrics_data import EXACT_P95_LIMIT, RANGES, MetricsQuery
from pmon.tui.reader import percentile
from pmon.tui.screens.help_screen import HelpScreen
from pmon.tui.screens.plugin_screen import PluginScreen
from pmon.tui.tabs.metrics_tab import MetricsTab, RangeScreen
from pmon.tui.widgets.metric_chart import MetricChart, time_ticks

# Every fixture plugin records 60 values per metric: CPU 10..37 (each of
# ten values six times), memory 200..259, response time 40..99 ms.
ALPHA_CPU = "min 10.0%  avg 23.5%  p95 37.0%  max 37.0%"
ALPHA_MEMORY = "min 200MB  avg 230MB  p95 256MB  max 259MB"
ALPHA_RESPONSE = "min 40.0ms  avg 69.5ms  p95 96.0ms  max 99.0ms"


def console(path: Path) -> PmonApp:
    return PmonApp(path, clock=frozen_clock, refresh_interval=0.2)


def record_cpu(path: Path, plugin_id: str, values: list[float], every: float = 1.0) -> None:
    """Record ``values`` as CPU usage, one ``every`` seconds, the last at NOW - 1."""
    monitor = Monitor(path, flush_interval=0.05)
    try:
        for i, value in enumerate(values):
            monitor.record_metric(plugin_id, "cpu_usage", value, timestamp=NOW - 1 - (len(values) - 1 - i) * every)
        monitor.flush()
    finally:
        monitor.stop_monitoring()


def shown(tab: MetricsTab) -> bool:
    """The tab shows the answer to its current choices."""
    return tab.reading is not None and tab.reading.query.generation == tab.generation


async def open_metrics(pilot, app: PmonApp) -> MetricsTab:  # type: ignore[no-untyped-def]
    await wait_until(pilot, lambda: app.overview_tab.table.row_count > 0)
    await pilot.press("2")
    tab = app.query_one(MetricsTab)
    await wait_until(pilot, lambda: shown(tab))
    return tab


# -- the data layer, without Textual ------------------------------------------------


def test_metrics_data_imports_no_textual() -> None:
    code = ("import sys, pmon.tui.metrics_data\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'plotext', 'textual_plotext')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_reading_has_exact_statistics_from_the_buckets(store: Path) -> None:
    reading = MetricsQuery().read(open_reader(store), NOW)
    assert (reading.plugin_id, reading.metric_type) == ("alpha", "cpu_usage")  # nothing chosen: the first
    assert [p.plugin_id for p in reading.plugins] == ["alpha", "beta", "gamma"]
    assert reading.plugins[0].metric_types == ("cpu_usage", "memory_usage", "response_time", "error_rate",
                                               "throughput")
    assert reading.until - reading.since == 3600 and reading.since < NOW - 3500 and reading.until > NOW
    assert sum(p.count for p in reading.points) == 60
    stats = reading.stats
    assert stats is not None
    assert (stats.count, stats.min, stats.avg, stats.max, stats.p95, stats.p95_exact) == (60, 10, 23.5, 37, 37, True)
    assert reading.points == tuple(queries.series(open_reader(store), "alpha", "cpu_usage", reading.since,
                                                  reading.until, 120))


def test_a_plugin_that_is_gone_or_lacks_the_metric_falls_back_to_the_first(store: Path) -> None:
    conn = open_reader(store)
    reading = MetricsQuery(plugin_id="no-such-plugin", metric_type="network_io").read(conn, NOW)
    assert (reading.plugin_id, reading.metric_type) == ("alpha", "cpu_usage")
    reading = MetricsQuery(plugin_id="beta", metric_type="response_time").read(conn, NOW)
    assert (reading.plugin_id, reading.metric_type) == ("beta", "response_time")
    assert reading.stats is not None and reading.stats.p95 == 96


def test_a_range_without_values_has_no_statistics(store: Path) -> None:
    reading = MetricsQuery(plugin_id="gamma", time_range=RANGES[0]).read(open_reader(store), NOW)  # 5m; gamma: 10m ago
    assert reading.points == () and reading.stats is None
    assert reading.plugin is not None and reading.plugin.last_seen == NOW - 600


def test_p95_is_exact_up_to_the_limit_and_from_an_even_sample_beyond(tmp_path: Path) -> None:
    path = tmp_path / "p95.db"
    record_cpu(path, "ranked", [float(v) for v in range(1, 2001)], every=0.5)  # 1..2000, rising over 1000 s
    conn = open_reader(path)
    exact = MetricsQuery().read(conn, NOW).stats
    assert exact is not None and exact.count == 2000
    assert (exact.p95, exact.p95_exact, exact.p95_count) == (1900, True, 2000)
    approx = MetricsQuery(exact_limit=400).read(conn, NOW).stats
    assert approx is not None and not approx.p95_exact and approx.p95 is not None
    assert 300 <= approx.p95_count <= 500  # about a fifth of the values...
    assert abs(approx.p95 - 1900) <= 40  # ...spread over the whole range
    assert (approx.count, approx.min, approx.avg, approx.max) == (exact.count, exact.min, exact.avg, exact.max)
    assert EXACT_P95_LIMIT == 100_000


def test_series_buckets_match_a_plain_group_by(store: Path) -> None:
    conn = open_reader(store)
    for plugin_id, metric_type in (("alpha", "cpu_usage"), ("gamma", "response_time"), ("beta", "disk_io")):
        for since, until, points in ((NOW - 3600, NOW, 120), (NOW - 300, NOW + 2.5, 120), (NOW - 1000, NOW, 7)):
            start, end = int(since * 1000), int(until * 1000)
            width = max(1, -(-(end - start) // points))
            expected = [
                (bucket, avg, low, high, count) for bucket, avg, low, high, count in conn.execute(
                    "SELECT (p.ts_ms - ?1) / ?2 AS bucket, avg(value), min(value), max(value), count(*) "
                    "FROM metric_points p JOIN metric_series s ON s.id = p.series_id "
                    "WHERE s.plugin_id = ?3 AND s.metric_type = ?4 AND ts_ms >= ?1 AND ts_ms < ?5 "
                    "GROUP BY bucket ORDER BY bucket", (start, width, plugin_id, metric_type, end))
            ]
            found = queries.series(conn, plugin_id, metric_type, since, until, points)
            assert [(round((p.timestamp * 1000 - start) / width), p.avg, p.min, p.max, p.count) for p in found] \
                == expected


def test_store_percentiles_match_the_nearest_rank(tmp_path: Path) -> None:
    path = tmp_path / "ranks.db"
    values = [((i * 7919) % 613) / 3 for i in range(613)]
    record_cpu(path, "mixed", values)
    conn = open_reader(path)
    for fraction in (0.5, 0.95, 0.99, 1.0):
        found = metric_queries.percentile(conn, "mixed", "cpu_usage", NOW - 1000, NOW + 1, fraction)
        assert found is not None and found.exact and found.count == 613
        assert found.value == percentile(values, fraction)
    sample = metric_queries.percentile(conn, "mixed", "cpu_usage", NOW - 1000, NOW + 1, 0.5, keep=0.5)
    assert sample is not None and not sample.exact and 250 <= sample.count <= 360
    assert metric_queries.percentile(conn, "mixed", "cpu_usage", NOW + 10, NOW + 20, 0.95) is None
    assert metric_queries.percentile(conn, "nobody", "cpu_usage", NOW - 1000, NOW + 1, 0.95) is None


def test_time_labels_are_local_clock_times_or_dates() -> None:
    hour = time_ticks(NOW - 3600, NOW, 4)  # NOW is 22:13:20 UTC
    assert [label for _, label in hour] == ["21:15", "21:30", "21:45", "22:00"]
    week = time_ticks(NOW - 7 * 86400, NOW, 8)
    assert [label for _, label in week] == ["Nov 08", "Nov 09", "Nov 10", "Nov 11", "Nov 12", "Nov 13", "Nov 14"]
    month = time_ticks(NOW - 30 * 86400, NOW, 5)
    assert len(month) <= 5 and all(label.startswith(("Oct", "Nov")) for _, label in month)


# -- the tab, driven by keys ------------------------------------------------------


async def test_key_2_shows_a_chart_of_the_first_plugins_cpu(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        assert app.query_one(TabbedContent).active == "metrics"
        chart = app.query_one(MetricChart)
        assert chart.plot is not None and chart.has_class("-plotted")
        text = screen_text(app)
        assert "alpha · CPU (%) · last hour" in text
        assert f"{ALPHA_CPU}  60 values" in text
        assert "21:30" in text and "22:00" in text  # the time axis, in (UTC) local time
        assert any("\u2800" <= char <= "\u28ff" for char in text)  # the braille line
        assert tab.query_one("#metrics-plugins").has_focus


async def test_m_and_shift_m_step_through_the_metric_types(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        await pilot.press("m")
        await wait_until(pilot, lambda: shown(tab))
        assert "alpha · memory (MB)" in screen_text(app) and ALPHA_MEMORY in screen_text(app)
        await pilot.press("m")
        await wait_until(pilot, lambda: shown(tab))
        assert ALPHA_RESPONSE in screen_text(app)
        await pilot.press("M", "M")
        await wait_until(pilot, lambda: shown(tab))
        assert tab.metric_type == "cpu_usage" and ALPHA_CPU in screen_text(app)
        await pilot.press("M")  # wraps to the last
        await wait_until(pilot, lambda: shown(tab))
        assert "alpha · throughput (/s)" in screen_text(app)
        assert "min 50.0/s" in screen_text(app)


async def test_error_rate_is_shown_as_a_percentage(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        await pilot.press("m", "m", "m")
        await wait_until(pilot, lambda: shown(tab) and tab.metric_type == "error_rate")
        assert "min 1.0%  avg 1.0%  p95 1.0%  max 1.0%" in screen_text(app)


async def test_arrows_choose_the_plugin_and_keep_the_metric_type(store: Path) -> None:
    record_cpu(store, "delta", [float(v) for v in range(1, 101)])
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        await pilot.press("down", "down")  # alpha, beta, delta
        await wait_until(pilot, lambda: shown(tab) and tab.plugin_id == "delta")
        text = screen_text(app)
        assert "delta · CPU (%) · last hour" in text
        assert "min 1.0%  avg 50.5%  p95 95.0%  max 100.0%" in text
        await pilot.press("m")  # delta records only CPU
        await pilot.pause()
        assert tab.metric_type == "cpu_usage"
        await pilot.press("up", "m")
        await wait_until(pilot, lambda: shown(tab) and tab.plugin_id == "beta")
        await wait_until(pilot, lambda: shown(tab) and tab.metric_type == "memory_usage")
        assert "beta · memory (MB)" in screen_text(app)


async def test_t_cycles_the_ranges_and_wraps(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        await pilot.press("up", "up")  # stays on alpha
        seen = []
        for _ in RANGES:
            await pilot.press("t")
            await wait_until(pilot, lambda: shown(tab))
            assert tab.reading is not None
            seen.append(tab.reading.query.time_range.label)
            assert tab.reading.until - tab.reading.since == tab.reading.query.time_range.seconds
            assert ALPHA_CPU in screen_text(app)  # every range holds alpha's two minutes
        assert seen == ["6h", "24h", "7d", "30d", "5m", "15m", "1h"]
        assert "alpha · CPU (%) · last hour" in screen_text(app)


async def test_a_range_without_values_says_so_and_a_longer_one_shows_them(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        await pilot.press("down", "down")  # gamma: last recorded 10 minutes ago
        for _ in range(5):  # 1h → 6h → 24h → 7d → 30d → 5m
            await pilot.press("t")
        await wait_until(pilot, lambda: shown(tab) and tab.plugin_id == "gamma")
        text = screen_text(app)
        assert "No CPU values in the last 5 minutes." in text
        assert "10m since gamma last recorded anything" in text
        assert not app.query_one(MetricChart).has_class("-plotted")
        await pilot.press("t")
        await wait_until(pilot, lambda: shown(tab))
        assert ALPHA_CPU in screen_text(app)


async def test_shift_t_chooses_the_range_from_a_list(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        await pilot.press("T")
        assert isinstance(app.screen, RangeScreen)
        assert "last 30 days" in screen_text(app)
        await pilot.press("down", "down", "down", "enter")  # 1h is highlighted: 6h, 24h, 7d
        assert not isinstance(app.screen, RangeScreen)
        await wait_until(pilot, lambda: shown(tab))
        assert "alpha · CPU (%) · last 7 days" in screen_text(app)
        assert "Nov 14" in screen_text(app)  # a week is labelled by dates
        await pilot.press("T", "up", "escape")
        assert RANGES[tab.range_index].label == "7d"


async def test_enter_opens_the_plugin_screen(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        await pilot.press("down")
        await wait_until(pilot, lambda: shown(tab) and tab.plugin_id == "beta")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginScreen))
        assert app.screen.plugin_id == "beta"
        await pilot.press("escape")
        assert app.query_one(TabbedContent).active == "metrics"


async def test_select_plugin_shows_that_plugins_metrics(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        tab.select_plugin("gamma")
        await wait_until(pilot, lambda: shown(tab) and tab.plugin_id == "gamma")
        assert "gamma · CPU (%) · last hour" in screen_text(app)
        assert ALPHA_CPU in screen_text(app)  # gamma's two minutes are within the hour


async def test_answers_to_an_older_choice_are_dropped(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await open_metrics(pilot, app)
        old = MetricsQuery(tab.generation, "gamma", "memory_usage").read(open_reader(store), NOW)
        await pilot.press("m")
        await wait_until(pilot, lambda: shown(tab))
        shown_before = tab.reading
        tab.show_panel(old)
        await pilot.pause()
        assert tab.reading is shown_before and tab.plugin_id == "alpha"
        assert "gamma" not in screen_text(app).split("\n")[3]  # the title line


async def test_question_mark_lists_the_metrics_keys(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_metrics(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for description in ("Next time range", "Choose the time range from a list", "Next metric type",
                            "Previous metric type"):
            assert description in text


async def test_the_stats_stand_beside_the_chart_on_a_wide_terminal(store: Path) -> None:
    app = console(store)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_metrics(pilot, app)
        lines = screen_text(app).split("\n")
        assert any(line.rstrip().endswith("min       10.0%") for line in lines)
        assert any(line.rstrip().endswith("p95       37.0%") for line in lines)


async def test_a_plugin_id_with_markup_and_escapes_is_shown_literally(store: Path) -> None:
    hostile = "[@click=app.quit]x[/] \x1b[31mred\x07"
    record_cpu(store, "renamed", [5.0, 6.0])
    with sqlite3.connect(store) as conn:  # written by something other than Monitor, which refuses such ids
        conn.execute("UPDATE plugins SET id = ? WHERE id = 'renamed'", (hostile,))
        conn.execute("UPDATE metric_series SET plugin_id = ? WHERE plugin_id = 'renamed'", (hostile,))
    conn.close()
    app = console(store)
    async with app.run_test(size=(100, 30)) as pilot:
        tab = await open_metrics(pilot, app)
        assert tab.plugin_id == hostile  # "[" sorts before lowercase letters
        text = screen_text(app)
        literal = "[@click=app.quit]x[/] \\x1b[31mred\\x07"
        assert f"{literal} · CPU (%)" in text
        assert "min 5.0%" in text
        for control in ("\x1b", "\x07"):
            assert control not in text
        await pilot.click("#metrics-title")
        await pilot.press("down", "up")
        await wait_until(pilot, lambda: shown(tab) and tab.plugin_id == hostile)
        assert app.is_running and app.return_code is None


async def test_the_chart_still_draws_without_colour(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = console(store)
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await open_metrics(pilot, app)
        text = screen_text(app)
        assert ALPHA_CPU in text and "22:00" in text
        assert any("\u2800" <= char <= "\u28ff" for char in text)


def test_plotext_is_imported_only_when_the_metrics_tab_is_shown(store: Path) -> None:
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        from pathlib import Path
        from pmon.tui.app import PmonApp
        from pmon.tui.tabs.metrics_tab import MetricsTab

        def plotext_loaded():
            return sorted(m for m in sys.modules if m.split('.')[0] in ('plotext', 'textual_plotext'))

        async def main():
            report = {{"after_import": plotext_loaded()}}
            app = PmonApp(Path({str(store)!r}), clock=lambda: {NOW!r}, refresh_interval=0.2)
            async with app.run_test(size=(80, 24)) as pilot:
                while app.overview_tab.table.row_count == 0:
                    await pilot.pause(0.05)
                await pilot.pause(0.5)  # a few refreshes on the Overview tab
                report["on_overview"] = plotext_loaded()
                await pilot.press("2")
                tab = app.query_one(MetricsTab)
                while tab.reading is None:
                    await pilot.pause(0.05)
                report["on_metrics"] = plotext_loaded()
            print(json.dumps(report))

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["after_import"] == [] and report["on_overview"] == []
    assert "plotext" in report["on_metrics"] and "textual_plotext" in report["on_metrics"]



def test_custom_metrics_get_the_unit_their_name_implies() -> None:
    from pmon.tui.metrics_data import metric_kind

    assert metric_kind("process.disk_read_bytes_per_s").format(2500) == "2.5kB/s"
    assert metric_kind("pmon.flush_ms").unit == "ms" and metric_kind("pmon.db_size_bytes").unit == "B"
    assert metric_kind("process.ctx_switches_per_s").unit == "/s"
    assert metric_kind("process.threads").unit == "" and metric_kind("process.threads").name == "process.threads"
    assert metric_kind("disk_io").unit == "B/s"

"""Figures for retention and rollups (`pmon bench --retention`): lock holds, recorders' throughput, long charts.

On a generated store of ``rows`` metric points, the oldest ``prune_rows`` of
them older than the 30-day retention, a pruning pass runs while another
process records through ``pmon.store.writer.Writer`` as fast as it can. The
recorder's throughput is measured from the rows it got committed (ids in the
file) during the pass, and during windows as long without pruning just
before and after it, in the same run, so the ratio holds on a noisy host.
The 30-day chart is timed through ``queries.series`` as the console asks for
it, from the rollups and, on the same store, from the raw points.
"""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pmon.config import RetentionConfig
from pmon.store import queries
from pmon.store.retention import MB, Pruner, used_bytes
from pmon.store.rollups import WriteSteps, roll_up
from pmon.store.schema import open_reader, open_writer

DAY = 86400.0
SERIES_PER_PLUGIN = 7
PLUGINS = 5
"""35 series: 10 M points over 33 days is a point every ~10 s a series, a common recording interval."""
RETENTION_DAYS = 30.0
IDLE_WINDOW_S = 10.0
"""How long the recorder's throughput is measured without pruning, just before and just after the pass."""


def generate_aged_store(path: Path, rows: int, old_rows: int, now: float, plugins: int = PLUGINS) -> None:
    """``rows`` points over ``plugins`` x 7 series, evenly spaced, the oldest ``old_rows`` older than 30 days;
    and a log line for every 100 points over the same span (a tenth of them old, too)."""
    conn = open_writer(path)
    metrics = ("cpu_usage", "memory_usage", "response_time", "error_rate", "throughput", "disk_io", "network_io")
    conn.execute("BEGIN IMMEDIATE")
    series_ids = []
    for p in range(plugins):
        plugin = f"plugin_{p:03d}"
        for metric in metrics[:SERIES_PER_PLUGIN]:
            series_ids.append(conn.execute("INSERT INTO metric_series (plugin_id, metric_type) VALUES (?, ?)",
                                           (plugin, metric)).lastrowid)
        conn.execute("INSERT INTO plugins (id, first_seen, last_seen) VALUES (?, ?, ?)", (plugin, now - 40 * DAY, now))
    conn.execute("COMMIT")
    # Recent rows start an hour after the cutoff, so a pass within the hour deletes exactly the old ones.
    gap = 3600.0
    step = (RETENTION_DAYS * DAY - gap) / max(1, rows - old_rows)  # seconds between rows (of any series)
    first = now - RETENTION_DAYS * DAY - old_rows * step
    rng = random.Random(4)
    n_series = len(series_ids)

    def at(i: int) -> float:
        return first + i * step + (gap if i >= old_rows else 0.0)

    def points(lo: int, hi: int) -> Iterator[tuple[int, int, float]]:
        for i in range(lo, hi):
            yield series_ids[i % n_series], int(at(i) * 1000), rng.random() * 100

    chunk = 200_000
    for lo in range(0, rows, chunk):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO metric_points (series_id, ts_ms, value) VALUES (?, ?, ?)",
                         points(lo, min(rows, lo + chunk)))
        conn.execute("COMMIT")
    logs = rows // 100
    for lo in range(0, logs, chunk):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO plugin_logs (plugin_id, level, message, timestamp) VALUES (?, 'info', ?, ?)",
                         ((f"plugin_{i % plugins:03d}", f"message {i}", at(i * 100))
                          for i in range(lo, min(logs, lo + chunk))))
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()


def _record_at_full_speed(path: str, stop: Any, ready: Any) -> None:
    """A child process: keep a ``Writer``'s queue full of fresh points until ``stop`` is set."""
    from pmon.store.writer import Writer

    writer = Writer(path)
    writer.start()
    ready.set()
    count = 0
    while not stop.is_set():
        if len(writer.queue) > 2 * writer.batch_size:
            time.sleep(0.002)
            continue
        now = time.time()
        writer.queue.extend(("m", f"recorder_{k % 10}", "cpu_usage", float(k % 100), now, None)
                            for k in range(count, count + 1000))
        count += 1000
    writer.queue.clear()
    writer.stop(timeout=30)


def _top_id(path: Path) -> int:
    conn = open_reader(path)
    try:
        return conn.execute("SELECT max(id) FROM metric_points").fetchone()[0] or 0
    finally:
        conn.close()


def _committed_per_second(path: Path, during: Callable[[], Any]) -> tuple[float, Any]:
    """Rows the recorder got committed per second while ``during`` ran, and what it returned."""
    before, started = _top_id(path), time.perf_counter()
    result = during()
    return (_top_id(path) - before) / (time.perf_counter() - started), result


def _median_ms(fn: Callable[[int], Any], repeats: int) -> float:
    samples = []
    for r in range(repeats):
        started = time.perf_counter()
        fn(r)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _series_times(path: Path, now: float, repeats: int) -> tuple[float, float, int]:
    """Median ms of a 30-day, 120-bucket chart from the rollups and from the raw points; the points it drew."""
    conn = open_reader(path)
    names = conn.execute("SELECT plugin_id, metric_type FROM metric_series WHERE plugin_id LIKE 'plugin_%' "
                         "ORDER BY id").fetchall()
    width = RETENTION_DAYS * DAY / 120
    until = (now // width + 1) * width  # bucket edges as the console sets them
    since = until - RETENTION_DAYS * DAY
    drawn = sum(p.count for p in queries.series(conn, *names[0], since, until, 120))

    def chart(on: sqlite3.Connection) -> Callable[[int], None]:
        def draw(r: int) -> None:
            if not queries.series(on, *names[r % len(names)], since, until, 120):
                raise RuntimeError("the generated store has an empty 30-day series")
        return draw

    from_rollups = _median_ms(chart(conn), max(repeats, 20))
    conn.close()
    raw = open_reader(path)
    # An empty temp table shadows pmon_state on this connection only: series() then reads raw points, as before v2.
    raw.execute("CREATE TEMP TABLE pmon_state (key TEXT PRIMARY KEY, value)")
    from_raw = _median_ms(chart(raw), max(3, repeats // 4))
    raw.close()
    return from_rollups, from_raw, drawn


def _used_mb(path: Path) -> float:
    conn = sqlite3.connect(path)
    try:
        return used_bytes(conn) / MB
    finally:
        conn.close()


def bench_retention(rows: int = 10_000_000, prune_rows: int = 1_000_000, workdir: Path | None = None,
                    repeats: int = 20, progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """Build, roll up, then prune ``prune_rows`` of ``rows`` points while another process records; the figures.

    Keys: ``max_hold_ms``, ``median_hold_ms``, ``steps``, ``max_step_rows``, ``rows_deleted``,
    ``points_deleted``, ``prune_s``, ``writer_rows_per_s_idle``, ``writer_rows_per_s_pruning``,
    ``writer_ratio`` (target >= 0.5), ``series_30d_rollups_ms`` (target <= 10), ``series_30d_raw_ms``,
    ``series_30d_points``, ``generate_s``, ``first_rollup_s``, ``rollup_mb``, ``used_mb_before``, ``used_mb_after``.
    """
    say = progress or (lambda _: None)
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="pmon-retention-") as tmp:
            return bench_retention(rows, prune_rows, Path(tmp), repeats, progress)
    path = Path(workdir) / "retention.db"
    for suffix in ("", "-wal", "-shm", "-headroom"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    now = time.time()
    figures: dict[str, float] = {}

    say(f"retention: generating {rows:,} points, {prune_rows:,} older than {RETENTION_DAYS:g} days")
    started = time.perf_counter()
    generate_aged_store(path, rows, prune_rows, now)
    figures["generate_s"] = time.perf_counter() - started
    figures["used_mb_before"] = raw_mb = _used_mb(path)

    say("retention: first roll-up of every point (nobody else writing: big steps)")
    conn = open_writer(path)
    started = time.perf_counter()
    roll_up(conn, now, steps=WriteSteps(conn, max_lock_ms=2000, max_rows=100_000, first_rows=20_000, rest_factor=0))
    figures["first_rollup_s"] = time.perf_counter() - started
    conn.close()
    figures["rollup_mb"] = _used_mb(path) - raw_mb

    say(f"retention: 30-day chart from the rollups and from the raw points (median of {repeats})")
    figures["series_30d_rollups_ms"], figures["series_30d_raw_ms"], figures["series_30d_points"] = \
        _series_times(path, now, repeats)

    say("retention: pruning while another process records at full speed")
    context = multiprocessing.get_context("spawn")
    stop, ready = context.Event(), context.Event()
    recorder = context.Process(target=_record_at_full_speed, args=(str(path), stop, ready), daemon=True)
    recorder.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the recording process did not start")
        time.sleep(2.0)  # past its first commits
        pruner = Pruner(path, RetentionConfig(days=RETENTION_DAYS))
        idle_rates = [_committed_per_second(path, lambda: time.sleep(IDLE_WINDOW_S))[0]]
        pruning_rate, report = _committed_per_second(path, lambda: pruner.prune(now=time.time()))
        idle_rates.append(_committed_per_second(path, lambda: time.sleep(IDLE_WINDOW_S))[0])
    finally:
        stop.set()
        recorder.join(60)
        if recorder.is_alive():
            recorder.kill()
    idle_rate = statistics.mean(idle_rates)
    figures.update({
        "max_hold_ms": report.max_hold_ms,
        "median_hold_ms": report.median_hold_ms,
        "steps": float(report.steps),
        "max_step_rows": float(report.max_step_rows),
        "rows_deleted": float(report.deleted_total),
        "points_deleted": float(report.deleted["metric_points"]),
        "prune_s": report.duration_s,
        "checkpoint_ms": report.checkpoint_ms,
        "busy": float(report.busy),
        "writer_rows_per_s_idle": idle_rate,
        "writer_rows_per_s_pruning": pruning_rate,
        "writer_ratio": pruning_rate / idle_rate if idle_rate else 0.0,
        "used_mb_after": _used_mb(path),
    })
    if report.errors:
        say(f"retention: the pass reported {asdict(report)['errors'][-1]}")
    for suffix in ("", "-wal", "-shm", "-headroom"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return figures


if __name__ == "__main__":  # python -m pmon.store.retention_bench [rows] [prune_rows]
    import sys

    arguments = [int(a) for a in sys.argv[1:3]]
    for name, value in bench_retention(*arguments, progress=print).items():  # type: ignore[arg-type]
        print(f"{name:28} {value:,.2f}")

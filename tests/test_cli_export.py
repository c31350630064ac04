"""`pmon export`: every table and format parses back to the rows sqlite3 reads; filters; flat memory."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmon.cli import main
from pmon.cli_export import export_command, iso_utc
from pmon.store.export_queries import EXPORT_TABLES
from pmon.store.schema import open_writer

if "export" not in main.commands:
    main.add_command(export_command)

NOW = round(time.time(), 3)
# Offsets (seconds ago) away from the 30m boundary the filter tests use.
AGO = [7200.5, 2100.25, 1500.125, 900.0, 300.875, 5.5]
PLUGINS = ["alpha", "beta, \"quoted\"", "gamma\nnewline", "δέλτα"]

SOURCE_SQL = {
    "metrics": "SELECT id, plugin_id, metric_type, value, timestamp, metadata FROM plugin_metrics ORDER BY id",
    "logs": "SELECT id, plugin_id, level, message, timestamp, context, traceback FROM plugin_logs ORDER BY id",
    "events": ("SELECT id, plugin_id, event_type, category, severity, timestamp, description, data "
               "FROM plugin_events ORDER BY id"),
    "snapshots": ("SELECT id, plugin_id, timestamp, cpu_usage, memory_usage, response_time, error_rate, "
                  "request_count, throughput, disk_io, network_io, custom_metrics FROM performance_snapshots ORDER BY id"),
}


def _fill(path: Path) -> None:
    conn = open_writer(path)
    conn.execute("BEGIN IMMEDIATE")
    for p, plugin in enumerate(PLUGINS):
        sid = conn.execute("INSERT INTO metric_series (plugin_id, metric_type) VALUES (?, 'cpu_usage')",
                           (plugin,)).lastrowid
        for i, ago in enumerate(AGO):
            ts = round(NOW - ago - p * 0.001, 3)
            meta = json.dumps({"i": i, "s": "a,b\n\"c\""}) if i % 2 else None
            conn.execute("INSERT INTO metric_points (series_id, ts_ms, value, metadata) VALUES (?, ?, ?, ?)",
                         (sid, round(ts * 1000), i * 1.25 + p / 3, meta))
            conn.execute("INSERT INTO plugin_logs (plugin_id, level, message, timestamp, context, traceback) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (plugin, "error" if i % 2 else "info", f"msg {i}, \"q\"\nline2 ✓", ts,
                          json.dumps({"k": [1, 2]}) if i % 3 == 0 else None, "Traceback\n  x" if i == 1 else None))
            conn.execute("INSERT INTO plugin_events (plugin_id, event_type, description, timestamp, severity, data, "
                         "category) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (plugin, "startup", f"desc {i}", ts, "warning", json.dumps({"n": i}) if i % 2 else None,
                          "system"))
            conn.execute("INSERT INTO performance_snapshots (plugin_id, timestamp, cpu_usage, memory_usage, "
                         "response_time, error_rate, request_count, throughput, disk_io, network_io, custom_metrics) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (plugin, ts, 10.5 + i, 200.25, 12.0, 0.01 * i, 100 + i, 3.5,
                          json.dumps({"read": i, "write": 2}), json.dumps({"sent": 1.5, "recv": 2}),
                          json.dumps({"q": i}) if i % 2 else None))
    conn.execute("COMMIT")
    conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "export.db"
    _fill(path)
    return path


def _export(db: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--db", str(db), "export", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _expected(db: Path, table: str, where: str = "", params: tuple = ()) -> list[dict]:
    sql = SOURCE_SQL[table]
    if where:
        sql = f"SELECT * FROM ({sql}) WHERE {where}"
    conn = sqlite3.connect(db)
    try:
        cur = conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        conn.close()
    for row in rows:
        row["timestamp"] = _iso(row["timestamp"])
    return rows


def _decoded(rows: list[dict], table: str) -> list[dict]:
    cols = EXPORT_TABLES[table].json_columns
    return [{k: (json.loads(v) if k in cols and v is not None else v) for k, v in r.items()} for r in rows]


def _as_csv_text(rows: list[dict]) -> list[dict]:
    return [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]


@pytest.mark.parametrize("table", list(EXPORT_TABLES))
def test_every_format_parses_back_to_the_sqlite_rows(store: Path, table: str) -> None:
    expected = _expected(store, table)
    assert len(expected) == len(PLUGINS) * len(AGO)

    as_json = json.loads(_export(store, "--table", table, "--format", "json"))
    assert as_json == _decoded(expected, table)

    lines = _export(store, "--table", table, "--format", "ndjson").splitlines()
    assert [json.loads(line) for line in lines] == _decoded(expected, table)

    text = _export(store, "--table", table, "--format", "csv")
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == EXPORT_TABLES[table].columns
    assert list(reader) == _as_csv_text(expected)


def test_timestamps_are_iso_utc_with_milliseconds(store: Path) -> None:
    assert iso_utc(1795674601.123) == "2026-11-26T06:30:01.123Z"
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(None) is None
    for fmt in ("csv", "ndjson"):
        out = _export(store, "--table", "logs", "--format", fmt)
        stamps = ([r["timestamp"] for r in csv.DictReader(io.StringIO(out))] if fmt == "csv"
                  else [json.loads(line)["timestamp"] for line in out.splitlines()])
        for stamp in stamps:
            assert len(stamp) == 24 and stamp.endswith("Z") and stamp[10] == "T" and stamp[19] == "."
            datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize("table", list(EXPORT_TABLES))
def test_filters_since_until_plugin(store: Path, table: str) -> None:
    got = [json.loads(line) for line in _export(store, "--table", table, "--format", "ndjson",
                                                "--since", "30m").splitlines()]
    assert got == _decoded(_expected(store, table, "timestamp >= ?", (time.time() - 1800,)), table)
    assert len(got) == 4 * len(PLUGINS)

    start, end = NOW - 2000, NOW - 600
    iso = [datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (start, end)]
    got = [json.loads(line) for line in _export(store, "--table", table, "--format", "ndjson",
                                                "--since", iso[0], "--until", iso[1],
                                                "--plugin", PLUGINS[1]).splitlines()]
    want = _expected(store, table, "timestamp >= ? AND timestamp < ? AND plugin_id = ?",
                     (int(start), int(end), PLUGINS[1]))
    assert got == _decoded(want, table)
    assert len(got) == 2

    assert json.loads(_export(store, "--table", table, "--format", "json", "--plugin", "nobody")) == []
    assert _export(store, "--table", table, "--format", "csv", "--plugin", "nobody").splitlines() == [
        ",".join(EXPORT_TABLES[table].columns)]


def test_output_file_is_written_atomically(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "logs.csv"
    out.parent.mkdir()
    out.write_text("old")
    assert _export(store, "--table", "logs", "--format", "csv", "-o", str(out)) == ""
    assert list(csv.DictReader(out.open(newline="", encoding="utf-8"))) == _as_csv_text(_expected(store, "logs"))
    assert os.listdir(out.parent) == ["logs.csv"]  # no temp file left behind


@pytest.mark.parametrize("args, needle", [
    (["--since", "5x"], "--since"),
    (["--since", "1h", "--until", "2h"], "must be before"),
    (["-o", "/nonexistent-dir/x.csv"], "/nonexistent-dir/x.csv"),
])
def test_bad_arguments_exit_2_with_one_line(store: Path, args: list[str], needle: str) -> None:
    result = CliRunner().invoke(main, ["--db", str(store), "export", "--table", "logs", "--format", "csv", *args])
    assert result.exit_code == 2
    assert needle in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_database_and_help(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "none.db"), "export", "--table", "logs",
                                       "--format", "csv"])
    assert result.exit_code == 2 and "none.db" in result.output
    assert not (tmp_path / "none.db").exists()
    help_text = CliRunner().invoke(main, ["export", "--help"]).output
    assert "Example:" in help_text and "pmon export --table" in help_text


EXPORT_MAIN = ("from pmon.cli import main; from pmon.cli_export import export_command; "
               "main.add_command(export_command); main()")


def test_broken_pipe_exits_quietly(store: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PMON_CONFIG"}
    proc = subprocess.run(f"'{sys.executable}' -c '{EXPORT_MAIN}' --db '{store}' export --table metrics "
                          "--format ndjson | head -1", shell=True, capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.stderr == "" and len(proc.stdout.splitlines()) == 1


def test_one_million_rows_export_with_flat_memory(tmp_path: Path) -> None:
    from pmon.bench import generate_store

    env = {k: v for k, v in os.environ.items() if k != "PMON_CONFIG"}

    # The child reports its own VmHWM on the way out: ru_maxrss would also count the pages it shared with
    # this (large) pytest process between fork and exec.
    measured = ("import atexit, re, sys\n"
                "def report():\n"
                "    peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
                f"    open({str(tmp_path / 'peak.txt')!r}, 'w').write(peak)\n"
                "atexit.register(report)\n" + EXPORT_MAIN.replace("; ", "\n"))

    def export_peak_mib(db: Path, out: Path) -> float:
        with open(tmp_path / "stderr.txt", "w") as err:
            done = subprocess.run([sys.executable, "-c", measured, "--db", str(db), "export", "--table", "metrics",
                                   "--format", "csv", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=err,
                                  env=env, timeout=300)
        assert done.returncode == 0, (tmp_path / "stderr.txt").read_text()
        return int((tmp_path / "peak.txt").read_text()) / 1024

    small_db, small_out = tmp_path / "small.db", tmp_path / "small.csv"
    generate_store(small_db, 100_000, time.time())
    small_peak = export_peak_mib(small_db, small_out)
    db, out = tmp_path / "big.db", tmp_path / "big.csv"
    rows = 1_000_000
    generate_store(db, rows, time.time())
    peak_mib = export_peak_mib(db, out)
    size = out.stat().st_size
    assert size > 50 * 1024 * 1024
    # Flat: ten times the rows costs (almost) no more memory; the absolute bound is only a generous backstop.
    print(f"export peak RSS: 100 k rows {small_peak:.0f} MiB, 1 M rows {peak_mib:.0f} MiB")
    assert peak_mib - small_peak < 40 and peak_mib < 150, \
        f"peak RSS {peak_mib:.0f} MiB (100 k rows: {small_peak:.0f} MiB) for a {size / 2**20:.0f} MiB CSV"
    with out.open(newline="") as f:
        lines = sum(1 for _ in f)
    assert lines == rows + 1
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        first = next(reader)
    conn = sqlite3.connect(db)
    try:
        want = conn.execute("SELECT id, plugin_id, metric_type, value, timestamp FROM plugin_metrics "
                            "ORDER BY id LIMIT 1").fetchone()
    finally:
        conn.close()
    assert (int(first["id"]), first["plugin_id"], first["metric_type"], float(first["value"]),
            first["timestamp"]) == (*want[:4], _iso(want[4]))

"""The command line, run as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmon import Monitor, __version__


def pmon(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PMON_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "pmon", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=300)


def test_version_and_help() -> None:
    assert pmon("--version").stdout.strip() == f"pmon, version {__version__}"
    out = pmon("--help").stdout
    for command in ("status", "bench", "demo"):
        assert command in out
    for command in ("status", "bench", "demo"):
        assert "Example" in pmon(command, "--help").stdout


def test_status_json_reports_rows_and_plugins(db_path: Path) -> None:
    monitor = Monitor(db_path, flush_interval=0.05)
    monitor.record_metric("alpha", "cpu_usage", 12.5)
    monitor.record_log("alpha", "error", "boom")
    monitor.record_event("beta", "startup", "hello", "info")
    assert monitor.flush()
    monitor.stop_monitoring()
    result = pmon("--db", str(db_path), "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == {"metrics": 1, "logs": 1, "events": 1, "snapshots": 0, "plugins": 2}
    assert [p["plugin_id"] for p in report["plugins"]] == ["alpha", "beta"]
    assert report["plugins"][0]["metrics"] == {"cpu_usage": 12.5}
    text = pmon("status", env={"PMON_DB": str(db_path)})
    assert "alpha" in text.stdout and "logs 1" in text.stdout


def test_missing_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = pmon("--db", str(tmp_path / "none.db"), "status")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "none.db" in result.stderr and "pmon demo" in result.stderr


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "pmon.toml"
    bad.write_text("[monitor]\nbatch_size = 'lots'\n")
    result = pmon("--config", str(bad), "status")
    assert result.returncode == 2
    assert result.stderr == f"pmon: {bad}: [monitor]: batch_size must be int, got str 'lots'\n"
    found_in_cwd = pmon("status", cwd=tmp_path)
    assert found_in_cwd.returncode == 2 and "batch_size must be int" in found_in_cwd.stderr


def test_demo_headless_records_all_eight_plugins_with_every_level_category_and_severity(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = pmon("--db", str(db), "demo", "--headless", "--duration", "5")
    assert result.returncode == 0, result.stderr
    assert "pre-filled" in result.stdout and "done" in result.stdout
    report = json.loads(pmon("--db", str(db), "status", "--json").stdout)
    assert {p["plugin_id"] for p in report["plugins"]} == {
        "auth", "search", "image_resizer", "payments", "mailer", "ingest", "recommender", "backup"}
    conn = sqlite3.connect(db)
    levels = {level for (level,) in conn.execute("SELECT DISTINCT level FROM plugin_logs")}
    categories = {c for (c,) in conn.execute("SELECT DISTINCT category FROM plugin_events")}
    severities = {s for (s,) in conn.execute("SELECT DISTINCT severity FROM plugin_events")}
    recent = conn.execute("SELECT count(DISTINCT plugin_id) FROM plugin_metrics WHERE timestamp > ?",
                          (time.time() - 30,)).fetchone()[0]
    with_context = conn.execute("SELECT count(*) FROM plugin_logs WHERE context IS NOT NULL").fetchone()[0]
    tracebacks = conn.execute("SELECT traceback FROM plugin_logs WHERE traceback IS NOT NULL LIMIT 1").fetchone()
    conn.close()
    assert levels == {"debug", "info", "warning", "error", "critical"}
    assert categories == {"system", "user", "error", "alert"}
    assert severities == {"info", "low", "medium", "high", "critical"}
    assert recent >= 7  # every plugin but the one that may be down right now kept recording live
    assert with_context > 0
    assert tracebacks[0].count('File "') >= 3  # a real multi-frame traceback


def test_demo_duration_without_headless_is_a_usage_error(tmp_path: Path) -> None:
    result = pmon("--db", str(tmp_path / "d.db"), "demo", "--duration", "1")
    assert result.returncode == 2
    assert result.stderr == "pmon: --duration: only with --headless (the console runs until you quit it)\n"


@pytest.mark.slow
def test_bench_json_has_every_figure_with_baseline_and_target() -> None:
    result = pmon("bench", "--rows", "20000", "--points", "20000", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert len(figures) == 8 and "@monitor.track on a no-op call" in figures
    for name, figure in figures.items():
        assert set(figure) == {"value", "unit", "baseline", "baseline_name", "ratio", "target", "met"}, name
        assert figure["value"] > 0 and figure["baseline"] > 0
    assert figures["record_metric"]["unit"] == "ns/call"


def test_prune_deletes_old_rows_keeps_recent_ones_and_their_rollups(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05)
    now = time.time()
    for days in (40, 20, 10, 1):
        monitor.record_metric("p", "cpu_usage", float(days), timestamp=now - days * 86400)
        monitor.record_log("p", "info", f"{days} days ago", timestamp=now - days * 86400)
        monitor.record_event("p", "tick", f"{days} days ago", timestamp=now - days * 86400)
    monitor.stop_monitoring()
    done = pmon("--db", str(db), "prune", "--older-than", "15d", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["deleted"]["metric_points"] == 2 and report["deleted"]["plugin_logs"] == 2
    conn = sqlite3.connect(db)
    try:
        assert [v for (v,) in conn.execute("SELECT value FROM plugin_metrics ORDER BY value")] == [1.0, 10.0]
        assert conn.execute("SELECT count(*) FROM plugin_events").fetchone()[0] == 2
        hours = conn.execute("SELECT count(*) FROM metric_rollups_1h").fetchone()[0]
    finally:
        conn.close()
    assert hours == 4  # the pruned points live on in the rollups
    plain = pmon("--db", str(db), "prune")
    assert plain.returncode == 0 and "deleted" in plain.stdout


@pytest.mark.parametrize("value", ["soon", "-3d", "0d", "30"])
def test_prune_rejects_a_bad_duration(tmp_path: Path, value: str) -> None:
    done = pmon("--db", str(tmp_path / "x.db"), "prune", "--older-than", value)
    assert done.returncode == 2 and "--older-than" in done.stderr


def test_prune_without_a_database_says_so(tmp_path: Path) -> None:
    done = pmon("--db", str(tmp_path / "none.db"), "prune")
    assert done.returncode == 2 and "no database here" in done.stderr
    assert not (tmp_path / "none.db").exists()


def test_config_check_and_show(tmp_path: Path) -> None:
    good = tmp_path / "pmon.toml"
    good.write_text('[collector]\nsample_interval = 5\n[plugins.web]\ncmdline = "gunicorn"\n'
                    '[[alerts]]\nname = "hot"\nmetric = "cpu_usage"\ncomparison = ">"\nthreshold = 90\n')
    done = pmon("config", "check", str(good))
    assert done.returncode == 0 and "ok (1 plugins, 1 alert rules)" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[collector]\nsample_interval = 'fast'\n")
    failed = pmon("config", "check", str(bad))
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1 and "sample_interval" in failed.stderr
    shown = json.loads(pmon("--config", str(good), "--db", str(tmp_path / "x.db"), "config", "show", "--json").stdout)
    assert shown["collector"]["sample_interval"] == {"value": 5.0, "source": str(good)}
    assert shown["collector"]["snapshot_interval"]["source"] == "default"
    assert shown["database"] == {"value": str(tmp_path / "x.db"), "source": "--db / $PMON_DB"}
    assert shown["plugins"] == {"web": {"cmdline": "gunicorn"}} and shown["alerts"][0]["name"] == "hot"


def test_plugins_lists_status_and_latest_values(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    monitor.record_metric("web", "cpu_usage", 42.0)
    monitor.record_event("worker", "stopped", "gone", "high")
    monitor.stop_monitoring()
    listed = {p["plugin_id"]: p for p in json.loads(pmon("--db", str(db), "plugins", "--json").stdout)}
    assert listed["web"]["latest"] == {"cpu_usage": 42.0} and listed["worker"]["status"] == "down"
    text = pmon("--db", str(db), "plugins").stdout
    assert "web" in text and "cpu 42%" in text


def test_snapshots_list_show_and_diff(tmp_path: Path) -> None:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    monitor.create_snapshot("web", {"cpu_usage": 10, "disk_io": {"read_bytes": 100}}, timestamp=time.time() - 60)
    monitor.create_snapshot("web", {"cpu_usage": 20, "disk_io": {"read_bytes": 100, "write_bytes": 5}})
    monitor.stop_monitoring()
    listed = json.loads(pmon("--db", str(db), "snapshots", "list", "--json").stdout)
    assert [s["cpu_usage"] for s in listed] == [20.0, 10.0]
    newer, older = listed[0]["id"], listed[1]["id"]
    shown = json.loads(pmon("--db", str(db), "snapshots", "show", str(newer), "--json").stdout)
    assert shown["disk_io"] == {"read_bytes": 100, "write_bytes": 5}
    rows = {r["path"]: r for r in json.loads(
        pmon("--db", str(db), "snapshots", "diff", str(older), str(newer), "--json").stdout)["rows"]}
    assert rows["cpu_usage"]["pct_change"] == 100.0 and rows["cpu_usage"]["regression"]
    assert rows["disk_io.write_bytes"]["a"] is None and rows["disk_io.write_bytes"]["b"] == 5
    assert "▲ cpu_usage" in pmon("--db", str(db), "snapshots", "diff", str(older), str(newer)).stdout
    missing = pmon("--db", str(db), "snapshots", "show", "999")
    assert missing.returncode == 2 and "no snapshot 999" in missing.stderr


def test_record_then_read_back_from_the_shell(tmp_path: Path) -> None:
    db = str(tmp_path / "pmon.db")
    assert pmon("--db", db, "record", "metric", "cron_job", "custom.rows_done", "1200", "--meta", "host=a").returncode == 0
    assert pmon("--db", db, "record", "log", "cron_job", "error", "disk \x1b[31mfull").returncode == 0
    bad = pmon("--db", db, "record", "event", "cron_job", "done", "ok", "--severity", "urgent")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "severity" in bad.stderr
    shown = pmon("--db", db, "logs")
    assert "disk \\x1b[31mfull" in shown.stdout and "\x1b" not in shown.stdout  # shown, never sent raw
    (line,) = pmon("--db", db, "export", "--table", "metrics", "--format", "ndjson").stdout.splitlines()
    assert json.loads(line)["metric_type"] == "custom.rows_done" and json.loads(line)["metadata"] == {"host": "a"}


def test_status_lists_fifty_plugins_and_says_how_many_more(tmp_path: Path) -> None:
    db = tmp_path / "many.db"
    monitor = Monitor(db, flush_interval=0.05)
    for i in range(60):
        monitor.record_metric(f"p{i:02d}", "cpu_usage", 1.0)
    monitor.stop_monitoring()
    result = subprocess.run([sys.executable, "-m", "pmon", "--db", str(db), "status"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert "p49" in result.stdout and "p50 " not in result.stdout
    assert "… and 10 more; `pmon plugins` lists them all" in result.stdout

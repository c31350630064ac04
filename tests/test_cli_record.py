"""`pmon record metric|log|event|snapshot` through click's CliRunner on the main group."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmon.cli import main
from pmon.cli_record import record

if "record" not in main.commands:
    main.add_command(record)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PMON_CONFIG", raising=False)
    monkeypatch.delenv("PMON_DB", raising=False)
    monkeypatch.chdir(tmp_path)


def run(db: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(main, ["--db", str(db), "record", *args], input=input, catch_exceptions=False)


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def one_error_line(result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pmon: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_metric_with_meta(db_path: Path) -> None:
    result = run(db_path, "metric", "my_plugin", "cpu_usage", "45.2", "--meta", "source=cron", "--meta", "host=a=b")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    [(plugin, mtype, value, meta)] = rows(db_path, "SELECT plugin_id, metric_type, value, metadata FROM plugin_metrics")
    assert (plugin, mtype, value) == ("my_plugin", "cpu_usage", 45.2)
    assert json.loads(meta) == {"source": "cron", "host": "a=b"}


def test_metric_custom_negative_at_and_verbose(db_path: Path) -> None:
    result = run(db_path, "metric", "p", "custom.queue_depth", "-3.5", "--at", "1700000000", "-v")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 and "custom.queue_depth" in result.stdout
    assert rows(db_path, "SELECT metric_type, value, timestamp FROM plugin_metrics") == [
        ("custom.queue_depth", -3.5, 1700000000.0)]


def test_log_with_context_file_and_traceback_file(db_path: Path, tmp_path: Path) -> None:
    (tmp_path / "ctx.json").write_text('{"db_host": "x", "port": 5432}')
    (tmp_path / "tb.txt").write_text("Traceback (most recent call last):\n  boom\nRuntimeError: db down\n")
    result = run(db_path, "log", "my_plugin", "error", "db down", "--context", "@ctx.json", "--traceback-file", "tb.txt")
    assert result.exit_code == 0, result.stderr
    [(level, message, context, tb)] = rows(db_path, "SELECT level, message, context, traceback FROM plugin_logs")
    assert (level, message) == ("error", "db down")
    assert json.loads(context) == {"db_host": "x", "port": 5432}
    assert tb.endswith("RuntimeError: db down\n")


def test_log_inline_context(db_path: Path) -> None:
    result = run(db_path, "log", "p", "WARNING", "slow", "--context", '{"ms": 900}')
    assert result.exit_code == 0, result.stderr
    assert rows(db_path, "SELECT level, context FROM plugin_logs") == [("warning", '{"ms": 900}')]


def test_event_with_data_file(db_path: Path, tmp_path: Path) -> None:
    (tmp_path / "event.json").write_text('{"version": "2.3"}')
    result = run(db_path, "event", "my_plugin", "startup", "started", "--severity", "high", "--data", "@event.json")
    assert result.exit_code == 0, result.stderr
    [(etype, desc, sev, data)] = rows(db_path, "SELECT event_type, description, severity, data FROM plugin_events")
    assert (etype, desc, sev, json.loads(data)) == ("startup", "started", "high", {"version": "2.3"})


def test_event_default_severity_inline_data(db_path: Path) -> None:
    assert run(db_path, "event", "p", "deploy", "v2", "--data", '{"a": [1]}').exit_code == 0
    assert rows(db_path, "SELECT severity, data FROM plugin_events") == [("info", '{"a": [1]}')]


@pytest.mark.parametrize("extra", [[], ["-"]])
def test_snapshot_from_stdin(db_path: Path, extra: list[str]) -> None:
    snap = {"cpu_usage": 12.5, "request_count": 40, "disk_io": {"read": 3}}
    result = run(db_path, "snapshot", "my_plugin", *extra, input=json.dumps(snap))
    assert result.exit_code == 0, result.stderr
    [(cpu, mem, count, disk)] = rows(db_path, "SELECT cpu_usage, memory_usage, request_count, disk_io "
                                              "FROM performance_snapshots WHERE plugin_id = 'my_plugin'")
    assert (cpu, mem, count, json.loads(disk)) == (12.5, 0, 40, {"read": 3})


def test_snapshot_from_file(db_path: Path, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"throughput": 7}')
    assert run(db_path, "snapshot", "p", "--file", "s.json").exit_code == 0
    assert rows(db_path, "SELECT throughput FROM performance_snapshots") == [(7.0,)]


@pytest.mark.parametrize(("args", "stdin", "expected"), [
    (["metric", "p", "cpu", "1"], None, "pmon: metric_type: 'cpu'"),
    (["metric", "p", "cpu_usage", "nan"], None, "pmon: value: 'nan' is not finite"),
    (["metric", "p", "cpu_usage", "inf"], None, "pmon: value:"),
    (["metric", "p", "cpu_usage", "abc"], None, "pmon: value: 'abc' is not a number"),
    (["metric", "bad plugin!", "cpu_usage", "1"], None, "pmon: plugin_id:"),
    (["metric", "p", "cpu_usage", "1", "--meta", "novalue"], None, "pmon: --meta:"),
    (["metric", "p", "cpu_usage", "1", "--at", "yesterday"], None, "pmon: --at:"),
    (["log", "p", "bogus", "m"], None, "pmon: level: 'bogus'"),
    (["log", "p", "error", "m", "--context", "{x"], None, "pmon: --context: invalid JSON"),
    (["log", "p", "error", "m", "--context", "[1, 2]"], None, "pmon: --context: expected a JSON object"),
    (["log", "p", "error", "m", "--context", "@missing.json"], None, "pmon: --context: cannot read"),
    (["log", "p", "error", "m", "--traceback-file", "missing.txt"], None, "pmon: --traceback-file: cannot read"),
    (["event", "p", "startup", "s", "--severity", "huge"], None, "pmon: severity: 'huge'"),
    (["event", "p", "startup", "s", "--data", "not json"], None, "pmon: --data: invalid JSON"),
    (["snapshot", "p"], "{not json", "pmon: stdin: invalid JSON"),
    (["snapshot", "p"], '{"cpu_usage": 1, "foo": 2}', "pmon: snapshot_data: unknown field(s) foo"),
    (["snapshot", "p"], '{"cpu_usage": "high"}', "pmon: snapshot_data['cpu_usage']"),
])
def test_invalid_input_exits_2_with_one_line(db_path: Path, args: list[str], stdin: str | None, expected: str) -> None:
    line = one_error_line(run(db_path, *args, input=stdin))
    assert line.startswith(expected), line
    if db_path.exists():
        for table in ("plugin_metrics", "plugin_logs", "plugin_events", "performance_snapshots"):
            assert rows(db_path, f"SELECT COUNT(*) FROM {table}") == [(0,)]


def test_unwritable_database_exits_1_with_the_writer_error(tmp_path: Path) -> None:
    db = tmp_path / "a_directory.db"
    db.mkdir()
    line = one_error_line(run(db, "metric", "p", "cpu_usage", "1"), exit_code=1)
    assert "not written" in line and "directory" in line


@pytest.mark.parametrize("command", ["metric", "log", "event", "snapshot"])
def test_help_has_an_example(command: str) -> None:
    result = CliRunner().invoke(main, ["record", command, "--help"])
    assert result.exit_code == 0
    example = result.stdout.split("Example:\n", 1)[1]
    assert f"pmon record {command} " in example

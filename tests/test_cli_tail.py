"""`pmon logs` and `pmon events`: filters, JSON lines, escaped text, and a real `logs -f` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmon import Monitor
from pmon.cli import main
from pmon.cli_tail import events_command, logs_command

for _command in (logs_command, events_command):
    if _command.name not in main.commands:
        main.add_command(_command)


def run(db: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--db", str(db), *args], env={"PMON_CONFIG": None})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    monitor.record_log("alpha", "debug", "starting up")
    monitor.record_log("alpha", "info", "ready")
    monitor.record_log("beta", "error", "db down", context={"db_host": "x"}, traceback="Traceback:\n  line 1")
    monitor.record_log("beta", "warning", "evil \x1b[31mred\r hidden")
    monitor.record_log("alpha", "critical", "disk full")
    monitor.record_event("alpha", "startup", "alpha started", "info")
    monitor.record_event("beta", "crash", "beta crashed \x1b]0;title\x07", "high")
    monitor.record_event("beta", "user_login", "someone logged in", "low")
    assert monitor.flush()
    monitor.stop_monitoring()
    return db


def test_logs_prints_all_oldest_first_with_traceback_indented(store: Path) -> None:
    code, out, _ = run(store, "logs")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[2] for line in lines if not line.startswith(" ")] == [
        "DEBUG", "INFO", "ERROR", "WARNING", "CRITICAL"]
    assert lines[3] == "    Traceback:" and lines[4] == "      line 1"
    assert "\x1b" not in out  # not a terminal: no colour, and recorded escapes shown as text


def test_logs_filters(store: Path) -> None:
    _, out, _ = run(store, "logs", "--level", "warning")
    assert [line.split()[2] for line in out.splitlines() if not line.startswith(" ")] == [
        "ERROR", "WARNING", "CRITICAL"]
    _, out, _ = run(store, "logs", "--plugin", "alpha", "--grep", "read")
    assert len(out.splitlines()) == 1 and "ready" in out
    _, out, _ = run(store, "logs", "--limit", "2")
    assert [line.split()[2] for line in out.splitlines()] == ["WARNING", "CRITICAL"]
    _, out, _ = run(store, "logs", "--since", "1h")
    assert "disk full" in out
    _, out, _ = run(store, "logs", "--since", "2000-01-01T00:00Z")
    assert "disk full" in out
    _, out, _ = run(store, "logs", "--since", "2999-01-01T00:00Z")
    assert out == ""


def test_logs_json_lines(store: Path) -> None:
    code, out, _ = run(store, "logs", "--json", "--plugin", "beta")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["level"] for r in rows] == ["error", "warning"]
    assert rows[0]["context"] == {"db_host": "x"} and rows[0]["traceback"] == "Traceback:\n  line 1"
    assert rows[1]["message"] == "evil \x1b[31mred\r hidden"
    assert rows[0]["timestamp"].endswith("Z") and isinstance(rows[0]["id"], int)
    assert set(rows[0]) == {"id", "plugin_id", "level", "message", "timestamp", "context", "traceback"}


def test_control_characters_are_escaped(store: Path) -> None:
    _, out, _ = run(store, "logs", "--grep", "evil")
    assert "evil \\x1b[31mred\\r hidden" in out
    assert "\x1b" not in out and "\r" not in out
    _, out, _ = run(store, "events", "--plugin", "beta", "--severity", "high")
    assert "\\x1b]0;title\\x07" in out and "\x1b" not in out and "\x07" not in out


def test_events_filters_and_json(store: Path) -> None:
    code, out, _ = run(store, "events")
    assert code == 0 and len(out.splitlines()) == 3
    _, out, _ = run(store, "events", "--severity", "low")
    assert "alpha started" not in out and "beta crashed" in out and "logged in" in out
    _, out, _ = run(store, "events", "--category", "user")
    assert out.count("\n") == 1 and "logged in" in out
    _, out, _ = run(store, "events", "--json", "--grep", "crashed")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["severity"] == "high" and row["category"] == "error" and row["event_type"] == "crash"


def test_colour_only_on_a_terminal(store: Path) -> None:
    result = CliRunner().invoke(main, ["--db", str(store), "logs", "--level", "critical"],
                                                color=True)
    assert "\x1b[" in result.stdout and "disk full" in result.stdout


@pytest.mark.parametrize("args", [("logs", "--since", "yesterday"), ("events", "--since", "10x")])
def test_bad_since_is_one_line_exit_2(store: Path, args: tuple[str, ...]) -> None:
    code, out, err = run(store, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--since" in err


def test_missing_database_without_follow_is_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    for command in ("logs", "events"):
        code, _, err = run(missing, command)
        assert code == 2 and str(missing) in err and len(err.strip().splitlines()) == 1


def test_help_has_an_example() -> None:
    for command in ("logs", "events"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output and "pmon " + command in result.output


def test_follow_subprocess_sees_new_row_and_exits_cleanly_on_sigint(tmp_path: Path) -> None:
    db = tmp_path / "follow.db"
    monitor = Monitor(db, flush_interval=0.05, sample_interval=0)
    monitor.record_log("alpha", "info", "before follow")
    assert monitor.flush()
    env = {**os.environ}
    env.pop("PMON_CONFIG", None)
    code = ("from pmon.cli import main; from pmon.cli_tail import logs_command; "
            "main.add_command(logs_command); main()")
    proc = subprocess.Popen([sys.executable, "-c", code, "--db", str(db), "logs", "-f"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    seen = {"before": threading.Event(), "after": threading.Event()}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "before follow" in line:
                seen["before"].set()
            if "written while following" in line:
                seen["after"].set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen["before"].wait(60), f"no initial output: {lines}"
        monitor.record_log("alpha", "error", "written while following")
        assert monitor.flush()
        assert seen["after"].wait(5), f"new row not followed: {lines}"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        monitor.stop_monitoring()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err

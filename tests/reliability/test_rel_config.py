"""Every malformed pmon.toml is one clear line naming the file, exit code 2, and never a traceback.

Each variant goes through the four ways a user meets the file: `pmon config
check`, `pmon status`, `pmon collect --once` (real processes) and a
``Monitor`` recording with ``PMON_CONFIG`` set (which raises ``ConfigError``
from its first call).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from reliability_helpers import other_user, run_as

from pmon.config import MAX_FILE_BYTES, ConfigError
from pmon.monitor import Monitor

pytestmark = pytest.mark.reliability

COMMANDS = (("config", "check", "{file}"), ("--config", "{file}", "status"), ("--config", "{file}", "collect", "--once"))
LONGEST_LINE = 400
"""An error line quotes at most a short piece of what the file holds."""


def _nested(opening: bytes, closing: bytes, depth: int = 100_000) -> bytes:
    return b"x = " + opening * depth + b"1" + closing * depth + b"\n"


VARIANTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "bad syntax": (lambda p: p.write_bytes(b"[store\npath = 'x'\n"), "invalid TOML: Expected ']'"),
    "duplicate table": (lambda p: p.write_bytes(b"[store]\nbusy_timeout_ms = 1\n[store]\nbusy_timeout_ms = 2\n"),
                        "Cannot declare ('store',) twice (at line 3"),
    "duplicate key": (lambda p: p.write_bytes(b"[monitor]\nbatch_size = 1\nbatch_size = 2\n"),
                      "Cannot overwrite a value (at line 3"),
    "wrong type": (lambda p: p.write_bytes(b"[monitor]\nflush_interval = 'fast'\n"),
                   "[monitor]: flush_interval must be float, got str 'fast'"),
    "a date for a number": (lambda p: p.write_bytes(b"[retention]\ndays = 1979-05-27\n"), "days must be float"),
    "unknown key": (lambda p: p.write_bytes(b"[monitor]\nflush_intervall = 1.0\n"), "unknown key 'flush_intervall'"),
    "unknown section": (lambda p: p.write_bytes(b"[monitr]\n"), "unknown section [monitr]"),
    "a section that is not a table": (lambda p: p.write_bytes(b"[[monitor]]\nbatch_size = 1\n"),
                                      "monitor must be a table"),
    "BOM then a wrong type": (lambda p: p.write_bytes(b"\xef\xbb\xbf[monitor]\nbatch_size = 'x'\n"),
                              "batch_size must be int"),
    "binary garbage": (lambda p: p.write_bytes(bytes(range(256)) * 16), "not UTF-8 text (byte 128)"),
    "a NUL byte": (lambda p: p.write_bytes(b"[monitor]\nbatch_size = 1\x00\n"), "invalid TOML"),
    "invalid UTF-8": (lambda p: p.write_bytes(b"[monitor]\n# caf\xe9\n"), "not UTF-8 text (byte 15)"),
    "UTF-16": (lambda p: p.write_bytes("[monitor]\nbatch_size = 1\n".encode("utf-16")), "UTF-16 text"),
    "a directory": (lambda p: p.mkdir(), "is a directory"),
    "missing": (lambda p: None, "cannot read config: No such file"),
    "a symlink loop": (lambda p: p.symlink_to(p), "cannot read config: Too many levels of symbolic links"),
    "huge": (lambda p: p.write_bytes(b"#" + b"x" * MAX_FILE_BYTES + b"\n"), "larger than 1 MiB"),
    "deeply nested arrays": (lambda p: p.write_bytes(_nested(b"[", b"]")), "nested too deeply"),
    "deeply nested inline tables": (lambda p: p.write_bytes(_nested(b"{a=", b"}")), "nested too deeply"),
    "deeply nested table names": (lambda p: p.write_bytes(b"[" + b".".join([b"a"] * 5000) + b"]\nx = 1\n"),
                                  "unknown section [a]"),
    "an integer beyond any sense": (lambda p: p.write_bytes(b"[monitor]\nmax_buffer = 99999999999999999999999\n"),
                                    "max_buffer must be at most"),
    "a megabyte value": (lambda p: p.write_bytes(b'[monitor]\nhost_plugin = "' + b"a" * 900_000 + b'"\n'),
                         "(900,002 characters)"),
    "escape sequences in a key": (lambda p: p.write_bytes(b'[monitor]\n"\\u001b]52;c;AAAA\\u0007" = 1\n'),
                                  "unknown key '\\x1b]52;c;AAAA\\x07'"),
}


def pmon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PMON_CONFIG", "PMON_DB")}
    return subprocess.run([sys.executable, "-m", "pmon", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120, errors="replace")


def assert_one_line(result: subprocess.CompletedProcess[str], file: Path, expected: str, variant: str = "") -> None:
    shown = f"{variant}: {result.args}: exit {result.returncode}\n{result.stderr[-3000:]}"
    assert result.returncode == 2, shown
    assert "Traceback" not in result.stderr, shown
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pmon: {file}: "), shown
    assert expected in lines[0], shown
    assert len(lines[0]) < LONGEST_LINE + len(str(file)), shown
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr


DRIVER = """
import contextlib, io, json, sys, traceback
from pmon.cli import main
results = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(args, prog_name="pmon")
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc()
            code = "raised"
    results.append((code, err.getvalue()))
print(json.dumps(results))
"""
"""Runs many `pmon` command lines in one process (each as click runs it), so every variant meets every command."""


def run_many(command_lines: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("PMON_CONFIG", "PMON_DB")}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(command_lines)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    return [subprocess.CompletedProcess(args, code, "", stderr)
            for args, (code, stderr) in zip(command_lines, json.loads(done.stdout.splitlines()[-1]))]


def test_a_malformed_config_is_one_line_from_every_command(tmp_path: Path) -> None:
    lines, expectations = [], []
    for number, (variant, (make, expected)) in enumerate(VARIANTS.items()):
        folder = tmp_path / f"v{number}"
        folder.mkdir()
        file = folder / "pmon.toml"
        make(file)
        for command in COMMANDS:
            lines.append(["--db", str(folder / "pmon.db"), *(arg.format(file=file) for arg in command)])
            expectations.append((variant, file, expected))
    for (variant, file, expected), result in zip(expectations, run_many(lines, tmp_path)):
        assert_one_line(result, file, expected, variant)
        assert not (file.parent / "pmon.db").exists(), f"{variant}: a command went on with a broken config"


@pytest.mark.parametrize("variant", ["bad syntax", "binary garbage", "deeply nested arrays", "a directory"])
def test_as_real_processes(tmp_path: Path, variant: str) -> None:
    make, expected = VARIANTS[variant]
    file = tmp_path / "pmon.toml"
    make(file)
    commands = [["--db", str(tmp_path / "pmon.db"), *(arg.format(file=file) for arg in command)]
                for command in COMMANDS]
    with ThreadPoolExecutor(len(commands)) as pool:
        for result in pool.map(lambda command: pmon(*command, cwd=tmp_path), commands):
            assert_one_line(result, file, expected, variant)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_monitor_raises_config_error_from_its_first_record(tmp_path: Path, variant: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make, expected = VARIANTS[variant]
    file = tmp_path / "pmon.toml"
    make(file)
    monkeypatch.setenv("PMON_CONFIG", str(file))
    monkeypatch.delenv("PMON_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        Monitor().record_metric(plugin_id="billing", metric_type="cpu_usage", value=1.0)
    message = str(raised.value)
    assert message.startswith(f"{file}: ") and expected in message and "\n" not in message


def test_a_device_that_never_ends_is_refused_after_a_megabyte(tmp_path: Path) -> None:
    result = pmon("config", "check", "/dev/zero", cwd=tmp_path)
    assert_one_line(result, Path("/dev/zero"), "larger than 1 MiB")


def test_an_empty_file_or_a_bom_alone_means_the_defaults(tmp_path: Path) -> None:
    for name, content in (("empty.toml", b""), ("bom.toml", b"\xef\xbb\xbf"), ("comments.toml", b"# nothing\n")):
        file = tmp_path / name
        file.write_bytes(content)
        result = pmon("config", "check", str(file), cwd=tmp_path)
        assert result.returncode == 0 and result.stdout.startswith(f"{file}: ok"), result.stderr


def test_an_unreadable_config_is_one_line_for_a_user_who_cannot_read_it(tmp_path: Path) -> None:
    user = other_user()
    if user is None:
        pytest.skip("no unprivileged user to run as (root reads every file)")
    tmp_path.chmod(0o755)
    file = tmp_path / "pmon.toml"
    file.write_text("[monitor]\nbatch_size = 10\n")
    file.chmod(0o200)
    db = tmp_path / "never.db"
    commands = [[arg.format(file=file) for arg in command] for command in COMMANDS]
    probe = f"""
import subprocess, sys
from pmon.config import ConfigError
from pmon.monitor import Monitor
for args in {commands!r}:
    r = subprocess.run([sys.executable, "-m", "pmon", "--db", {str(db)!r}, *args], capture_output=True, text=True)
    print(r.returncode, repr(r.stderr))
try:
    Monitor({str(db)!r}, config=None).record_metric(plugin_id="p", metric_type="cpu_usage", value=1)
except ConfigError as exc:
    print("raised", repr(str(exc)))
"""
    result = run_as(user, probe, env={"PMON_CONFIG": str(file)}, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    *commands, monitor = result.stdout.splitlines()
    assert len(commands) == len(COMMANDS)
    for line in commands:
        code, stderr = line.split(" ", 1)
        assert code == "2" and eval(stderr) == f"pmon: {file}: cannot read config: Permission denied\n", line  # noqa: S307
    assert monitor == f"raised {str(f'{file}: cannot read config: Permission denied')!r}"
    assert not db.exists()


def test_a_good_config_after_a_bad_one_records(tmp_path: Path) -> None:
    """The refusal holds nothing: fix the file and the same commands work."""
    file = tmp_path / "pmon.toml"
    file.write_bytes(b"[monitor\n")
    db = tmp_path / "pmon.db"
    assert pmon("--db", str(db), "--config", str(file), "status", cwd=tmp_path).returncode == 2
    file.write_bytes(b"[monitor]\nflush_interval = 0.1\n")
    recorded = pmon("--db", str(db), "--config", str(file), "record", "metric", "billing", "cpu_usage", "5",
                    cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM plugin_metrics").fetchone()[0] == 1

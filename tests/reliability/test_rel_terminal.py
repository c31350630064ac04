"""Hostile recorded text through the CLI and the daemon's log: nothing reaches the terminal raw, everything shows.

Every text field a plugin (or another writer of the database, or pmon.toml)
controls carries terminal escapes (CSI, OSC 0 / 8 / 52), C1 controls, ``\\r``,
BEL, backspace, bidi overrides, zero-width characters, line separators and
Rich / Textual markup. Each command's raw stdout bytes are read: the only
escape sequences allowed are pmon's own SGR colours, and only on a terminal
(a pty); every hostile character must be there as a visible escape.
The console gets the same store in test_rel_console.py.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from pmon import LogLevel, Monitor, Severity
from pmon.analysis.alerting import AlertState, Transition
from pmon.collect.service import PlainFormatter
from pmon.store import alert_store
from pmon.store.schema import open_writer

pytestmark = pytest.mark.reliability

PMON = [sys.executable, "-m", "pmon"]

HOSTILE = (
    "\x1b[31mRED\x1b[0m \x1b[2J \x1b[?1049h \x1b]0;PWNED-TITLE\x07 \x1b]8;;http://evil.example/\x1b\\LINK\x1b]8;;\x1b\\ "
    "\x1b]52;c;cHduZWQ=\x07 \x9b31m \x85 \x90q\x9c \rOVER \x07 \x08\x08 \u202eEVIL\u202c \u2066iso\u2069 \u2067\u2068 "
    "zw\u200b\u200c\u200d\ufeff LS\u2028PS\u2029 [@click=app.quit]CLICK[/] [link=http://evil.example]L[/link] "
    "[bold]B[/bold] [/] $var [on red]R[/]"
)
"""What a plugin might record: escapes, controls, bidi, invisible characters and markup."""

HOSTILE_ID = "evil\x1b]0;ID-TITLE\x07\x9b\u202e\u200b[@click=app.quit]q[/][bold]$x"
"""A plugin id as another writer could leave it (pmon's own recording API refuses it)."""

HOSTILE_RULE = "rule\x1b[2J\x1b]52;c;cnVsZQ==\x07\u2066[@click=app.quit]r[/]"
"""An alert rule name in the store (pmon.toml refuses it; an older pmon or another writer may not)."""

ESCAPED = [
    "\\x1b[31mRED\\x1b[0m", "\\x1b[2J", "\\x1b[?1049h", "\\x1b]0;PWNED-TITLE\\x07",
    "\\x1b]8;;http://evil.example/\\x1b\\LINK", "\\x1b]52;c;cHduZWQ=\\x07", "\\x9b31m", "\\x85", "\\x90q\\x9c",
    "\\rOVER", "\\x07 \\x08\\x08", "\\u202eEVIL\\u202c", "\\u2066iso\\u2069", "\\u2067\\u2068",
    "zw\\u200b\\u200c\\u200d\\ufeff", "LS\\u2028PS\\u2029", "[@click=app.quit]CLICK[/]",
    "[link=http://evil.example]L[/link]", "[bold]B[/bold] [/] $var [on red]R[/]",
]
"""How every part of HOSTILE must appear: each character visible, the markup as typed."""

ESCAPED_ID = "evil\\x1b]0;ID-TITLE\\x07\\x9b\\u202e\\u200b[@click=app.quit]q[/][bold]$x"
ESCAPED_RULE = "rule\\x1b[2J\\x1b]52;c;cnVsZQ==\\x07\\u2066[@click=app.quit]r[/]"

NOW = time.time()

TRACEBACK = ("Traceback (most recent call last):\n  File \"/srv/app.py\", line 3, in run\n    charge()\n"
             f"ValueError: {HOSTILE}\n")


def hostile_store(path: Path) -> Path:
    """A real store where every recorded text field carries HOSTILE: through pmon's recording API (plugin
    ``alpha``) and as another writer could leave rows (plugin HOSTILE_ID, alert rule HOSTILE_RULE)."""
    monitor = Monitor(path, flush_interval=0.05)
    try:
        for i in range(30):
            t = NOW - 300 + i * 10
            monitor.record_metric("alpha", "cpu_usage", 10 + i % 7, timestamp=t)
            monitor.record_metric("alpha", "memory_usage", 200 + i, timestamp=t)
            monitor.record_metric("alpha", "response_time", 40 + i, timestamp=t)
        for n in range(2):
            monitor.create_snapshot("alpha", {
                "cpu_usage": 20.0 + 10 * n, "memory_usage": 200.0, "response_time": 40.0,
                "custom_metrics": {HOSTILE: f"{HOSTILE} {n}", "queue.depth": 3 + n, "hostile_number": {HOSTILE: n}},
            }, timestamp=NOW - 200 + n * 100)
        # a lone surrogate is stored as U+FFFD by the recording API; the rest stays as recorded
        monitor.record_log("alpha", LogLevel.ERROR, HOSTILE + " \ud800", {"note": HOSTILE, HOSTILE: [HOSTILE]},
                           TRACEBACK, timestamp=NOW - 60)
        monitor.record_event("alpha", "deploy", HOSTILE, Severity.HIGH, {"note": HOSTILE, HOSTILE: HOSTILE},
                             timestamp=NOW - 50)
        monitor.flush()
    finally:
        monitor.stop_monitoring()
    conn = open_writer(path)
    try:
        conn.execute("INSERT INTO plugins (id, first_seen, last_seen) VALUES (?, ?, ?)", (HOSTILE_ID, NOW - 90, NOW - 5))
        series = conn.execute("INSERT INTO metric_series (plugin_id, metric_type) VALUES (?, 'cpu_usage')",
                              (HOSTILE_ID,)).lastrowid
        conn.executemany("INSERT INTO metric_points (series_id, ts_ms, value) VALUES (?, ?, ?)",
                         [(series, int((NOW - 60 + i * 10) * 1000), 5.0 + i) for i in range(6)])
        conn.execute("INSERT INTO plugin_logs (plugin_id, level, message, timestamp, context, traceback) "
                     "VALUES (?, 'critical', ?, ?, ?, ?)",
                     (HOSTILE_ID, HOSTILE, NOW - 30, json.dumps({HOSTILE: HOSTILE}), TRACEBACK))
        conn.execute("INSERT INTO performance_snapshots (plugin_id, timestamp, cpu_usage, memory_usage, response_time,"
                     " error_rate, request_count, throughput, disk_io, network_io, custom_metrics) "
                     "VALUES (?, ?, 1, 2, 3, 0, 10, 1, '{}', '{}', ?)",
                     (HOSTILE_ID, NOW - 20, json.dumps({HOSTILE: HOSTILE})))
        change = Transition(HOSTILE_RULE, HOSTILE_ID, "cpu_usage", AlertState.FIRING, AlertState.PENDING, 97.0, 90.0,
                            80.0, ">", "high", NOW - 40, NOW - 10, HOSTILE)
        (alert_id,) = alert_store.save_transitions(conn, [change])
        conn.execute("INSERT INTO plugin_events (plugin_id, event_type, description, timestamp, severity, data, "
                     "category) VALUES (?, 'alert_firing', ?, ?, 'high', ?, 'alert')",
                     (HOSTILE_ID, HOSTILE, NOW - 10, json.dumps(change.event_data(alert_id))))
        conn.execute("INSERT INTO alert_silences (rule, plugin, until, created_at, reason) VALUES (?, ?, ?, ?, ?)",
                     (HOSTILE_RULE, HOSTILE_ID, NOW + 3600, NOW - 5, HOSTILE))
        conn.commit()
    finally:
        conn.close()
    return path


# -- what may reach the terminal ------------------------------------------------------------------------

_SGR = re.compile(r"\x1b\[[0-9;]*m")


def terminal_problems(output: bytes, *, colour: bool) -> list[str]:
    """Why ``output`` is unsafe for a terminal: undecodable bytes, or a control / format character or
    escape sequence pmon did not mean. With ``colour`` pmon's own SGR sequences (``ESC [ ... m``) are allowed
    and nothing else; without, no ESC at all."""
    try:
        text = output.decode("utf-8")
    except UnicodeDecodeError as exc:  # a raw 8-bit C1 byte (0x9b...) is not UTF-8
        return [f"not UTF-8 at byte {exc.start}: {output[max(0, exc.start - 20):exc.start + 20]!r}"]
    if colour:
        text = _SGR.sub("", text)
    problems = []
    for index, char in enumerate(text):
        if char == "\n":
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            problems.append(f"raw {char!r} at {index}: {text[max(0, index - 30):index + 30]!r}")
    return problems


def missing(output: str, wanted: list[str]) -> list[str]:
    return [piece for piece in wanted if piece not in output]


def pmon(db: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``pmon --db db ARGS`` piped, its stdout and stderr as raw bytes."""
    return subprocess.run([*PMON, "--db", str(db), *args], capture_output=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "", **(env or {})})


def pmon_on_a_terminal(db: Path, *args: str, timeout: float = 60) -> bytes:
    """What ``pmon --db db ARGS`` writes to a terminal (a pty in raw mode: the bytes exactly as written)."""
    import tty

    leader, follower = pty.openpty()
    tty.setraw(follower)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    process = subprocess.Popen([*PMON, "--db", str(db), *args], stdin=follower, stdout=follower,
                               stderr=subprocess.DEVNULL, env={**env, "TERM": "xterm-256color"}, close_fds=True)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
    finally:
        os.close(leader)
        process.wait(timeout=10)
    assert process.returncode == 0, b"".join(chunks)[-2000:]
    return b"".join(chunks)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile_store(tmp_path_factory.mktemp("terminal") / "pmon.db")


# -- pmon logs / pmon events ----------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["logs", "events"])
def test_piped_logs_and_events_show_every_hostile_character_escaped_and_no_escape_at_all(store: Path,
                                                                                         command: str) -> None:
    result = pmon(store, command)
    assert result.returncode == 0, result.stderr
    assert terminal_problems(result.stdout, colour=False) == []
    assert b"\x1b" not in result.stdout
    out = result.stdout.decode()
    assert missing(out, ESCAPED) == []
    assert ESCAPED_ID in out
    if command == "logs":  # the message, its context as JSON, and the traceback line quoting the data
        assert "    ValueError: \\x1b[31mRED" in out
        assert "\ufffd" in out  # the lone surrogate, stored as U+FFFD by the recording API
    else:
        assert "[alert] alert_firing" in out


@pytest.mark.parametrize("command", ["logs", "events"])
def test_on_a_terminal_the_only_escapes_are_pmons_own_colours_around_the_level(store: Path, command: str) -> None:
    raw = pmon_on_a_terminal(store, command)
    assert terminal_problems(raw, colour=True) == []
    text = raw.decode()
    colours = _SGR.findall(text)
    assert colours, "the colour path was not taken: is stdout a terminal?"
    for line in text.splitlines():
        if "\x1b" in line:  # a level / severity word, and only that, is coloured
            assert re.match(r"^\S+ \S+ (\x1b\[[0-9;]*m)+(DEBUG|INFO|WARNING|ERROR|CRITICAL|LOW|MEDIUM|HIGH)\s*"
                            r"(\x1b\[0m) ", line), line
            assert len(_SGR.findall(line)) <= 3, line
    piped = pmon(store, command).stdout.decode()
    assert _SGR.sub("", text).replace("\r\n", "\n") == piped  # the same words, only coloured


@pytest.mark.parametrize("command", ["logs", "events"])
def test_json_lines_carry_the_recorded_text_exactly_and_no_raw_control(store: Path, command: str) -> None:
    result = pmon(store, command, "--json")
    assert result.returncode == 0, result.stderr
    assert terminal_problems(result.stdout, colour=False) == []
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    texts = [row["message"] if command == "logs" else row["description"] for row in rows]
    assert HOSTILE in texts  # the very characters, for a program to read
    assert HOSTILE_ID in {row["plugin_id"] for row in rows}


def test_following_shows_a_hostile_line_recorded_while_it_runs_escaped(tmp_path: Path) -> None:
    db = tmp_path / "follow.db"
    hostile_store(db)
    process = subprocess.Popen([*PMON, "--db", str(db), "logs", "-f", "--limit", "1"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        monitor = Monitor(db, flush_interval=0.05)
        monitor.record_log("alpha", LogLevel.WARNING, f"followed {HOSTILE}")
        monitor.flush()
        monitor.stop_monitoring()
        out = b""
        deadline = time.monotonic() + 15
        while b"followed" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                out += os.read(process.stdout.fileno(), 65536)
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=10)
    out += rest
    assert process.returncode == 0
    assert terminal_problems(out, colour=False) == []
    assert missing(out.decode(), [f"followed {ESCAPED[0]}", *ESCAPED]) == []


# -- the other commands ---------------------------------------------------------------------------------

COMMANDS = {
    "plugins": (["plugins"], [ESCAPED_ID]),
    "snapshots list": (["snapshots", "list"], [ESCAPED_ID]),
    "snapshots show": (["snapshots", "show", "1"], ESCAPED),
    "snapshots diff": (["snapshots", "diff", "1", "2"], ESCAPED),
    "alerts": (["alerts"], [ESCAPED_RULE, ESCAPED_ID]),
    "analytics errors": (["analytics", "errors", "--since", "1h"], [ESCAPED_ID, "[@click=app.quit]CLICK[/]"]),
    "analytics baseline": (["analytics", "baseline", "alpha"], ESCAPED),
    "analytics trends": (["analytics", "trends", "--since", "1h"], ["evil\\x1b]0;ID-TI"]),
    "status": (["status"], [ESCAPED_ID]),
}
"""Each command, and the escaped text it must show."""

@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_printing_recorded_text_shows_it_escaped(store: Path, name: str) -> None:
    args, wanted = COMMANDS[name]
    result = pmon(store, *args)
    assert result.returncode in ((0, 1) if name == "analytics baseline" else (0,)), result.stderr  # 1: regressed
    assert terminal_problems(result.stdout, colour=False) == []
    assert terminal_problems(result.stderr, colour=False) == []
    assert missing(result.stdout.decode(), wanted) == []


def test_json_output_of_the_commands_escapes_every_control(store: Path) -> None:
    for args in (["status", "--json"], ["plugins", "--json"], ["alerts", "--json"], ["snapshots", "show", "1", "--json"]):
        result = pmon(store, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert terminal_problems(result.stdout, colour=False) == [], args
        json.loads(result.stdout)


def test_acknowledging_an_alert_with_a_hostile_rule_says_so_escaped(tmp_path: Path) -> None:
    db = hostile_store(tmp_path / "ack.db")
    result = pmon(db, "alerts", "ack", "1", "--by", "ops")
    assert result.returncode == 0, result.stderr
    assert terminal_problems(result.stdout, colour=False) == []
    assert ESCAPED_RULE in result.stdout.decode()


BAD_CONFIGS = {
    "plugin name": '[plugins."web\\u001b]0;CFG-TITLE\\u0007\\u202e"]\nprocess_name = "web"\n',
    "alert name": ('[[alerts]]\nname = "r\\u001b]0;CFG-TITLE\\u0007\\u202e"\nmetric = "cpu_usage"\n'
                   'comparison = ">"\nthreshold = 1\n'),
}


@pytest.mark.parametrize("text", [
    BAD_CONFIGS["plugin name"],
    BAD_CONFIGS["alert name"],
], ids=list(BAD_CONFIGS))
def test_a_pmon_toml_error_quoting_a_hostile_name_is_one_escaped_line(tmp_path: Path, text: str) -> None:
    config = tmp_path / "pmon.toml"
    config.write_text(text)
    result = subprocess.run([*PMON, "--config", str(config), "--db", str(tmp_path / "x.db"), "config", "check"],
                            capture_output=True, timeout=60)
    assert result.returncode == 2
    assert terminal_problems(result.stderr, colour=False) == []
    assert "\\x1b]0;CFG-TITLE\\x07" in result.stderr.decode()


# -- the daemon's own log -------------------------------------------------------------------------------

def test_the_daemon_log_escapes_pidfiles_process_arguments_and_pmon_toml_errors(tmp_path: Path) -> None:
    """A real ``pmon collect --foreground``: a pidfile full of escapes and a forged log line, a matched
    process whose arguments carry escapes, then a SIGHUP reload of a pmon.toml naming a rule with escapes
    and a newline. Every line of its log is one of its own lines, every hostile character escaped."""
    forged = "2099-01-01T00:00:00Z INFO pmon.collect: forged"
    (tmp_path / "web.pid").write_text(f"\x1b]0;PID-TITLE\x07\n{forged}\u202e", encoding="utf-8")
    config = tmp_path / "pmon.toml"
    config.write_text('[collector]\nsample_interval = 0.2\nsystem = false\nself_monitoring = false\n'
                      '[plugins.web]\npidfile = "web.pid"\n'
                      '[plugins.worker]\ncmdline = "pmon-hostile-worker"\n')
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "pmon-hostile-worker",
                               f"\x1b]0;ARGV-TITLE\x07\x9b\u202e{HOSTILE}"])
    log = tmp_path / "daemon.err"
    try:
        with open(log, "wb") as err:
            daemon = subprocess.Popen([*PMON, "--config", str(config), "--db", str(tmp_path / "d.db"), "collect",
                                       "--foreground", "-v"], stdout=subprocess.DEVNULL, stderr=err)
        try:
            _wait_for(log, b"worker: found running", daemon)
            with open(config, "a") as file:
                file.write('[[alerts]]\nname = "r\\u001b]0;RELOAD-TITLE\\u0007\\u0085\\n' + forged + '"\n'
                           'metric = "cpu_usage"\ncomparison = ">"\nthreshold = 1\n')
            daemon.send_signal(signal.SIGHUP)
            _wait_for(log, b"reload failed", daemon)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    finally:
        worker.kill()
        worker.wait()
    assert daemon.returncode == 0
    raw = log.read_bytes()
    assert terminal_problems(raw, colour=False) == []
    text = raw.decode()
    own_line = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) pmon\.[a-z.]+: ")
    for line in text.splitlines():
        assert own_line.match(line) and not line.startswith("2099"), line
    assert "found '\\x1b]0;PID-TITLE\\x07\\n2099" in text
    assert "(r\\x1b]0;RELOAD-TITLE\\x07\\x85\\n2099-01-01T00:00:00Z INFO pmon.collect: forged)" in text


def _wait_for(log: Path, marker: bytes, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while marker not in log.read_bytes():
        assert process.poll() is None, log.read_bytes()[-2000:]
        assert time.monotonic() < deadline, f"{marker!r} not logged: {log.read_bytes()[-2000:]!r}"
        time.sleep(0.1)


def test_a_log_record_quoting_outside_text_stays_one_line_and_its_traceback_keeps_its_lines() -> None:
    """E.g. the API logs a failed route with the request's decoded path, which may hold %0a and %1b."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.setFormatter(PlainFormatter())
    logger = logging.getLogger("pmon.reliability.terminal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("route failed")
        except RuntimeError:
            logger.exception("API request %s %s failed", "GET", "/api/x\n2099-01-01T00:00:00Z INFO pmon.api: forged\x1b[2J")
    finally:
        logger.removeHandler(handler)
    (record,) = records
    first, *rest = record.split("\n")
    assert first.endswith("API request GET /api/x\\n2099-01-01T00:00:00Z INFO pmon.api: forged\\x1b[2J failed")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "RuntimeError: route failed"

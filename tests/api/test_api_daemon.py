"""`pmon collect --api`: the daemon serves, and what it acknowledged is in the store after SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pmon.store import queries
from pmon.store.schema import open_reader

PREFIX = "/api/advanced-monitoring"


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    """``pmon ARGS collect --foreground``, once it logs where its API listens."""
    proc = subprocess.Popen([sys.executable, "-m", "pmon", *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"API listening on (http://\S+)", line)
        if found:
            return proc, found.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the daemon did not announce its API (exit {proc.poll()})")


def _post(url: str, body: object) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status


def test_records_acknowledged_by_the_daemon_are_stored_when_it_stops(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    proc, url = _start("--db", str(db), "collect", "--foreground", "--api", "127.0.0.1:0")
    try:
        body = {"metrics": [{"plugin_id": "remote", "metric_type": "cpu_usage", "value": i} for i in range(500)]}
        assert _post(f"{url}{PREFIX}/batch", body) == 202  # queued, not yet committed
        with urllib.request.urlopen(f"{url}{PREFIX}/status", timeout=10) as resp:
            status = json.loads(resp.read())
        assert status["daemon"]["pid"] == proc.pid and status["daemon"]["sample_interval"] == 2.0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    conn = open_reader(db)
    points = queries.series(conn, "remote", "cpu_usage", time.time() - 600, time.time() + 1, points=1)
    assert sum(p.count for p in points) == 500
    conn.close()


def test_api_settings_come_from_pmon_toml_and_bad_ones_stop_the_start(tmp_path: Path) -> None:
    config = tmp_path / "pmon.toml"
    config.write_text('[api]\nenabled = true\nlisten = "127.0.0.1:0"\n')
    proc, url = _start("--config", str(config), "--db", str(tmp_path / "d.db"), "collect", "--foreground")
    try:
        with urllib.request.urlopen(f"{url}{PREFIX}/plugins", timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    config.write_text('[api]\nlisten = "nowhere"\n')
    result = subprocess.run([sys.executable, "-m", "pmon", "--config", str(config), "config", "check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "listen" in result.stderr and "port" in result.stderr
    result = subprocess.run([sys.executable, "-m", "pmon", "--db", str(tmp_path / "d.db"), "collect", "--once",
                             "--api"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--once" in result.stderr


def test_a_port_in_use_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "pmon", "--db", str(tmp_path / "d.db"), "collect",
                                 "--foreground", "--api", f"127.0.0.1:{port}"], capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr

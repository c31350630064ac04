"""A simulated plugin host for `pmon demo`: eight plugins, each with a story to find.

Everything is recorded through the public ``Monitor`` API, exactly as a real
host application would, so the demo also exercises the recording path.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pmon.analysis.alert_rules import parse_rules
from pmon.analysis.detectors.backtest import replay
from pmon.analysis.runner import AnalysisThread, finding_event
from pmon.config import AnalysisConfig
from pmon.models import LogLevel, MetricType, Severity
from pmon.monitor import Monitor
from pmon.store.feed_queries import load_cursor
from pmon.store.schema import StoreError, open_reader

TICK_SECONDS = 1.0
SNAPSHOT_EVERY = 10.0
HISTORY_STEP = 20.0
FLAP_PERIOD = 300.0
"""mailer's cycle: up, then down for FLAP_DOWN seconds."""
FLAP_DOWN = 60.0
OUTAGE_EVERY = 1200.0
"""payments loses its provider (a critical event) this often, and once at the start."""


def default_demo_db() -> Path:
    """The demo's own database, so demo data never mixes with real data."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
    return Path(base) / "pmon" / "demo.db"


class PaymentDeclined(RuntimeError):
    """Raised inside the simulated payments plugin to produce real tracebacks."""


def _charge(card: str, amount: float) -> None:
    _authorise(card, amount)


def _authorise(card: str, amount: float) -> None:
    if amount > 900:
        raise PaymentDeclined(f"gateway timeout authorising {amount:.2f} on card ending {card[-4:]}")
    raise ConnectionResetError("connection reset by peer (gateway.example:443)")


def real_traceback(rng: random.Random) -> tuple[str, str]:
    """Raise and catch an exception in a few nested frames; return (message, traceback text)."""
    try:
        _charge(f"4000{rng.randint(1000, 9999)}", rng.choice([120.0, 950.0]))
    except Exception as exc:  # noqa: BLE001 - we want its traceback text
        return f"{type(exc).__name__}: {exc}", traceback.format_exc()
    raise AssertionError("unreachable")


@dataclass
class SimPlugin:
    """One simulated plugin: a name, a behaviour function, and its running state."""

    plugin_id: str
    behaviour: Callable[[SimPlugin, float, random.Random], dict[str, float]]
    memory_mb: float = 120.0
    down_until: float = 0.0
    requests: int = 0
    notes: dict[str, float] = field(default_factory=dict)


def healthy(p: SimPlugin, t: float, rng: random.Random) -> dict[str, float]:
    return {"cpu": 12 + 4 * math.sin(t / 300) + rng.gauss(0, 1.5), "mem": 180 + rng.gauss(0, 2),
            "rt": 40 + rng.gauss(0, 5), "err": 0.002, "tput": 55 + rng.gauss(0, 4)}


def latency_spikes(p: SimPlugin, t: float, rng: random.Random) -> dict[str, float]:
    spike = rng.random() < 0.08
    return {"cpu": 25 + (35 if spike else 0) + rng.gauss(0, 3), "mem": 420 + rng.gauss(0, 5),
            "rt": (900 + rng.expovariate(1 / 600)) if spike else 80 + rng.gauss(0, 10), "err": 0.01, "tput": 30}


LEAK_MB_PER_HOUR = 90.0
"""How fast image_resizer's memory grows: visible in a minute's sparkline, alarming over the 2 h history."""


def leaking(p: SimPlugin, t: float, rng: random.Random) -> dict[str, float]:
    start = p.notes.setdefault("leak_start", t)
    p.memory_mb = 150 + (t - start) / 3600 * LEAK_MB_PER_HOUR + rng.gauss(0, 0.3)
    return {"cpu": 18 + rng.gauss(0, 2), "mem": p.memory_mb, "rt": 60 + p.memory_mb / 50 + rng.gauss(0, 4),
            "err": 0.005, "tput": 20 + rng.gauss(0, 2)}


def throwing(p: SimPlugin, t: float, rng: random.Random) -> dict[str, float]:
    return {"cpu": 30 + rng.gauss(0, 4), "mem": 260 + rng.gauss(0, 3), "rt": 150 + rng.gauss(0, 30),
            "err": 0.08 + rng.random() * 0.05, "tput": 40 + rng.gauss(0, 5)}


def flapping(p: SimPlugin, t: float, rng: random.Random) -> dict[str, float]:
    return {"cpu": 8 + rng.gauss(0, 1), "mem": 90 + rng.gauss(0, 1), "rt": 35 + rng.gauss(0, 5),
            "err": 0.0, "tput": 12 + rng.gauss(0, 2)}


def bursty(p: SimPlugin, t: float, rng: random.Random) -> dict[str, float]:
    burst = (t // 30) % 4 == 0
    return {"cpu": (85 if burst else 20) + rng.gauss(0, 5), "mem": 600 + (150 if burst else 0) + rng.gauss(0, 10),
            "rt": (45 if burst else 12) + rng.gauss(0, 3), "err": 0.001, "tput": (2500 if burst else 300) + rng.gauss(0, 50)}


def rising_errors(p: SimPlugin, t: float, rng: random.Random) -> dict[str, float]:
    start = p.notes.setdefault("start", t)
    rate = min(0.5, 0.005 + (t - start) / 3600 * 0.04)
    return {"cpu": 22 + rng.gauss(0, 2), "mem": 310 + rng.gauss(0, 3), "rt": 95 + rate * 400 + rng.gauss(0, 8),
            "err": rate, "tput": 35 + rng.gauss(0, 3)}


def idle(p: SimPlugin, t: float, rng: random.Random) -> dict[str, float]:
    return {"cpu": 0.3 + abs(rng.gauss(0, 0.2)), "mem": 45, "rt": 5 + rng.gauss(0, 1), "err": 0.0,
            "tput": 0.05 if rng.random() < 0.05 else 0.0}


PLUGINS: list[tuple[str, Callable[[SimPlugin, float, random.Random], dict[str, float]]]] = [
    ("auth", healthy),
    ("search", latency_spikes),
    ("image_resizer", leaking),
    ("payments", throwing),
    ("mailer", flapping),
    ("ingest", bursty),
    ("recommender", rising_errors),
    ("backup", idle),
]


class DemoHost:
    """Drives the simulated plugins; ``tick(t)`` records one second of activity at time ``t``."""

    def __init__(self, monitor: Monitor, seed: int = 7) -> None:
        self.monitor = monitor
        self.rng = random.Random(seed)
        self.plugins = [SimPlugin(name, fn) for name, fn in PLUGINS]
        self.last_snapshot: dict[str, float] = {}

    def tick(self, t: float, *, chatty: bool = True) -> None:
        m, rng = self.monitor, self.rng
        for p in self.plugins:
            if p.plugin_id == "mailer":
                self._flap(p, t)
            if p.down_until > t:
                continue
            if not p.notes.get("started"):
                p.notes["started"] = t
                m.record_event(p.plugin_id, "startup", f"{p.plugin_id} started", Severity.INFO,
                               {"version": "1.4.2", "pid": 4000 + self.plugins.index(p)}, timestamp=t)
                m.record_log(p.plugin_id, LogLevel.INFO, f"{p.plugin_id} plugin loaded", {"version": "1.4.2"},
                             timestamp=t)
            v = p.behaviour(p, t, rng)
            v = {k: max(0.0, x) for k, x in v.items()}
            p.requests += int(v["tput"])
            m.record_metric(p.plugin_id, MetricType.CPU_USAGE, v["cpu"], timestamp=t)
            m.record_metric(p.plugin_id, MetricType.MEMORY_USAGE, v["mem"], timestamp=t)
            m.record_metric(p.plugin_id, MetricType.RESPONSE_TIME, v["rt"], timestamp=t)
            m.record_metric(p.plugin_id, MetricType.ERROR_RATE, v["err"], timestamp=t)
            m.record_metric(p.plugin_id, MetricType.THROUGHPUT, v["tput"], timestamp=t)
            if chatty:
                self._logs(p, t, v)
            if t - self.last_snapshot.get(p.plugin_id, 0) >= SNAPSHOT_EVERY:
                self.last_snapshot[p.plugin_id] = t
                m.create_snapshot(p.plugin_id, {
                    "cpu_usage": v["cpu"], "memory_usage": v["mem"], "response_time": v["rt"],
                    "error_rate": v["err"], "request_count": p.requests, "throughput": v["tput"],
                    "disk_io": {"read_bytes": int(rng.random() * 2e6), "write_bytes": int(rng.random() * 1e6)},
                    "network_io": {"rx_bytes": int(v["tput"] * 4096), "tx_bytes": int(v["tput"] * 2048)},
                    "custom_metrics": {"queue_length": rng.randint(0, 40)},
                }, timestamp=t)

    def _flap(self, p: SimPlugin, t: float) -> None:
        """mailer is down for the last FLAP_DOWN seconds of every FLAP_PERIOD, at any tick size."""
        down = t % FLAP_PERIOD >= FLAP_PERIOD - FLAP_DOWN
        if down and not p.notes.get("down"):
            p.notes["down"] = 1
            p.down_until = t - t % FLAP_PERIOD + FLAP_PERIOD
            self.monitor.record_event(p.plugin_id, "stopped", "mailer stopped: SMTP relay unreachable",
                                      Severity.HIGH, {"relay": "smtp.internal:25", "pid": 4242}, timestamp=t)
            self.monitor.record_log(p.plugin_id, LogLevel.CRITICAL, "worker exited with status 1",
                                    {"exit_code": 1, "relay": "smtp.internal:25"}, timestamp=t)
        elif not down and p.notes.get("down"):
            p.notes["down"] = 0
            self.monitor.record_event(p.plugin_id, "restarted", "mailer started again", Severity.INFO,
                                      {"pid": 4243 + int(t) % 1000}, timestamp=t)

    def _logs(self, p: SimPlugin, t: float, v: dict[str, float]) -> None:
        m, rng = self.monitor, self.rng
        if rng.random() < 0.3:
            m.record_log(p.plugin_id, LogLevel.DEBUG, f"handled {int(v['tput'])} requests",
                         {"window_s": 1}, timestamp=t)
        if rng.random() < 0.1:
            m.record_log(p.plugin_id, LogLevel.INFO, "health check ok", {"latency_ms": round(v["rt"], 1)}, timestamp=t)
        if p.plugin_id == "search" and v["rt"] > 800:
            m.record_log(p.plugin_id, LogLevel.WARNING, f"slow query took {v['rt']:.0f} ms",
                         {"query": "SELECT * FROM documents WHERE body MATCH ?", "shard": rng.randint(1, 8)}, timestamp=t)
        if p.plugin_id == "image_resizer" and rng.random() < 0.02:
            m.record_log(p.plugin_id, LogLevel.WARNING, f"resident memory {v['mem']:.0f} MB and growing",
                         {"cache_entries": int(v["mem"] * 12)}, timestamp=t)
        if p.plugin_id == "payments" and rng.random() < 0.15:
            message, tb = real_traceback(rng)
            m.record_log(p.plugin_id, LogLevel.ERROR, message,
                         {"order_id": f"ord_{rng.randint(10000, 99999)}", "retry": rng.randint(0, 3)}, tb, timestamp=t)
            if rng.random() < 0.2:
                m.record_event(p.plugin_id, "error", f"payment failed: {message}", Severity.MEDIUM,
                               {"provider": "gateway.example"}, timestamp=t)
        if p.plugin_id == "recommender" and rng.random() < v["err"]:
            m.record_log(p.plugin_id, LogLevel.ERROR, "model server returned 503",
                         {"model": "rank-v3", "error_rate": round(v["err"], 3)}, timestamp=t)
        if p.plugin_id == "ingest" and v["tput"] > 2000 and rng.random() < 0.2:
            m.record_event(p.plugin_id, "user_import", "bulk import started by ops", Severity.LOW,
                           {"rows": int(v["tput"] * 30)}, timestamp=t)
        self._alerts(p, t, v)
        if rng.random() < 0.002:
            m.record_event(p.plugin_id, "config_reload", "configuration reloaded", Severity.INFO,
                           {"changed": ["timeouts"]}, timestamp=t)

    def _alerts(self, p: SimPlugin, t: float, v: dict[str, float]) -> None:
        """Threshold alerts of the kind a host application raises itself (category alert)."""
        m = self.monitor
        if p.plugin_id == "image_resizer":
            step = int(v["mem"] // 50)
            if step > p.notes.setdefault("mem_step", step):
                p.notes["mem_step"] = step
                m.record_event(p.plugin_id, "alert_memory", f"resident memory passed {step * 50} MB",
                               Severity.HIGH if step * 50 >= 300 else Severity.MEDIUM,
                               {"rss_mb": round(v["mem"], 1), "limit_mb": 512}, timestamp=t)
        elif p.plugin_id == "payments" and t - p.notes.get("last_outage", float("-inf")) >= OUTAGE_EVERY:
            p.notes["last_outage"] = t
            m.record_event(p.plugin_id, "provider_error", "payment provider unreachable", Severity.CRITICAL,
                           {"error_code": "E001", "provider": "gateway.example", "failed_charges": 17}, timestamp=t)
        elif p.plugin_id == "search" and v["rt"] > 2500:
            m.record_event(p.plugin_id, "alert_latency", f"response time {v['rt']:.0f} ms over the 2500 ms limit",
                           Severity.CRITICAL, {"response_ms": round(v["rt"]), "limit_ms": 2500}, timestamp=t)
        elif p.plugin_id == "recommender":
            level = int(v["err"] * 20)  # every 5 points of error rate
            if level > p.notes.setdefault("err_level", level):
                p.notes["err_level"] = level
                m.record_event(p.plugin_id, "alert_error_rate", f"error rate passed {level * 5} %",
                               Severity.HIGH, {"error_rate": round(v["err"], 3), "threshold": level / 20},
                               timestamp=t)

    def prefill(self, hours: float, now: float) -> int:
        """Record ``hours`` of history (every HISTORY_STEP seconds, quieter logs) ending at ``now``."""
        steps = int(hours * 3600 / HISTORY_STEP)
        for i in range(steps):
            t = now - (steps - i) * HISTORY_STEP
            self.tick(t, chatty=self.rng.random() < 0.25)
        return steps


def run_demo(path: Path, *, duration: float | None = None, history_hours: float = 2.0,
             echo: Callable[[str], None] | None = print, parent_pid: int | None = None) -> dict[str, int]:
    """Pre-fill history, then simulate in real time for ``duration`` seconds (None: until stopped).

    ``echo`` None runs silently (the console's background host); with
    ``parent_pid`` the host stops when that process is gone, so a killed
    console never leaves a demo recording forever.
    """
    say = echo or (lambda _line: None)
    monitor = Monitor(path)
    host = DemoHost(monitor)
    say(f"pmon demo: recording {len(host.plugins)} simulated plugins into {path}")
    now = time.time()
    hours = min(history_hours, max(0.0, (now - _last_recorded(path)) / 3600))
    if hours * 3600 >= HISTORY_STEP:
        host.prefill(hours, now)
        monitor.flush()
        span = f"{hours:g} h" if hours >= 1 else f"{hours * 60:.0f} min"
        say(f"  pre-filled {span} of history: {_written(monitor)}")
        found = _record_history_findings(monitor, path, now - hours * 3600)
        if found is not None:
            say(f"  the detectors found {found} episodes in that history (recorded as alert events)")
    elif history_hours:
        say("  continuing the history already in this database")
    analysis = _start_analysis(monitor, path)
    started = time.monotonic()
    try:
        while duration is None or time.monotonic() - started < duration:
            if parent_pid is not None and os.getppid() != parent_pid:
                break
            host.tick(time.time())
            if echo is not None:
                status = monitor.status()
                echo(f"  {time.strftime('%H:%M:%S')}  written {_written(monitor)}  queue {status['queue_depth']}  "
                     f"drops {status['dropped']}  errors {status['write_errors']}")
            time.sleep(TICK_SECONDS)
    finally:
        analysis.stop()
        monitor.stop_monitoring()
        say(f"pmon demo: done, {_written(monitor)} in {path}")
        say(f"  look at it: pmon --db {path}")
    return monitor.status()["rows_written"]


DEMO_RULES = parse_rules([
    {"name": "payments_errors", "metric": "error_rate", "plugin": "payments", "comparison": ">", "threshold": 0.12,
     "for": "2m", "clear": 0.08, "severity": "high", "description": "payments error rate over 12 %"},
    {"name": "slow_responses", "metric": "response_time", "comparison": ">", "threshold": 800, "for": "1m",
     "clear": 300, "severity": "medium", "description": "responses slower than 800 ms"},
], "demo")
"""The demo's alert rules: the console's Events tab shows them firing and resolving."""


def _record_history_findings(monitor: Monitor, path: Path, since: float) -> int | None:
    """What the detectors find in the pre-filled history, recorded as if they had been watching live.

    Only on a database no analyser has seen (None otherwise): a continuing
    demo's gap is caught up by the live analysis from its stored cursor.
    """
    monitor.flush()
    conn = open_reader(path)
    try:
        if load_cursor(conn) is not None:
            return None
        findings = list(replay(conn, monitor.config.detectors, since=since - 0.001))
    finally:
        conn.close()
    for finding in findings:
        plugin_id, event_type, description, severity, data = finding_event(finding)
        monitor.record_event(plugin_id, event_type, description, severity, data, timestamp=finding.end or finding.start)
    monitor.flush()
    return sum(1 for f in findings if f.end is None)


def _start_analysis(monitor: Monitor, path: Path) -> AnalysisThread:
    """Live detectors and the demo's rules, every 5 s, continuing from the history (nothing announced twice)."""
    config = dataclasses.replace(monitor.config, alerts=DEMO_RULES,
                                 analysis=AnalysisConfig(interval=5.0, warmup=3 * 3600.0))
    thread = AnalysisThread(monitor, path, config, yield_to_daemon=True)
    thread.start()
    return thread


def start_background_host(path: Path, history_hours: float) -> subprocess.Popen[bytes]:
    """Run the simulated host in a child process (its own GIL) recording into ``path``, silently.

    The console stops it with SIGTERM when it quits; the child also stops by
    itself if the console dies without a chance to.
    """
    command = [sys.executable, "-m", "pmon", "--db", str(path), "demo", "--headless", "--quiet",
               "--history", str(history_hours), "--parent-pid", str(os.getpid())]
    errors = tempfile.TemporaryFile()  # a file, not a pipe: a pipe nobody reads would block the child
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=errors, start_new_session=True)
    child.stderr_file = errors  # type: ignore[attr-defined]
    return child


def stop_background_host(child: subprocess.Popen[bytes], timeout: float = 5.0) -> str:
    """Stop the child host cleanly (it flushes on SIGTERM) and return what it wrote to stderr."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    errors = child.stderr_file  # type: ignore[attr-defined]
    errors.seek(0)
    text = errors.read().decode(errors="replace").strip()
    errors.close()
    return text


def _last_recorded(path: Path) -> float:
    """When the demo database last got a metric (0 when new): a second `pmon demo` continues the history
    instead of recording a second copy of the same two hours over the first."""
    try:
        conn = open_reader(path)
    except StoreError:
        return 0.0
    try:
        return conn.execute("SELECT coalesce(max(last_seen), 0) FROM plugins").fetchone()[0]
    except sqlite3.Error:
        return 0.0
    finally:
        conn.close()


def _written(monitor: Monitor) -> str:
    rows = monitor.status()["rows_written"]
    return ", ".join(f"{v:,} {k}" for k, v in rows.items())

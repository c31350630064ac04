"""The daemon's own CPU when it watches many processes: a real `pmon collect` against real children.

The baseline is a Python process that wakes on the same schedule and does
nothing: the cost of merely being alive and ticking, measured in the same run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SLEEPER = "import time\nwhile True: time.sleep(3600)"
TICKER = "import time\nwhile True: time.sleep({interval})"


@dataclass(frozen=True)
class DaemonCpu:
    """% of one core used by the daemon and by the idle ticker, medians over windows."""

    daemon_percent: float
    ticker_percent: float
    processes: int
    plugins: int
    interval: float
    windows: list[float]


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def bench_daemon_cpu(processes: int = 100, plugins: int = 100, interval: float = 1.0, warmup: float = 6.0,
                     windows: int = 5, window_seconds: float = 6.0) -> DaemonCpu:
    """Spawn ``processes`` sleepers in ``plugins`` plugins (matched by cmdline), run the daemon, measure its CPU."""
    if plugins > processes or plugins < 1:
        raise ValueError(f"plugins: must be between 1 and processes ({processes}), got {plugins}")
    children: list[subprocess.Popen[bytes]] = []
    daemon = ticker = None
    with tempfile.TemporaryDirectory(prefix="pmon-bench-daemon-") as tmp:
        try:
            for i in range(processes):
                children.append(subprocess.Popen([sys.executable, "-c", SLEEPER, f"pmon-bench-p{i % plugins}-x"]))
            tables = [f'[plugins.p{n}]\ncmdline = "pmon-bench-p{n}-x"\n' for n in range(plugins)]
            config = Path(tmp) / "pmon.toml"
            config.write_text(f"[collector]\nsample_interval = {interval}\nsnapshot_interval = 60.0\n"
                              + "\n".join(tables))
            daemon = subprocess.Popen([sys.executable, "-m", "pmon", "--db", str(Path(tmp) / "pmon.db"),
                                       "--config", str(config), "collect", "--foreground"],
                                      stderr=subprocess.DEVNULL)
            ticker = subprocess.Popen([sys.executable, "-c", TICKER.format(interval=interval)])
            time.sleep(warmup)
            watched, idle = psutil.Process(daemon.pid), psutil.Process(ticker.pid)
            daemon_samples, ticker_samples = [], []
            for _ in range(windows):
                d0, t0, w0 = _cpu_seconds(watched), _cpu_seconds(idle), time.monotonic()
                time.sleep(window_seconds)
                wall = time.monotonic() - w0
                daemon_samples.append((_cpu_seconds(watched) - d0) / wall * 100)
                ticker_samples.append((_cpu_seconds(idle) - t0) / wall * 100)
            return DaemonCpu(statistics.median(daemon_samples), statistics.median(ticker_samples), processes,
                             plugins, interval, daemon_samples)
        finally:
            for proc in [daemon, ticker, *children]:
                if proc is not None and proc.poll() is None:
                    proc.terminate()
            for proc in [daemon, ticker, *children]:
                if proc is not None:
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()

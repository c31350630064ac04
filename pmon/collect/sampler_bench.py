"""What sampling and matching cost on this machine, against psutil's own raw read.

Used by ``pmon bench --sampler``: it spawns real idle processes, so the figures
include the kernel's /proc work, which is most of the cost.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from types import TracebackType

import psutil

from pmon.collect.matching import ProcessTable, match
from pmon.collect.sampler import ProcessSampler
from pmon.config import PluginSpec

MARKER = "pmon-sampler-bench"
SLEEPER = "import time; time.sleep(600)"


class ChildProcesses:
    """Python children started for a measurement or a test, every one killed on ``close()``.

    Each child leads its own process group, so whatever it spawned is killed with it.
    """

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, code: str, *args: str, executable: str | None = None) -> subprocess.Popen[bytes]:
        """Run ``code`` in a new Python (isolated, no site-packages); ``args`` are visible in its cmdline.

        ``executable`` (e.g. a link to this Python under another name) sets the process name.
        """
        child = subprocess.Popen([executable or sys.executable, "-I", "-S", "-c", code, *args],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        self.started.append(child)
        return child

    def close(self) -> None:
        """Kill every child and its descendants, and reap them."""
        for child in self.started:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:  # already reaped, or never got past exec
                child.kill()
        for child in self.started:
            child.wait()
        self.started.clear()

    def __enter__(self) -> ChildProcesses:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def bench_sampler(processes: int = 50, rounds: int = 20) -> dict[str, float]:
    """Medians over ``rounds``: µs per process for psutil's raw oneshot read and for
    ``ProcessSampler.sample``, their ratio, and ms for a table refresh plus 50 matches."""
    if processes < 1 or rounds < 1:
        raise ValueError(f"processes and rounds must be at least 1, got {processes} and {rounds}")
    with ChildProcesses() as spawned:
        children = [spawned.start(SLEEPER, f"{MARKER}-{index}") for index in range(processes)]
        procs = [psutil.Process(child.pid) for child in children]
        sampler = ProcessSampler()
        table = ProcessTable()
        table.refresh()
        keys = [key for key in (table.key(child.pid) for child in children) if key is not None]
        specs = [PluginSpec(cmdline=rf"{MARKER}-{index}\b") if index % 2
                 else PluginSpec(pid=children[index % len(children)].pid) for index in range(50)]

        def raw_read() -> None:
            for proc in procs:
                with proc.oneshot():
                    proc.cpu_times()
                    proc.memory_info()
                    proc.io_counters()
                    proc.num_threads()
                    proc.num_fds()
                    proc.num_ctx_switches()

        clock = [time.monotonic()]

        def sampler_read() -> None:
            clock[0] += 2.0  # a daemon tick apart, without sleeping between rounds
            sampler.sample(keys, clock[0])

        def refresh_and_match() -> None:
            table.refresh()
            for spec in specs:
                match(spec, table)

        sampler_read()  # baselines and Process objects, as after the daemon's first tick
        raw, sampled, matching = [], [], []
        for index in range(rounds):
            if index % 2:  # alternate, so neither side always runs with the warmer caches
                raw.append(_seconds(raw_read))
                sampled.append(_seconds(sampler_read))
            else:
                sampled.append(_seconds(sampler_read))
                raw.append(_seconds(raw_read))
            matching.append(_seconds(refresh_and_match))
        raw_us = statistics.median(raw) * 1e6 / max(len(procs), 1)
        sampler_us = statistics.median(sampled) * 1e6 / max(len(keys), 1)
        return {
            "processes": float(len(keys)),
            "host_processes": float(len(table.processes)),
            "raw_us_per_process": raw_us,
            "sampler_us_per_process": sampler_us,
            "sampler_to_raw": sampler_us / raw_us if raw_us else 0.0,
            "refresh_match_50_ms": statistics.median(matching) * 1e3,
        }


def _seconds(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started

"""Sampling real processes and the host: CPU, memory, disk writes, vanished and restarted processes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pmon.collect.matching import ProcessKey, ProcessTable, match
from pmon.collect.sampler import ProcessSampler, SystemSampler
from pmon.collect.sampler_bench import SLEEPER, ChildProcesses, bench_sampler
from pmon.config import PluginSpec

BURNER = "while True: pass"
ALLOCATOR = """
import time
chunks = []
while True:
    if len(chunks) < 10:
        chunks.append(b"x" * 20_000_000)
    time.sleep(0.2)
"""
WRITER = """
import os, sys
with open(sys.argv[1], "wb") as file:
    while True:
        file.seek(0)
        file.write(os.urandom(256 * 1024))
        file.flush()
        os.fsync(file.fileno())
"""
FAMILY = """
import subprocess, sys, time
code = "chunk = b'x' * 30_000_000; import time; time.sleep(600)"
kids = [subprocess.Popen([sys.executable, "-I", "-S", "-c", code]) for _ in range(2)]
time.sleep(600)
"""


@pytest.fixture
def children() -> Iterator[ChildProcesses]:
    with ChildProcesses() as started:
        yield started


def key_of(pid: int) -> ProcessKey:
    return pid, psutil.Process(pid).create_time()


def two_samples(keys: frozenset[ProcessKey] | set[ProcessKey], pause: float = 0.5) -> tuple:
    sampler = ProcessSampler()
    first = sampler.sample(keys)
    time.sleep(pause)
    return first, sampler.sample(keys)


def test_a_busy_process_shows_most_of_a_core(children: ChildProcesses) -> None:
    burner = children.start(BURNER)

    first, second = two_samples({key_of(burner.pid)})

    assert first.cpu_percent is None, "a process read once has no rate yet"
    assert second.cpu_percent is not None and second.cpu_percent > 50
    assert second.processes == 1 and second.pids == (burner.pid,)


def test_an_idle_process_shows_almost_no_cpu(children: ChildProcesses) -> None:
    sleeper = children.start(SLEEPER)

    _, second = two_samples({key_of(sleeper.pid)})

    assert second.cpu_percent is not None and second.cpu_percent < 10
    assert second.threads == 1
    assert second.open_fds is not None and second.open_fds >= 3


def test_a_growing_process_shows_its_rss_grow(children: ChildProcesses) -> None:
    allocator = children.start(ALLOCATOR)
    time.sleep(0.3)

    first, second = two_samples({key_of(allocator.pid)}, pause=0.6)

    assert first.rss_bytes is not None and second.rss_bytes is not None
    assert second.rss_bytes > first.rss_bytes
    total = psutil.virtual_memory().total
    assert second.memory_percent == pytest.approx(second.rss_bytes * 100 / total)


def test_a_process_writing_to_disk_shows_write_bytes(children: ChildProcesses, tmp_path: Path) -> None:
    writer = children.start(WRITER, str(tmp_path / "out.bin"))
    time.sleep(0.2)

    _, second = two_samples({key_of(writer.pid)})

    assert second.write_bytes_per_s is not None and second.write_bytes_per_s > 0
    assert second.read_bytes_per_s is not None
    assert second.ctx_switches_per_s is not None and second.ctx_switches_per_s > 0


def test_children_are_summed_with_their_parent(children: ChildProcesses) -> None:
    parent = children.start(FAMILY)
    deadline = time.monotonic() + 10
    while len(psutil.Process(parent.pid).children()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # the children's 30 MB
    table = ProcessTable()
    table.refresh()
    sampler = ProcessSampler()

    family = sampler.sample(match(PluginSpec(pid=parent.pid, children=True), table).keys)
    alone = sampler.sample(match(PluginSpec(pid=parent.pid), table).keys)

    assert family.processes == 3
    assert family.rss_bytes is not None and alone.rss_bytes is not None
    assert family.rss_bytes > alone.rss_bytes + 2 * 25_000_000
    assert family.threads == 3


def test_a_vanished_process_is_skipped_and_forgotten(children: ChildProcesses) -> None:
    stays, goes = children.start(SLEEPER), children.start(SLEEPER)
    keys = {key_of(stays.pid), key_of(goes.pid)}
    sampler = ProcessSampler()
    sampler.sample(keys)

    goes.kill()
    goes.wait()
    time.sleep(0.1)
    after = sampler.sample(keys)

    assert after.processes == 1 and after.pids == (stays.pid,)
    assert after.cpu_percent is not None
    assert len(sampler) == 1


def test_a_restarted_process_starts_from_a_new_baseline(children: ChildProcesses) -> None:
    first = children.start(BURNER)
    sampler = ProcessSampler()
    sampler.sample({key_of(first.pid)})
    time.sleep(0.1)
    first.kill()
    first.wait()
    second = children.start(BURNER)
    time.sleep(0.2)

    restarted = sampler.sample({key_of(second.pid)})

    assert restarted.processes == 1
    assert restarted.cpu_percent is None, "the new process has no earlier reading to compare with"


def test_a_key_whose_pid_now_belongs_to_another_process_is_not_read(children: ChildProcesses) -> None:
    sleeper = children.start(SLEEPER)
    pid, created = key_of(sleeper.pid)

    sample = ProcessSampler().sample({(pid, created - 100.0)})

    assert sample.processes == 0 and sample.rss_bytes is None and sample.cpu_percent is None


def test_two_plugins_sharing_a_process_in_one_tick_see_the_same_figures(children: ChildProcesses) -> None:
    burner = children.start(BURNER)
    keys = {key_of(burner.pid)}
    sampler = ProcessSampler()
    sampler.sample(keys)
    time.sleep(0.3)

    first, second = sampler.sample(keys), sampler.sample(keys)

    assert first.cpu_percent is not None and first.cpu_percent > 50
    assert second == first


def test_processes_nobody_asks_for_are_forgotten(children: ChildProcesses) -> None:
    a, b = children.start(SLEEPER), children.start(SLEEPER)
    sampler = ProcessSampler(forget_after=10.0)
    start = time.monotonic()
    sampler.sample({key_of(a.pid)}, now=start)
    sampler.sample({key_of(b.pid)}, now=start + 1)
    assert len(sampler) == 2

    sampler.forget_missing({key_of(b.pid)})
    assert len(sampler) == 1
    sampler.sample({key_of(a.pid)}, now=start + 2)
    sampler.sample({key_of(a.pid)}, now=start + 30)
    assert len(sampler) == 1, "b was not asked for in over forget_after seconds"


def test_fields_the_kernel_denies_are_none_and_the_rest_are_read() -> None:
    denied = next((proc for proc in psutil.process_iter() if _io_denied(proc.pid)), None)
    if denied is None:
        pytest.skip("every process's io counters are readable here (running as root)")

    sample = ProcessSampler().sample({key_of(denied.pid)})

    assert sample.processes == 1
    assert sample.read_bytes_per_s is None and sample.open_fds is None
    assert sample.rss_bytes is not None and sample.threads is not None


def _io_denied(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/io", "rb"):
            return False
    except PermissionError:
        return True
    except OSError:
        return False


def test_the_host_sample_has_rates_from_the_second_call() -> None:
    sampler = SystemSampler()
    first = sampler.sample()
    time.sleep(0.2)
    second = sampler.sample()

    assert first.cpu_percent is None and first.net_recv_bytes_per_s is None and first.disk_write_bytes_per_s is None
    assert second.cpu_percent is not None and 0 <= second.cpu_percent <= 100
    assert second.net_recv_bytes_per_s is not None and second.net_recv_bytes_per_s >= 0
    assert 0 < second.memory_percent < 100
    assert second.memory_used_bytes > 0 and second.memory_available_bytes > 0


def test_the_host_cpu_counts_a_busy_process(children: ChildProcesses) -> None:
    sampler = SystemSampler()
    children.start(BURNER)
    sampler.sample()
    time.sleep(0.5)

    busy = sampler.sample()

    assert busy.cpu_percent is not None and busy.cpu_percent > 100 / (os.cpu_count() or 1) / 2


def test_the_bench_returns_its_figures() -> None:
    figures = bench_sampler(processes=3, rounds=2)

    assert figures["processes"] == 3
    assert figures["raw_us_per_process"] > 0 and figures["sampler_us_per_process"] > 0
    assert figures["sampler_to_raw"] == pytest.approx(figures["sampler_us_per_process"] / figures["raw_us_per_process"])
    assert figures["refresh_match_50_ms"] > 0
    assert not [proc for proc in psutil.Process().children() if "pmon-sampler-bench" in " ".join(proc.cmdline())]

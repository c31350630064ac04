"""psutil figures for a plugin's processes, and for the whole host.

Rates (CPU %, bytes/s, context switches/s) are deltas between two readings of
the SAME process (pid + create time), over the monotonic clock. A process read
for the first time only sets its baseline: it adds nothing to a rate, and a
plugin whose processes are all new gets ``None`` rates, which the daemon skips
instead of recording a misleading 0. CPU % is computed here from ``cpu_times``
(user + system of the process itself, not of its reaped children) rather than
with ``Process.cpu_percent()``, whose baseline lives inside psutil per object.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import psutil

from pmon.collect.matching import ProcessKey, boot_time_once, read_stat

FDS_EVERY_SECONDS = 5.0
"""Open file descriptors are counted (a directory listing, the costliest read) at most this often."""
SAME_READING_SECONDS = 0.05
"""A process read again sooner than this (two plugins matching one process in
the same tick) reuses its last figures instead of a delta over microseconds."""
FORGET_AFTER_SECONDS = 60.0
"""A process not asked for this long is forgotten, so memory stays bounded."""


@dataclass(slots=True)
class ProcessSample:
    """One plugin's processes at one moment, summed over them.

    A field is None when no process could give it: every process is new (rates),
    or reading it was denied for all of them (io counters and open files of
    another user's process). Otherwise it sums the processes that allowed it.
    """

    cpu_percent: float | None
    """Percent of ONE core, summed: two busy threads (or processes) show ~200."""
    rss_bytes: int | None
    memory_percent: float | None
    """RSS as a percent of the host's total RAM."""
    read_bytes_per_s: float | None
    """Bytes the processes caused to be read from storage (``io_counters().read_bytes``)."""
    write_bytes_per_s: float | None
    threads: int | None
    open_fds: int | None
    ctx_switches_per_s: float | None
    """Voluntary plus involuntary context switches."""
    processes: int
    """How many processes were read (a matched process that vanished is not counted)."""
    pids: tuple[int, ...]


@dataclass(slots=True)
class SystemSample:
    """The host at one moment; rates are None on the first call (no previous reading)."""

    cpu_percent: float | None
    """Busy share of all cores together, 0-100."""
    memory_percent: float
    memory_used_bytes: int
    memory_available_bytes: int
    net_recv_bytes_per_s: float | None
    net_sent_bytes_per_s: float | None
    disk_read_bytes_per_s: float | None
    """None also where the kernel lists no disks (some containers)."""
    disk_write_bytes_per_s: float | None


_PROC_STAT = os.path.exists("/proc/self/stat")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _read_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read()
    except PermissionError:
        return None


def _field(text: bytes, label: bytes) -> int:
    """The number after ``label`` (which starts with a newline) in a /proc key: value file."""
    start = text.find(label)
    if start < 0:
        raise ValueError(label)
    start += len(label)
    end = text.find(b"\n", start)
    return int(text[start:end if end >= 0 else None])


def _read_proc(pid: int, start_ticks: int | None,
               count_fds: bool = True) -> tuple[float, int, int, tuple[int, int] | None, int | None, int] | None:
    """(cpu seconds, rss bytes, threads, (read, write bytes) or None, open fds or None, context switches).

    ``count_fds`` False skips listing /proc/PID/fd (the costliest read) and gives -1: "as before".

    The same /proc files psutil reads, minus ``statm`` (``stat`` has the RSS)
    and without its per-call machinery: ~35 µs a process against ~65 µs. None
    when the process has exited, is a zombie, or the pid now belongs to
    another process (its start time differs).
    """
    base = f"/proc/{pid}/"
    try:
        stat = _read_file(base + "stat")
        status = _read_file(base + "status")
    except (FileNotFoundError, ProcessLookupError):
        return None
    if stat is None or status is None:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    if fields[0] == b"Z" or (start_ticks is not None and int(fields[19]) != start_ticks):
        return None
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    ctx = _field(status, b"\nvoluntary_ctxt_switches:") + _field(status, b"\nnonvoluntary_ctxt_switches:")
    io = None
    try:
        raw = _read_file(base + "io")
        if raw is not None:
            io = (_field(raw, b"\nread_bytes:"), _field(raw, b"\nwrite_bytes:"))
        fds: int | None = len(os.listdir(base + "fd")) if count_fds else -1
    except PermissionError:
        fds = None
    except (FileNotFoundError, ProcessLookupError):
        return None
    except (KeyError, ValueError):
        fds = len(os.listdir(base + "fd")) if io is None and count_fds else None if count_fds else -1
    return cpu, int(fields[21]) * _PAGE_SIZE, int(fields[17]), io, fds, ctx


class _Tracked:
    """One process between samples: its psutil object, last counters and last figures."""

    __slots__ = ("proc", "start_ticks", "at", "seen", "cpu", "read", "write", "ctx",
                 "cpu_pct", "read_rate", "write_rate", "ctx_rate", "rss", "threads", "fds", "fds_at")

    def __init__(self, proc: psutil.Process, start_ticks: int | None = None) -> None:
        self.proc = proc
        self.start_ticks = start_ticks
        """The kernel's start time in clock ticks (Linux): a reused pid shows another."""
        self.at = self.seen = -1.0
        self.cpu = self.read = self.write = self.ctx = None
        self.cpu_pct = self.read_rate = self.write_rate = self.ctx_rate = None
        self.rss = self.threads = self.fds = None
        self.fds_at = -FDS_EVERY_SECONDS


class ProcessSampler:
    """Reads plugins' processes each tick, keeping each psutil.Process between ticks.

    One sampler can serve every plugin: state is per process, two plugins
    matching one process in a tick see the same figures, and processes no plugin
    has asked for in ``forget_after`` seconds are dropped (``forget_missing``
    drops them at once).
    """

    def __init__(self, forget_after: float = FORGET_AFTER_SECONDS) -> None:
        self.forget_after = forget_after
        self._tracked: dict[ProcessKey, _Tracked] = {}
        self._total_ram = psutil.virtual_memory().total
        self._swept_at = time.monotonic()

    def __len__(self) -> int:
        """Processes with remembered state (for the daemon's own health figures)."""
        return len(self._tracked)

    def sample(self, keys: Iterable[ProcessKey], now: float | None = None) -> ProcessSample:
        """Read these processes and sum them; a process that has exited is skipped, never raised.

        ``now`` is ``time.monotonic()`` seconds; pass one value for a whole tick
        so every plugin's rates cover the same interval. A key given twice counts once.
        """
        if now is None:
            now = time.monotonic()
        if not isinstance(keys, (set, frozenset)):
            keys = dict.fromkeys(keys)
        tracked = self._tracked
        pids = []
        cpu = rss = threads = fds = None
        read = write = ctx = None
        for key in keys:
            entry = tracked.get(key)
            if entry is None:
                entry = self._track(key)
                if entry is None:
                    continue
            if now - entry.at >= SAME_READING_SECONDS and not self._read(entry, now):
                del tracked[key]
                continue
            entry.seen = now
            pids.append(key[0])
            if entry.rss is not None:
                rss = entry.rss if rss is None else rss + entry.rss
            if entry.threads is not None:
                threads = entry.threads if threads is None else threads + entry.threads
            if entry.fds is not None:
                fds = entry.fds if fds is None else fds + entry.fds
            if entry.cpu_pct is not None:
                cpu = entry.cpu_pct if cpu is None else cpu + entry.cpu_pct
            if entry.read_rate is not None:
                read = entry.read_rate if read is None else read + entry.read_rate
                write = entry.write_rate if write is None else write + entry.write_rate
            if entry.ctx_rate is not None:
                ctx = entry.ctx_rate if ctx is None else ctx + entry.ctx_rate
        if now - self._swept_at > self.forget_after / 4:
            self._sweep(now)
        pids.sort()
        memory = None if rss is None else rss * 100.0 / self._total_ram
        return ProcessSample(cpu, rss, memory, read, write, threads, fds, ctx, len(pids), tuple(pids))

    def forget_missing(self, alive: Collection[ProcessKey]) -> None:
        """Drop the state of every process not in ``alive`` (e.g. this tick's table)."""
        for key in [key for key in self._tracked if key not in alive]:
            del self._tracked[key]

    def _track(self, key: ProcessKey) -> _Tracked | None:
        """A Process for the key, or None when that pid is gone or now another process."""
        start = None
        try:
            if _PROC_STAT:
                # Against the boot time the table used, read once: psutil re-reads it, and after the
                # wall clock is stepped (NTP at boot, a VM resumed) its create_time() no longer matches.
                start = round((key[1] - boot_time_once()) * _CLOCK_TICKS)
                stat = read_stat(key[0])
                if stat is None or stat[3] != start:
                    return None
                proc = psutil.Process(key[0])
            else:
                proc = psutil.Process(key[0])
                if abs(proc.create_time() - key[1]) > 0.005:  # psutil's create_time is exact to 10 ms
                    return None
        except psutil.Error:
            return None
        entry = _Tracked(proc, start)
        self._tracked[key] = entry
        return entry

    def _read(self, entry: _Tracked, now: float) -> bool:
        """Update the entry's counters and figures; False when the process has exited."""
        if _PROC_STAT and entry.start_ticks is not None:
            count_fds = now - entry.fds_at >= FDS_EVERY_SECONDS
            try:
                counters = _read_proc(entry.proc.pid, entry.start_ticks, count_fds)
            except (ValueError, IndexError):  # a /proc that lays its files out otherwise: psutil knows more
                entry.start_ticks = None
                counters = None
            if entry.start_ticks is not None:
                if counters is None:
                    return False
                cpu, entry.rss, entry.threads, io, fds, ctx = counters
                if count_fds:
                    entry.fds, entry.fds_at = fds, now
                self._update(entry, now, cpu, io, ctx)
                return True
        proc = entry.proc
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                entry.rss = proc.memory_info().rss
                try:
                    io = proc.io_counters()
                except psutil.AccessDenied:
                    io = None
                entry.threads = proc.num_threads()
                try:
                    entry.fds = proc.num_fds()
                except psutil.AccessDenied:
                    entry.fds = None
                switches = proc.num_ctx_switches()
        except psutil.NoSuchProcess:  # includes ZombieProcess: it has exited, only the parent has not reaped it
            return False
        except psutil.AccessDenied:  # stat, statm and status are world-readable; a hardened /proc may still deny
            entry.at = -1.0
            entry.rss = entry.threads = entry.fds = entry.cpu_pct = None
            entry.read_rate = entry.write_rate = entry.ctx_rate = None
            return True
        self._update(entry, now, times.user + times.system,
                     None if io is None else (io.read_bytes, io.write_bytes), switches.voluntary + switches.involuntary)
        return True

    @staticmethod
    def _update(entry: _Tracked, now: float, cpu: float, io: tuple[int, int] | None, ctx: int) -> None:
        """Rates against the entry's previous counters, then the counters become the new baseline."""
        if entry.at < 0:
            entry.cpu_pct = entry.read_rate = entry.write_rate = entry.ctx_rate = None
        else:
            elapsed = now - entry.at
            entry.cpu_pct = max(cpu - entry.cpu, 0.0) * 100.0 / elapsed
            entry.ctx_rate = max(ctx - entry.ctx, 0) / elapsed
            if io is not None and entry.read is not None:
                entry.read_rate = max(io[0] - entry.read, 0) / elapsed
                entry.write_rate = max(io[1] - entry.write, 0) / elapsed
            else:
                entry.read_rate = entry.write_rate = None
        entry.at, entry.cpu, entry.ctx = now, cpu, ctx
        if io is None:
            entry.read = entry.write = None
        else:
            entry.read, entry.write = io

    def _sweep(self, now: float) -> None:
        cutoff = now - self.forget_after
        for key in [key for key, entry in self._tracked.items() if entry.seen < cutoff]:
            del self._tracked[key]
        self._swept_at = now


class SystemSampler:
    """Host-wide CPU, memory, network and disk, as rates against the previous call.

    CPU comes from ``psutil.cpu_times()`` deltas; ``cpu_percent(interval)``
    would sleep inside the daemon's tick.
    """

    def __init__(self) -> None:
        self._at: float | None = None
        self._busy = self._total = 0.0
        self._net: tuple[int, int] | None = None
        self._disk: tuple[int, int] | None = None

    def sample(self, now: float | None = None) -> SystemSample:
        """Read the host once; ``now`` is ``time.monotonic()`` seconds."""
        if now is None:
            now = time.monotonic()
        times = psutil.cpu_times()
        # as psutil.cpu_percent counts it: guest time is already inside user and nice
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        busy = total - times.idle - getattr(times, "iowait", 0.0)
        memory = psutil.virtual_memory()
        counters = psutil.net_io_counters()
        net = (counters.bytes_recv, counters.bytes_sent) if counters is not None else None
        disks = psutil.disk_io_counters()
        disk = (disks.read_bytes, disks.write_bytes) if disks else None

        cpu = None
        net_rates: tuple[float | None, float | None] = (None, None)
        disk_rates: tuple[float | None, float | None] = (None, None)
        if self._at is not None and now > self._at:
            elapsed = now - self._at
            if total > self._total:
                cpu = min(max((busy - self._busy) / (total - self._total) * 100.0, 0.0), 100.0)
            net_rates = _rates(self._net, net, elapsed)
            disk_rates = _rates(self._disk, disk, elapsed)
        self._at, self._busy, self._total, self._net, self._disk = now, busy, total, net, disk
        return SystemSample(cpu, memory.percent, memory.used, memory.available, *net_rates, *disk_rates)


def _rates(before: tuple[int, int] | None, after: tuple[int, int] | None,
           elapsed: float) -> tuple[float | None, float | None]:
    if before is None or after is None:
        return None, None
    return max(after[0] - before[0], 0) / elapsed, max(after[1] - before[1], 0) / elapsed

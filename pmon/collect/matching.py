"""Which running processes belong to a ``[plugins.NAME]`` spec.

Every tick the daemon calls ``ProcessTable.refresh()`` once and then
``match()`` for each plugin, so the process list is walked once however many
plugins there are; matching itself is dict and regex work.

A process is known by its ``ProcessKey`` (pid, create_time): a pid the kernel
hands to a new process after the old one exited is a different process, so
rates are never computed across two programs that shared a pid.

pmon's own process never matches a ``process_name`` or ``cmdline`` pattern, nor
is it counted as anyone's child: a pattern such as ``python`` would otherwise
match the daemon and add its own sampling cost to a plugin's figures. A
``pid`` or ``pidfile`` naming pmon's pid is explicit and is honoured.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from pmon.config import PluginSpec

ProcessKey = tuple[int, float]
"""(pid, create_time): a process, not just a pid the kernel may reuse."""

CMDLINE_SETTLE_SECONDS = 10.0
"""A process younger than this has its command line read every refresh: between
fork and exec a child still shows its parent's command line."""
CMDLINE_MAX_AGE_SECONDS = 60.0
"""A cached command line is read again after this long, so a later
``setproctitle`` or an exec that keeps the name is followed within a minute."""
PIDFILE_MAX_BYTES = 4096
FULL_SCAN_SECONDS = 10.0
"""Between full scans a settled process's /proc/PID/stat is not read again: only new
and young processes are. A full scan re-reads every process, catching a new parent
(an orphan adopted by init) or a zombie; the sampler notices exits and zombies of
matched processes at once, so lifecycle events never wait for it."""


@dataclass(slots=True)
class ProcessInfo:
    """What the table knows of one live process."""

    key: ProcessKey
    name: str
    """As psutil shows it (the full name when the kernel's 15-character one is truncated)."""
    ppid: int
    cmdline: str
    """The arguments joined with single spaces; empty for kernel threads or when unreadable."""
    cmdline_read_at: float
    """``time.monotonic()`` of the read, for ``CMDLINE_MAX_AGE_SECONDS``."""
    comm: str = ""
    """The kernel's (15-character) name, to notice an exec between command-line reads."""


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The processes of one spec, and why there are none when that is worth a log line."""

    keys: frozenset[ProcessKey]
    """Everything to sample: the matched processes and, with ``children``, their descendants."""
    roots: frozenset[ProcessKey]
    """The processes the matcher itself found (no descendants): a plugin's restart shows here."""
    problem: str | None = None
    """Set when a pid or pidfile could not be followed ("pidfile /run/x.pid: not found");
    None when matching worked, even if no process is running."""


class ProcessTable:
    """One scan of the process list, shared by every spec matched in a tick.

    psutil's ``process_iter()`` keeps its Process objects between calls, so a
    refresh reads only ``/proc/PID/stat`` for a known process; command lines
    are cached per ``ProcessKey`` and read again only while a process is young,
    when its name changes, or after ``CMDLINE_MAX_AGE_SECONDS``.
    """

    def __init__(self) -> None:
        self.processes: dict[int, ProcessInfo] = {}
        """Live processes by pid (zombies left out: they have exited)."""
        self.children: dict[int, list[int]] = {}
        """Parent pid -> pids of its live children."""
        self.by_name: dict[str, list[ProcessKey]] = {}
        """Process name -> keys, for ``process_name`` specs."""
        self.own_pid = os.getpid()
        """pmon's own pid at the last refresh (never matched by a pattern)."""
        self.generation = 0
        """Bumped when a refresh sees a process start, exit or change its command line."""
        self._cmdline_hits: dict[str, tuple[int, frozenset[ProcessKey]]] = {}
        self._full_scan_at = -FULL_SCAN_SECONDS

    def refresh(self) -> None:
        """Scan the process list once; every ``match()`` until the next refresh uses it.

        On Linux this reads ``/proc/PID/stat`` straight (~8 µs a process, against
        ~45 µs through psutil's Process objects): a daemon scanning every second
        spends its CPU budget here first.
        """
        processes, changed = None, False
        if _PROC_STAT:
            try:
                processes, changed = self._scan_proc()
            except OSError:  # /proc not mounted as expected: psutil knows the other layouts
                processes = None
        if processes is None:
            processes, changed = self._scan_psutil()
        children: dict[int, list[int]] = {}
        by_name: dict[str, list[ProcessKey]] = {}
        for pid, info in processes.items():
            children.setdefault(info.ppid, []).append(pid)
            by_name.setdefault(info.name, []).append(info.key)
        if changed or processes.keys() != self.processes.keys():
            self.generation += 1
        self.processes, self.children, self.by_name = processes, children, by_name
        self.own_pid = os.getpid()

    def _scan_proc(self) -> tuple[dict[int, ProcessInfo], bool]:
        """Live processes from /proc, and whether any started, exited or changed its command line."""
        previous = self.processes
        processes: dict[int, ProcessInfo] = {}
        clock = time.monotonic()
        wall = time.time()
        boot = boot_time_once()
        changed = False
        full = clock - self._full_scan_at >= FULL_SCAN_SECONDS
        if full:
            self._full_scan_at = clock
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            info = previous.get(pid)
            if (not full and info is not None and wall - info.key[1] >= CMDLINE_SETTLE_SECONDS
                    and clock - info.cmdline_read_at <= CMDLINE_MAX_AGE_SECONDS):
                processes[pid] = info  # settled and known: its pid, name and parent are as last read
                continue
            stat = read_stat(pid)
            if stat is None:
                continue
            comm, state, ppid, start_ticks = stat
            if state == "Z":
                continue
            created = start_ticks / _CLOCK_TICKS + boot
            if info is None or abs(info.key[1] - created) > 0.005:
                args = _read_cmdline(pid)
                info = ProcessInfo((pid, created), _full_name(comm, args), ppid, " ".join(args), clock)
                info.comm = comm
                changed = True
            elif (info.comm != comm or wall - created < CMDLINE_SETTLE_SECONDS
                  or clock - info.cmdline_read_at > CMDLINE_MAX_AGE_SECONDS):
                args = _read_cmdline(pid)
                cmdline = " ".join(args)
                changed = changed or cmdline != info.cmdline
                info.cmdline, info.cmdline_read_at = cmdline, clock
                info.name, info.comm = _full_name(comm, args), comm
            info.ppid = ppid
            processes[pid] = info
        return processes, changed

    def _scan_psutil(self) -> tuple[dict[int, ProcessInfo], bool]:
        """The same through psutil, for systems without a Linux /proc."""
        previous = self.processes
        processes: dict[int, ProcessInfo] = {}
        clock = time.monotonic()
        wall = time.time()
        changed = False
        for proc in psutil.process_iter():
            pid = proc.pid
            try:
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue
                    name = proc.name()
                    ppid = proc.ppid()
                    created = proc.create_time()
                    info = previous.get(pid)
                    if info is None or info.key[1] != created:
                        info = ProcessInfo((pid, created), name, ppid, _cmdline(proc), clock)
                        changed = True
                    else:
                        if (info.name != name or wall - created < CMDLINE_SETTLE_SECONDS
                                or clock - info.cmdline_read_at > CMDLINE_MAX_AGE_SECONDS):
                            cmdline = _cmdline(proc)
                            changed = changed or cmdline != info.cmdline
                            info.cmdline, info.cmdline_read_at = cmdline, clock
                        info.name, info.ppid = name, ppid
            except psutil.Error:  # gone, a zombie, or hidden from us: not a process we can sample
                continue
            processes[pid] = info
        return processes, changed

    def key(self, pid: int) -> ProcessKey | None:
        """The live process with this pid, if any."""
        info = self.processes.get(pid)
        return info.key if info is not None else None

    def named(self, name: str) -> frozenset[ProcessKey]:
        """Every process with exactly this name, pmon's own left out."""
        own = self.own_pid
        return frozenset(key for key in self.by_name.get(name, ()) if key[0] != own)

    def cmdline_matches(self, pattern: str) -> frozenset[ProcessKey]:
        """Processes whose joined command line the regex finds a match in, pmon's own left out.

        Remembered per pattern until the table changes, so 50 cmdline specs on a
        quiet host cost a dict lookup each rather than 50 regex passes over every process.
        """
        hit = self._cmdline_hits.get(pattern)
        if hit is not None and hit[0] == self.generation:
            return hit[1]
        search = _compiled(pattern).search
        own = self.own_pid
        keys = frozenset(info.key for pid, info in self.processes.items()
                         if pid != own and search(info.cmdline) is not None)
        if len(self._cmdline_hits) > 1024:  # patterns come from the config; this only bounds a misuse
            self._cmdline_hits.clear()
        self._cmdline_hits[pattern] = (self.generation, keys)
        return keys

    def descendants(self, pids: Iterable[int]) -> frozenset[ProcessKey]:
        """Children, grandchildren, ... of these pids (not the pids themselves), pmon's own left out."""
        found: set[ProcessKey] = set()
        seen = set(pids)
        stack = list(seen)
        own = self.own_pid
        while stack:
            for child in self.children.get(stack.pop(), ()):
                if child in seen or child == own:
                    continue
                seen.add(child)
                stack.append(child)
                found.add(self.processes[child].key)
        return frozenset(found)


_PROC_STAT = os.path.exists("/proc/self/stat")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@functools.lru_cache(maxsize=1)
def boot_time_once() -> float:
    """The boot time, read once: process keys stay comparable even if the wall clock is stepped later."""
    return psutil.boot_time()  # the same base psutil's create_time() adds, so keys agree with the sampler's


def read_stat(pid: int) -> tuple[str, str, int, int] | None:
    """(comm, state, ppid, start time in clock ticks) from /proc/PID/stat; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    open_paren, close_paren = data.find(b"("), data.rfind(b")")
    fields = data[close_paren + 2:].split()
    try:
        return (data[open_paren + 1:close_paren].decode(errors="replace"), fields[0].decode(), int(fields[1]),
                int(fields[19]))
    except (IndexError, ValueError):
        return None


def _read_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            data = file.read()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in data.rstrip(b"\0").split(b"\0")] if data else []


def _full_name(comm: str, args: list[str]) -> str:
    """psutil's name(): the kernel keeps 15 characters; the command line's program name completes it."""
    if len(comm) >= 15 and args:
        program = os.path.basename(args[0])
        if program.startswith(comm):
            return program
    return comm


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.AccessDenied:
        return ""


def match(spec: PluginSpec, table: ProcessTable, base_dir: Path | None = None) -> MatchResult:
    """The processes of ``spec`` in the last refresh of ``table``, and why a pid or pidfile led nowhere.

    ``base_dir`` is where a relative pidfile lives (the config file's folder);
    None means the current directory. Never raises for a missing or bad pidfile:
    a plugin that is down must not stop the daemon sampling the others.
    """
    problem = None
    if spec.pid:
        roots, problem = _by_pid(spec.pid, table, f"pid {spec.pid}")
    elif spec.pidfile:
        roots, problem = _by_pidfile(spec.pidfile, table, base_dir)
    elif spec.process_name:
        roots = table.named(spec.process_name)
    elif spec.cmdline:
        roots = table.cmdline_matches(spec.cmdline)
    else:
        roots = frozenset()
        problem = "no matcher set (pid, pidfile, process_name or cmdline)"
    keys = roots | table.descendants(pid for pid, _ in roots) if spec.children and roots else roots
    return MatchResult(keys, roots, problem)


def _by_pid(pid: int, table: ProcessTable, where: str) -> tuple[frozenset[ProcessKey], str | None]:
    key = table.key(pid)
    if key is None:
        return frozenset(), f"{where}: not running"
    return frozenset((key,)), None


def _by_pidfile(pidfile: str, table: ProcessTable, base_dir: Path | None) -> tuple[frozenset[ProcessKey], str | None]:
    path = Path(pidfile).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    where = f"pidfile {path}"
    try:
        with open(path, "rb") as file:
            raw = file.read(PIDFILE_MAX_BYTES + 1)
    except FileNotFoundError:
        return frozenset(), f"{where}: not found"
    except OSError as exc:
        return frozenset(), f"{where}: cannot read: {exc.strerror or exc}"
    text = raw[:PIDFILE_MAX_BYTES].strip()
    if len(raw) > PIDFILE_MAX_BYTES or not text.isdigit() or int(text) <= 0:
        shown = text[:40].decode("utf-8", "replace")
        return frozenset(), f"{where}: does not hold a pid (found {shown!r})"
    return _by_pid(int(text), table, f"{where}: pid {int(text)}")

r"""Which running processes belong to a ``[plugins.NAME]`` spec.

Every tick the daemon calls ``ProcessTable.refresh()`` once and then
``match()`` for each plugin, so the process list is walked once however many
plugins there are; matching itself is dict and regex work.

A process is known by its ``ProcessKey`` (pid, create_time): a pid the kernel
hands to a new process after the old one exited is a different process, so
rates are never computed across two programs that shared a pid.

A ``cmdline`` regex meets text any local user chooses (every process's
command line is readable by all), so a search is bounded in time: Python's
backtracking engine takes minutes over a crafted 32 KB command line even for
an ordinary pattern such as ``java .*-jar .*app\.jar``. A pattern with
nested repetition (``(a+)+``), exponential on some text, is refused outright.

pmon's own process never matches a ``process_name`` or ``cmdline`` pattern, nor
is it counted as anyone's child: a pattern such as ``python`` would otherwise
match the daemon and add its own sampling cost to a plugin's figures. A
``pid`` or ``pidfile`` naming pmon's pid is explicit and is honoured.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

try:  # the parser of the re module: what a pattern is made of (3.11 renamed the module)
    from re import _parser as _re_parser
except ImportError:  # pragma: no cover - Python before 3.11
    import sre_parse as _re_parser  # type: ignore[no-redef]

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
SEARCH_SECONDS = 0.25
"""Wall time one ``cmdline`` search over one command line may take (an honest one takes microseconds);
past it the process counts as not matching until ``SEARCH_RETRY_SECONDS`` later."""
SEARCH_RETRY_SECONDS = 30.0
"""A command line a search gave up on is searched again after this long (it may have been a stall of the machine)."""
PASS_SEARCH_SECONDS = 1.0
"""Search time one pattern may spend in one tick; processes left over are searched in the next ticks."""


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
        self._verdicts: dict[str, dict[ProcessKey, _Verdict]] = {}
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
        quiet host cost a dict lookup each rather than 50 regex passes over every
        process; and per process while its command line stays the same, so a
        process start costs one search per pattern, not one for every process.
        A search that outlasts ``SEARCH_SECONDS`` counts as no match (``slow_pids``).
        """
        hit = self._cmdline_hits.get(pattern)
        if hit is not None and hit[0] == self.generation:
            return hit[1]
        search = _compiled(pattern).search
        own = self.own_pid
        known = self._verdicts.get(pattern, {})
        verdicts: dict[ProcessKey, _Verdict] = {}
        clock = time.monotonic()
        spent, complete = 0.0, True
        with _search_budget() as bounded:
            for pid, info in self.processes.items():
                if pid == own:
                    continue
                verdict = known.get(info.key)
                if verdict is None or verdict.cmdline is not info.cmdline and verdict.cmdline != info.cmdline or (
                        verdict.matched is None and clock >= verdict.retry_at):
                    if spent >= PASS_SEARCH_SECONDS:
                        complete = False  # the rest wait for the next tick rather than stall this one
                        continue
                    started = time.perf_counter()
                    verdict = _Verdict(info.cmdline, bounded(search, info.cmdline), clock + SEARCH_RETRY_SECONDS)
                    spent += time.perf_counter() - started
                verdicts[info.key] = verdict
        self._verdicts[pattern] = verdicts
        keys = frozenset(key for key, verdict in verdicts.items() if verdict.matched)
        if len(self._cmdline_hits) > 1024:  # patterns come from the config; this only bounds a misuse
            self._cmdline_hits.clear()
            self._verdicts = {pattern: verdicts}
        if complete:
            self._cmdline_hits[pattern] = (self.generation, keys)
        else:
            self._cmdline_hits.pop(pattern, None)
        return keys

    def slow_pids(self, pattern: str) -> list[int]:
        """Processes ``pattern`` gave up on (searching their command line took over ``SEARCH_SECONDS``)."""
        return sorted(key[0] for key, verdict in self._verdicts.get(pattern, {}).items() if verdict.matched is None)

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


@dataclass(frozen=True, slots=True)
class _Verdict:
    """One pattern's answer for one process's command line."""

    cmdline: str
    matched: bool | None
    """None: the search outlasted ``SEARCH_SECONDS``."""
    retry_at: float


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a ``cmdline`` matcher, or None when it can.

    Nested repetition (``(a+)+``, ``(\\w*\\s?)*``, ``(.*x){9}``) lets a
    backtracking engine try every way of splitting a string between the two
    repeats: exponential time on a command line any local user can craft.
    The same written without the outer repeat, or the inner one made
    possessive (``(a++)+``) or atomic (``(?>a+)+``), is accepted.
    """
    try:
        parsed = _re_parser.parse(pattern)
    except re.error as exc:
        return f"cmdline is not a valid regular expression: {exc}"
    except RecursionError:
        return "cmdline nests too deeply to be a regular expression pmon can run"
    if _nested_repeat(parsed, inside_repeat=False):
        return (f"cmdline {pattern!r} repeats a repetition (as in (a+)+), which can take exponential time on a "
                "crafted command line; write it without the outer repeat, or make the inner one possessive (a++)")
    return None


_REPEATS = frozenset({_re_parser.MAX_REPEAT, _re_parser.MIN_REPEAT})
_ATOMIC = frozenset(op for op in (getattr(_re_parser, "POSSESSIVE_REPEAT", None),
                                  getattr(_re_parser, "ATOMIC_GROUP", None)) if op is not None)


def _nested_repeat(items: object, *, inside_repeat: bool) -> bool:
    """Whether a variable repeat is found inside a repeat of more than one (possessive and atomic parts never backtrack)."""
    for op, value in items:  # type: ignore[attr-defined]
        if op in _ATOMIC:
            continue
        if op in _REPEATS:
            low, high, body = value
            if high > 1 and low != high and inside_repeat:  # a fixed count ({3}) has one way to split
                return True
            if _nested_repeat(body, inside_repeat=inside_repeat or high > 1):
                return True
            continue
        for part in value if isinstance(value, (tuple, list)) else ():
            for sub in part if isinstance(part, list) else (part,):
                if isinstance(sub, _re_parser.SubPattern) and _nested_repeat(sub, inside_repeat=inside_repeat):
                    return True
    return False


class _SearchTimeout(Exception):
    pass


class _SearchBudget:
    """Searches that give up after ``SEARCH_SECONDS``, through a one-shot SIGALRM timer.

    Python's regex engine holds the GIL and cannot be stopped from another
    thread, but it checks for signals as it runs, so a handler raising in the
    main thread (where the daemon samples) ends it. Off the main thread, or
    when something else owns SIGALRM or its timer, searches run unbounded.
    """

    def __init__(self) -> None:
        self.armed = False
        self.previous: object = None
        self.usable = (threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
                       and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
                       and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))

    def _expired(self, signum: int, frame: object) -> None:
        if self.armed:
            raise _SearchTimeout

    def __call__(self, search: Callable[[str], object], text: str) -> bool | None:
        """Whether ``search`` finds a match in ``text``; None when it gave up."""
        if not self.usable:
            return search(text) is not None
        try:
            try:
                self.armed = True
                signal.setitimer(signal.ITIMER_REAL, SEARCH_SECONDS)
                return search(text) is not None
            finally:
                self.armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SearchTimeout:
            return None

    def __enter__(self) -> _SearchBudget:
        if self.usable:
            self.previous = signal.signal(signal.SIGALRM, self._expired)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.usable:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)  # type: ignore[arg-type]


def _search_budget() -> _SearchBudget:
    return _SearchBudget()


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
        problem = _checked_pattern(spec.cmdline)
        roots = frozenset() if problem else table.cmdline_matches(spec.cmdline)
        slow = [] if problem else table.slow_pids(spec.cmdline)
        if slow:
            shown = ", ".join(map(str, slow[:3])) + (f" and {len(slow) - 3} more" if len(slow) > 3 else "")
            problem = (f"searching the command line of pid {shown} took over {SEARCH_SECONDS:g} s: not matched "
                       f"(tried again every {SEARCH_RETRY_SECONDS:g} s); a pattern with several wildcards "
                       "(.*x.*y) can take that long on a crafted command line, anchor or shorten it")
    else:
        roots = frozenset()
        problem = "no matcher set (pid, pidfile, process_name or cmdline)"
    keys = roots | table.descendants(pid for pid, _ in roots) if spec.children and roots else roots
    return MatchResult(keys, roots, problem)


@functools.lru_cache(maxsize=512)
def _checked_pattern(pattern: str) -> str | None:
    return pattern_problem(pattern)


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

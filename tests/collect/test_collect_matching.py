"""Finding a plugin's processes by pid, pidfile, name and command line, on real processes."""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from pmon.collect.matching import ProcessKey, ProcessTable, match
from pmon.collect.sampler_bench import SLEEPER, ChildProcesses
from pmon.config import PluginSpec

FAMILY = """
import subprocess, sys, time
kids = [subprocess.Popen([sys.executable, "-I", "-S", "-c", "import time; time.sleep(600)"]) for _ in range(2)]
time.sleep(600)
"""


@pytest.fixture
def children() -> Iterator[ChildProcesses]:
    with ChildProcesses() as started:
        yield started


@pytest.fixture
def marker() -> str:
    return f"pmon-test-{uuid.uuid4().hex[:12]}"


def refreshed() -> ProcessTable:
    table = ProcessTable()
    table.refresh()
    return table


def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the processes never got there"
        time.sleep(0.02)


def key_of(pid: int) -> ProcessKey:
    return pid, psutil.Process(pid).create_time()


def matched(spec: PluginSpec, table: ProcessTable, base_dir: Path | None = None) -> frozenset[ProcessKey]:
    return match(spec, table, base_dir).keys


def test_a_pid_matches_that_process_while_it_runs(children: ChildProcesses) -> None:
    sleeper = children.start(SLEEPER)
    assert matched(PluginSpec(pid=sleeper.pid), refreshed()) == {key_of(sleeper.pid)}

    sleeper.kill()
    sleeper.wait()
    result = match(PluginSpec(pid=sleeper.pid), refreshed())
    assert result.keys == frozenset()
    assert result.problem == f"pid {sleeper.pid}: not running"


def test_a_cmdline_regex_is_searched_in_the_joined_command_line(children: ChildProcesses, marker: str) -> None:
    first = children.start(SLEEPER, marker, "--role", "worker")
    second = children.start(SLEEPER, marker, "--role", "reader")
    table = refreshed()

    assert matched(PluginSpec(cmdline=marker), table) == {key_of(first.pid), key_of(second.pid)}
    assert matched(PluginSpec(cmdline=rf"{marker} --role w\w+"), table) == {key_of(first.pid)}
    assert matched(PluginSpec(cmdline=rf"^{marker}"), table) == frozenset()


def test_a_process_name_matches_every_process_of_that_name_exactly(children: ChildProcesses, tmp_path: Path) -> None:
    name = f"pmt-{uuid.uuid4().hex[:8]}"
    (tmp_path / name).symlink_to(sys.executable)
    named = [children.start(SLEEPER, executable=str(tmp_path / name)) for _ in range(2)]
    children.start(SLEEPER)
    table = refreshed()

    assert matched(PluginSpec(process_name=name), table) == {key_of(child.pid) for child in named}
    assert matched(PluginSpec(process_name=name[:-1]), table) == frozenset()


def test_a_pidfile_is_read_again_at_every_match(children: ChildProcesses, tmp_path: Path) -> None:
    first, second = children.start(SLEEPER), children.start(SLEEPER)
    pidfile = tmp_path / "run" / "plugin.pid"
    pidfile.parent.mkdir()
    spec = PluginSpec(pidfile="run/plugin.pid")
    table = refreshed()

    pidfile.write_text(f"{first.pid}\n")
    assert matched(spec, table, base_dir=tmp_path) == {key_of(first.pid)}
    pidfile.write_text(f"  {second.pid}  ")
    assert matched(spec, table, base_dir=tmp_path) == {key_of(second.pid)}
    assert matched(PluginSpec(pidfile=str(pidfile)), table) == {key_of(second.pid)}


@pytest.mark.parametrize(("content", "problem"), [
    (None, "not found"),
    ("not a pid\n", "does not hold a pid (found 'not a pid')"),
    ("", "does not hold a pid (found '')"),
    ("-5", "does not hold a pid (found '-5')"),
    ("12 34", "does not hold a pid (found '12 34')"),
])
def test_a_missing_or_garbled_pidfile_matches_nothing_and_says_why(
        tmp_path: Path, content: str | None, problem: str) -> None:
    pidfile = tmp_path / "plugin.pid"
    if content is not None:
        pidfile.write_text(content)

    result = match(PluginSpec(pidfile="plugin.pid"), refreshed(), base_dir=tmp_path)

    assert result.keys == frozenset()
    assert result.problem == f"pidfile {pidfile}: {problem}"


def test_a_stale_pidfile_says_its_pid_is_not_running(children: ChildProcesses, tmp_path: Path) -> None:
    gone = children.start("pass")
    gone.wait()
    pidfile = tmp_path / "plugin.pid"
    pidfile.write_text(str(gone.pid))

    result = match(PluginSpec(pidfile=str(pidfile)), refreshed())

    assert result.keys == frozenset()
    assert result.problem == f"pidfile {pidfile}: pid {gone.pid}: not running"


def test_children_adds_every_descendant(children: ChildProcesses, marker: str) -> None:
    parent = children.start(FAMILY, marker)
    until(lambda: len(psutil.Process(parent.pid).children()) == 2)
    descendants = {key_of(child.pid) for child in psutil.Process(parent.pid).children()}
    table = refreshed()

    assert matched(PluginSpec(cmdline=marker), table) == {key_of(parent.pid)}
    assert matched(PluginSpec(cmdline=marker, children=True), table) == {key_of(parent.pid)} | descendants
    with_children = match(PluginSpec(pid=parent.pid, children=True), table)
    assert with_children.keys == {key_of(parent.pid)} | descendants
    assert with_children.roots == {key_of(parent.pid)}


def test_a_killed_process_leaves_the_match_and_its_restart_is_another_process(
        children: ChildProcesses, marker: str) -> None:
    spec = PluginSpec(cmdline=marker)
    table = ProcessTable()
    first = children.start(SLEEPER, marker)
    table.refresh()
    before = matched(spec, table)

    first.kill()
    first.wait()
    table.refresh()
    assert matched(spec, table) == frozenset()

    second = children.start(SLEEPER, marker)
    table.refresh()
    after = matched(spec, table)
    assert after == {key_of(second.pid)}
    assert before.isdisjoint(after)


def test_an_exited_but_unreaped_process_does_not_match(children: ChildProcesses, marker: str) -> None:
    zombie = children.start("pass", marker)
    until(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE)

    assert matched(PluginSpec(cmdline=marker), refreshed()) == frozenset()


def test_a_process_that_execs_is_matched_by_its_new_command_line(children: ChildProcesses, marker: str) -> None:
    execs = ("import os, sys, time; time.sleep(2.0); "  # long enough for the first refresh on a busy machine
             f"os.execv(sys.executable, [sys.executable, '-c', {SLEEPER!r}, sys.argv[1].replace('before', 'after')])")
    child = children.start(execs, f"before-{marker}")
    table = ProcessTable()
    table.refresh()
    assert matched(PluginSpec(cmdline=f"before-{marker}"), table) == {key_of(child.pid)}

    until(lambda: f"after-{marker}" in psutil.Process(child.pid).cmdline())
    table.refresh()
    assert matched(PluginSpec(cmdline=f"before-{marker}"), table) == frozenset()
    assert matched(PluginSpec(cmdline=f"after-{marker}"), table) == {key_of(child.pid)}


def test_pmon_itself_never_matches_a_pattern_but_an_explicit_pid_is_honoured() -> None:
    own = psutil.Process()
    table = refreshed()
    own_key = key_of(os.getpid())
    own_cmdline = re.escape(" ".join(own.cmdline()))

    assert own_key not in matched(PluginSpec(cmdline=".*"), table)
    assert own_key not in matched(PluginSpec(cmdline=own_cmdline), table)
    assert own_key not in matched(PluginSpec(process_name=own.name()), table)
    assert own_key not in matched(PluginSpec(pid=own.ppid(), children=True), table)
    assert matched(PluginSpec(pid=os.getpid()), table) == {own_key}

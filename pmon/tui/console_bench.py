"""The console's figures for `pmon bench --console`, each measured in a fresh child process.

A child process per sample, because what the operator feels is a cold start
(imports included) and because CPU time is only honest in a process that does
nothing else. The child runs the real console headless on a real store and
prints one JSON line; ``pmon.bench`` runs it, takes medians and the ratios.

Run a child by hand: ``python -m pmon.tui.console_bench launch DB``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from pmon.tui.app import PmonApp
from pmon.tui.messages import DataRead, OpenPlugin

READ_PAUSE = 1.0
"""Seconds between the overview's first frame and the first Enter in the drill-down figure."""
SETTLE_TICKS = 3
"""Refreshes with data before the idle figure starts measuring."""
IDLE_SECONDS = 10.0
"""How long the idle figure watches the console at a 1 s refresh."""


# Textual calls a message handler of every class in the MRO, subclass first: the
# handlers below never call super(), and act after the console's own handler
# through call_after_refresh.


_LIVE_WRITER = """
import sys, time, random
from pmon import Monitor
monitor, rng = Monitor(sys.argv[1], flush_interval=0.5), random.Random(1)
plugins = sorted({row[0] for row in __import__('sqlite3').connect(sys.argv[1]).execute('SELECT id FROM plugins')})
while True:
    for plugin in plugins:
        for metric in ('cpu_usage', 'memory_usage', 'response_time', 'error_rate', 'throughput'):
            monitor.record_metric(plugin, metric, rng.random() * 100)
        if rng.random() < 0.2:
            monitor.record_log(plugin, 'info', 'handled a request', {'n': rng.randrange(100)})
    time.sleep(0.5)
"""
"""A host recording into the store while the refresh figure runs: every plugin's five metrics twice a
second and some logs, so every tick redraws sparklines, values and the log tail."""


class _FirstFrameApp(PmonApp):
    """Exits as soon as the first reading with data is on screen."""

    def on_data_read(self, message: DataRead) -> None:
        self.call_after_refresh(self._check)

    def _check(self) -> None:
        if self.has_data:
            self.exit()


class _BareApp(App[None]):
    """The baseline: a Textual app with one line of text, exiting after its first frame."""

    def compose(self) -> ComposeResult:
        yield Static("pmon")

    def on_mount(self) -> None:
        self.call_after_refresh(self.exit)


class _IdleApp(PmonApp):
    """Counts refresh ticks and measures the process's CPU over ``seconds`` of them.

    The window opens at the third refresh with data: the first frames and
    the plugin screen composed in the background are start-up, not idling.
    """

    def __init__(self, db_path: Path, seconds: float) -> None:
        super().__init__(db_path, refresh_interval=1.0)
        self.seconds = seconds
        self.ticks = 0
        self.window: tuple[float, float] | None = None
        self._start: tuple[float, float] | None = None
        self._settling = SETTLE_TICKS

    def on_data_read(self, message: DataRead) -> None:
        self.call_after_refresh(self._tick)

    def _tick(self) -> None:
        now = (time.perf_counter(), time.process_time())
        if self._start is None:
            if self.has_data:
                self._settling -= 1
                if self._settling <= 0:
                    self._start = now
            return
        self.ticks += 1
        if now[0] - self._start[0] >= self.seconds:
            self.window = (now[0] - self._start[0], now[1] - self._start[1])
            self.exit()


class _IdleBareApp(App[None]):
    """Baseline for the idle figure: a Textual app with a clock updated every second, nothing else."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.window: tuple[float, float] | None = None

    def compose(self) -> ComposeResult:
        yield Static("pmon")

    def on_mount(self) -> None:
        self._start = (time.perf_counter(), time.process_time())
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        now = (time.perf_counter(), time.process_time())
        self.query_one(Static).update(time.strftime("%H:%M:%S"))
        if now[0] - self._start[0] >= self.seconds:
            self.window = (now[0] - self._start[0], now[1] - self._start[1])
            self.exit()


class _DrillApp(PmonApp):
    """Opens one plugin's screen ``repeats`` times, timing Enter to the screen drawn with its data."""

    def __init__(self, db_path: Path, plugin_id: str, repeats: int) -> None:
        super().__init__(db_path, refresh_interval=3600.0)
        self.plugin_id = plugin_id
        self.repeats = repeats
        self.samples: list[float] = []
        self._opened_at = 0.0
        self._started = False

    def on_data_read(self, message: DataRead) -> None:
        self.call_after_refresh(self._after_read)

    def _after_read(self) -> None:
        screen = self.screen
        if self._opened_at and getattr(screen, "plugin_id", None) == self.plugin_id:
            self.call_after_refresh(self._drawn, self._opened_at)
            self._opened_at = 0.0
        elif self.has_data and not self._opened_at and not self.samples and not self._started:
            self._started = True
            self.set_timer(READ_PAUSE, self._open)  # an operator looks at the overview before pressing Enter

    def _open(self) -> None:
        self._opened_at = time.perf_counter()
        self.post_message(OpenPlugin(self.plugin_id))

    def _drawn(self, opened_at: float) -> None:
        self.samples.append((time.perf_counter() - opened_at) * 1000)
        self.pop_screen()
        if len(self.samples) >= self.repeats:
            self.exit()
        else:
            self.call_after_refresh(self._open)


class _DrillBareApp(App[None]):
    """Baseline for the drill-down: pushing a screen with one line of text and drawing it."""

    def __init__(self, repeats: int) -> None:
        super().__init__()
        self.repeats = repeats
        self.samples: list[float] = []

    def compose(self) -> ComposeResult:
        yield Static("pmon")

    def on_mount(self) -> None:
        self.call_after_refresh(self._open)

    def _open(self) -> None:
        started = time.perf_counter()
        screen = Screen()
        self.push_screen(screen)
        screen.mount(Static("plugin"))
        self.call_after_refresh(self._drawn, started)

    def _drawn(self, started: float) -> None:
        self.samples.append((time.perf_counter() - started) * 1000)
        self.pop_screen()
        if len(self.samples) >= self.repeats:
            self.exit()
        else:
            self.call_after_refresh(self._open)


def child(kind: str, db: str | None = None, extra: str | None = None) -> dict[str, Any]:
    """Run one measurement in this (fresh) process and return its figures."""
    size = (120, 40)
    if kind == "launch":
        _FirstFrameApp(Path(db or "")).run(headless=True, size=size)
        return {"plotext_imported": "plotext" in sys.modules}
    if kind == "launch-bare":
        _BareApp().run(headless=True, size=size)
        return {}
    if kind == "idle":
        app = _IdleApp(Path(db or ""), float(extra or IDLE_SECONDS))
        app.run(headless=True, size=size)
        assert app.window is not None
        wall, cpu = app.window
        return {"cpu_percent": cpu / wall * 100, "cpu_ms_per_tick": cpu * 1000 / max(1, app.ticks), "ticks": app.ticks}
    if kind == "tick":
        writer = subprocess.Popen([sys.executable, "-c", _LIVE_WRITER, db or ""])
        try:
            app = _IdleApp(Path(db or ""), float(extra or IDLE_SECONDS))
            app.run(headless=True, size=size)
        finally:
            writer.terminate()
            writer.wait()
        assert app.window is not None
        wall, cpu = app.window
        return {"cpu_percent": cpu / wall * 100, "cpu_ms_per_tick": cpu * 1000 / max(1, app.ticks), "ticks": app.ticks}
    if kind == "idle-bare":
        bare = _IdleBareApp(float(extra or IDLE_SECONDS))
        bare.run(headless=True, size=size)
        assert bare.window is not None
        wall, cpu = bare.window
        return {"cpu_percent": cpu / wall * 100}
    if kind == "drill":
        plugin, _, repeats = (extra or "plugin_000:5").partition(":")
        drill = _DrillApp(Path(db or ""), plugin, int(repeats))
        drill.run(headless=True, size=size)
        return {"samples_ms": drill.samples}
    if kind == "drill-bare":
        bare_drill = _DrillBareApp(int(extra or 5))
        bare_drill.run(headless=True, size=size)
        return {"samples_ms": bare_drill.samples}
    raise ValueError(f"kind: expected launch, launch-bare, idle, idle-bare, drill or drill-bare, got {kind!r}")


if __name__ == "__main__":
    print(json.dumps(child(*sys.argv[1:])))

"""Hostile recorded text in the console: every tab and drill-down shows it escaped, nothing is interpreted.

The store is test_rel_terminal's: escapes, C1 controls, bidi, zero-width
characters and Rich / Textual markup in every text field, plugin ids and
alert rule names included. The console is driven for real (``run_test`` and
a pilot; then a real terminal through tmux with tui-drive), and what it draws
is read back: no control, format or separator character in any rendered
cell, no link or click action coming from data, the hostile text visible as
escapes, the app still running after its markup was clicked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from test_rel_terminal import ESCAPED, ESCAPED_ID, ESCAPED_RULE, hostile_store, terminal_problems
from textual.pilot import Pilot

from pmon.tui.app import PmonApp
from pmon.tui.screens.compare_screen import CompareScreen
from pmon.tui.screens.event_screen import EventScreen
from pmon.tui.screens.log_screen import LogScreen
from pmon.tui.screens.plugin_screen import PluginScreen

pytestmark = pytest.mark.reliability

TUI_DRIVE = Path("/work/shared/tools/tui-drive")


def squashed(text: str) -> str:
    """Without whitespace: a wrapped line still contains what it wrapped."""
    return re.sub(r"\s+", "", text)


def rendered(app: PmonApp) -> tuple[str, list[str]]:
    """The screen as text, and what in its cells would be interpreted: raw control / format / separator
    characters, links, click actions."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    lines, problems = [], []
    for line in update.strips:
        text = []
        for strip in line:
            for segment in strip:
                text.append(segment.text)
                for char in segment.text:
                    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
                        problems.append(f"raw {char!r} in {segment.text!r}")
                style = segment.style
                if style is not None and style.link:
                    problems.append(f"link {style.link!r} on {segment.text!r}")
                if style is not None and style.meta and any(str(k).startswith("@") for k in style.meta):
                    problems.append(f"action {style.meta!r} on {segment.text!r}")
        lines.append("".join(text))
    return "\n".join(lines), problems


async def settle(pilot: Pilot, app: PmonApp, wanted: list[str], timeout: float = 10.0) -> str:
    """Let the console read and draw until all of ``wanted`` (squashed) is on screen; the screen text."""
    waited = 0.0
    while True:
        await pilot.pause(0.1)
        waited += 0.1
        text, _ = rendered(app)
        if all(squashed(piece) in squashed(text) for piece in wanted) or waited >= timeout:
            return text


async def visit(pilot: Pilot, app: PmonApp, keys: tuple[str, ...], wanted: list[str], screen: type | None = None,
                stops: dict[str, str] | None = None, name: str = "") -> str:
    """Press ``keys``, wait for the screen to show ``wanted``, check that nothing on it is interpreted."""
    await pilot.press(*keys)
    text = await settle(pilot, app, wanted)
    if screen is not None:
        assert isinstance(app.screen, screen), (name, type(app.screen).__name__)
    shown, problems = rendered(app)
    assert problems == [], (name, problems[:5])
    lacking = [piece for piece in wanted if squashed(piece) not in squashed(shown)]
    assert lacking == [], (name, lacking, shown)
    assert app.is_running and app.return_code is None, name
    if stops is not None:
        stops[name] = text
    return text


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile_store(tmp_path_factory.mktemp("console") / "pmon.db")


async def test_every_tab_and_drill_down_shows_hostile_text_escaped_and_interprets_none(store: Path) -> None:
    app = PmonApp(store, refresh_interval=0.3)
    stops: dict[str, str] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await visit(pilot, app, (), ["evil\\x1b]0;ID-T", "deploy: \\x1b[31mRED", "1 alert firing"], stops=stops,
                    name="overview")
        await visit(pilot, app, ("2", "down"), [ESCAPED_ID + " · CPU"], stops=stops, name="metrics")
        await visit(pilot, app, ("3",), ["evil\\x1b]0;ID", "\\x1b[31mRED\\x1b[0m \\x1b[2J"], stops=stops, name="logs")
        await visit(pilot, app, ("enter",), [ESCAPED_ID, *ESCAPED, "ValueError: \\x1b[31mRED"], LogScreen,
                    stops=stops, name="log screen")
        await visit(pilot, app, ("escape", "g"), ["\\x1b[<n>mRED", "evil\\x1b]0;ID"], stops=stops,
                    name="error groups")
        await visit(pilot, app, ("enter",), [*ESCAPED], LogScreen, stops=stops, name="error group's log")
        await visit(pilot, app, ("escape", "g", "4"), ["alert_firing", "\\x1b[31mRED\\x1b[0m"], stops=stops,
                    name="events")
        rule_in_json = '"rule": "rule\\u001b[2J\\u001b]52;c;cnVsZQ==\\u0007\\u2066[@click=app.quit]r[/]"'
        await visit(pilot, app, ("enter",), [ESCAPED_ID, *ESCAPED, rule_in_json], EventScreen, stops=stops,
                    name="event screen")
        await visit(pilot, app, ("escape", "5", "up", "enter", *["down"] * 6),
                    ["custom_metrics.\\x1b[31mRED\\x1b[0m", "\\x1b]0;PWNED-TITLE\\x07"], CompareScreen, stops=stops,
                    name="snapshot compare")
        await visit(pilot, app, ("escape", "1", "down", "enter"), [ESCAPED_ID[:40], "\\x1b[31mRED"], PluginScreen,
                    stops=stops, name="plugin screen")
        for key, wanted in (("l", "\\x1b[31mRED"), ("e", "\\x1b[31mRED"), ("s", "10"), ("g", "\\x1b[<n>mRED"),
                            ("a", "firing")):
            await visit(pilot, app, (key,), [wanted], PluginScreen, stops=stops, name=f"plugin screen {key}")
        await visit(pilot, app, ("ctrl+p", "e", "v", "i"), ["Plugin: " + ESCAPED_ID], stops=stops,
                    name="command palette")
        await visit(pilot, app, ("escape", "escape", "question_mark"), ["Keys"], stops=stops, name="keys")
        await pilot.press("escape")
        assert app.is_running
    assert len(stops) >= 14


async def test_clicking_hostile_markup_runs_nothing_and_notifications_quote_it_escaped(tmp_path: Path) -> None:
    """``[@click=app.quit]`` in a message, clicked; an alert with a hostile rule acknowledged and silenced from
    the Events tab (the notifications quote the rule and the plugin id)."""
    db = hostile_store(tmp_path / "pmon.db")
    app = PmonApp(db, refresh_interval=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        await visit(pilot, app, (), ["evil\\x1b]0;ID-T"], name="overview")  # keys before the first reading are lost
        await visit(pilot, app, ("3",), ["\\x1b[31mRED\\x1b[0m \\x1b[2J"], name="logs")  # loaded before Enter
        await visit(pilot, app, ("enter",), ["[@click=app.quit]CLICK[/]"], LogScreen, name="log screen")
        for widget in ("#log-message", "#log-context", "#log-traceback", "#log-heading"):
            for offset in range(0, 100, 13):
                await pilot.click(widget, offset=(offset, 0))
                await pilot.click(widget, offset=(offset, 2))
        await pilot.pause(0.3)
        assert app.is_running and app.return_code is None
        await visit(pilot, app, ("escape", "4", "end"), ["alert_firing"], name="events")
        await pilot.press("a")
        ack = await notice(pilot, app, "Acknowledged")
        assert f"alert 1 ({ESCAPED_RULE} on {ESCAPED_ID}, firing)" in ack
        await pilot.press("S")
        silence = await notice(pilot, app, "Silenced")
        assert silence.startswith(f"Silenced {ESCAPED_RULE} on {ESCAPED_ID} for 1h")
        await visit(pilot, app, ("5", "end", "enter"), ["evil\\x1b]0;ID-TITLE"], name="snapshots")
        assert f"No snapshot of {ESCAPED_ID} before #3" in await notice(pilot, app, "No snapshot")
        assert app.is_running and app.return_code is None


async def notice(pilot: Pilot, app: PmonApp, start: str, timeout: float = 10.0) -> str:
    """The console's latest notification starting with ``start``, checked as a toast draws it: plain text
    (markup off), no control / format / separator character."""
    waited = 0.0
    while not any(n.message.startswith(start) for n in app._notifications):
        assert waited < timeout, [n.message for n in app._notifications]
        await pilot.pause(0.1)
        waited += 0.1
    shown = [n for n in app._notifications if n.message.startswith(start)][-1]
    assert not shown.markup
    assert terminal_problems(f"{shown.title} {shown.message}".encode(), colour=False) == []
    return shown.message


@pytest.mark.skipif(not TUI_DRIVE.exists() or shutil.which("tmux") is None or shutil.which("script") is None,
                    reason="needs /work/shared/tools/tui-drive, tmux and script (util-linux)")
def test_a_real_terminal_at_80x24_shows_the_escapes_and_keeps_its_title_and_screen(tmp_path: Path) -> None:
    """``pmon`` in tmux at 80x24 under ``script``: tmux's screen holds the escapes as text, and the raw bytes
    the console wrote hold no escape sequence from the data (no title, clipboard, link, screen switch of its)."""
    db = hostile_store(tmp_path / "pmon.db")
    typescript = tmp_path / "console.typescript"
    shots = tmp_path / "shots"
    pmon = f"{sys.executable} -m pmon --db {db}"
    steps = "\n".join([
        # a key right after Escape would arrive as Alt+key: each Escape gets a moment of its own
        "sleep 4", "shot overview", "keys 3", "sleep 1.5", "keys Enter", "sleep 1.5", "shot log",
        "keys Escape", "sleep 0.5", "keys 4", "sleep 1.5", "keys End", "keys Enter", "sleep 1.5", "shot event",
        "keys Escape", "sleep 0.5", "keys 1", "sleep 1", "keys Down", "keys Enter", "sleep 2", "shot plugin",
        "keys q", "sleep 2", "shot after",
    ])
    result = subprocess.run([str(TUI_DRIVE), "-s", "80x24", "-d", str(shots), "--",
                             "script", "-q", "-f", "-e", "-c", pmon, str(typescript)],
                            input=steps, capture_output=True, text=True, timeout=90,
                            env={**os.environ, "TZ": "UTC"})
    assert result.returncode == 0, result.stdout + result.stderr
    screens = {name: (shots / f"{name}.txt").read_text() for name in ("overview", "log", "event", "plugin", "after")}
    assert "evil\\x1b]0;ID" in screens["overview"]
    assert "\\x1b]0;PWNED-TITLE\\x07" in screens["log"] and "\\x1b]52;c;cHduZWQ=\\x07" in screens["log"]
    assert "[@click=app.quit]CLICK[/]" in squashed(screens["log"])
    assert "\\u202eEVIL\\u202c" in screens["event"] and "alert_firing" in screens["event"]
    assert "evil\\x1b]0;ID-T" in screens["plugin"] and "range 1h" in screens["plugin"]  # cut to fit 80
    assert "[tui-drive: program exited]" in screens["after"]  # q quit (only then), the normal screen is back
    for name, screen in screens.items():
        assert terminal_problems(screen.encode(), colour=False) == [], name
    raw = typescript.read_bytes()
    for sequence in (b"PWNED-TITLE\x07", b"\x1b]0;PWNED", b"\x1b]0;ID-TITLE", b"\x1b]52;", b"\x1b]8;;http://evil",
                     b"\x1b[31mRED", b"\x9b", b"\xc2\x9b", b"\xe2\x80\xae", b"\xe2\x80\x8b", b"\x1b[2J \x1b"):
        assert sequence not in raw, sequence
    # the console's own alternate screen: entered once, left once (the data's \x1b[?1049h stayed text)
    assert raw.count(b"\x1b[?1049h") == 1 and raw.count(b"\x1b[?1049l") == 1

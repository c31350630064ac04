"""``pmon logs`` and ``pmon events``: print recorded logs / events like ``tail``, follow with ``-f``.

Both commands print the last ``--limit`` matching rows oldest first, then with
``-f`` poll for new rows (by id, every half second) until Ctrl-C or SIGTERM,
which end with exit code 0. Recorded text comes from other programs, so every
control character is shown escaped (``\\x1b``, ``\\r``) and never reaches the
terminal raw; colour is added only when stdout is a terminal. ``--json``
prints one JSON object per row instead.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from pmon.models import EventCategory, LogLevel, PluginEvent, PluginLog, Severity
from pmon.plain_text import escape_controls

POLL_SECONDS = 0.5
_BATCH = 1000

LEVEL_STYLES: dict[str, dict[str, Any]] = {
    "debug": {"dim": True},
    "info": {"fg": "green"},
    "warning": {"fg": "yellow"},
    "error": {"fg": "red"},
    "critical": {"fg": "red", "bold": True},
}
SEVERITY_STYLES: dict[str, dict[str, Any]] = {
    "info": {"fg": "green"},
    "low": {"fg": "cyan"},
    "medium": {"fg": "yellow"},
    "high": {"fg": "red"},
    "critical": {"fg": "red", "bold": True},
}


class _Stop(Exception):
    """Raised by the SIGTERM handler to end following like Ctrl-C does."""


def _clock(moment: datetime) -> str:
    """Local wall-clock time to the second, as ``tail``-style tools show it."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _safe(value: Any) -> str:
    return escape_controls(str(value))


def format_log(log: PluginLog) -> str:
    """One log as text lines (traceback indented, for error and critical only), styled by level."""
    level = str(log.level)
    head = click.style(f"{level.upper():<8}", **LEVEL_STYLES.get(level, {}))
    line = f"{_clock(log.timestamp)} {head} {_safe(log.plugin_id)}  {_safe(log.message)}"
    if log.context:
        line += "  " + _safe(json.dumps(log.context, ensure_ascii=False, default=str))
    lines = [line]
    if log.traceback and level in ("error", "critical"):
        lines.extend("    " + escape_controls(part) for part in log.traceback.rstrip("\n").split("\n"))
    return "\n".join(lines)


def format_event(event: PluginEvent) -> str:
    """One event as a text line, styled by severity."""
    severity = str(event.severity)
    head = click.style(f"{severity.upper():<8}", **SEVERITY_STYLES.get(severity, {}))
    line = (f"{_clock(event.timestamp)} {head} {_safe(event.plugin_id)}  [{_safe(event.category)}] "
            f"{_safe(event.event_type)}: {_safe(event.description)}")
    if event.data:
        line += "  " + _safe(json.dumps(event.data, ensure_ascii=False, default=str))
    return line


def log_json(log: PluginLog) -> dict[str, Any]:
    return {"id": log.id, "plugin_id": log.plugin_id, "level": str(log.level), "message": log.message,
            "timestamp": _iso(log.timestamp), "context": log.context, "traceback": log.traceback}


def event_json(event: PluginEvent) -> dict[str, Any]:
    return {"id": event.id, "plugin_id": event.plugin_id, "event_type": event.event_type,
            "description": event.description, "severity": str(event.severity), "category": str(event.category),
            "timestamp": _iso(event.timestamp), "data": event.data}


def _since(text: str | None) -> float | None:
    from pmon.cli import UsageProblem
    from pmon.timespec import moment

    if text is None:
        return None
    try:
        return moment(text, time.time())
    except ValueError as exc:
        raise UsageProblem(f"--since: {exc}") from None


def _db_path() -> Path:
    from pmon.cli import Context

    ctx = click.get_current_context().find_object(Context)
    if ctx is None:  # invoked outside `pmon` (not expected): the default database
        ctx = Context(None, None)
    return ctx.db_path


def _open(path: Path, follow: bool) -> sqlite3.Connection:
    """A reader on ``path``; with ``follow``, wait (saying so once) until the database exists."""
    from pmon.cli import UsageProblem
    from pmon.store.schema import StoreError, open_reader

    told = False
    deadline: float | None = None
    while True:
        try:
            return open_reader(path)
        except StoreError as exc:
            if not follow:
                raise UsageProblem(str(exc)) from None
            if path.exists():  # created but maybe not initialised yet: give the writer a moment
                if deadline is None:
                    deadline = time.monotonic() + 10
                elif time.monotonic() > deadline:
                    raise UsageProblem(str(exc)) from None
        if not told:
            click.echo(f"pmon: waiting for {path} to be created...", err=True)
            told = True
        time.sleep(POLL_SECONDS)


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM ends following like Ctrl-C (only where a handler can be installed: the main thread)."""
    def stop(signum: int, frame: Any) -> None:
        raise _Stop

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """After a broken pipe: send what is left to /dev/null so the exit flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _tail(table: str, fetch: Callable[..., list[Any]], render: Callable[[Any], str],
          to_json: Callable[[Any], dict[str, Any]], *, follow: bool, limit: int, as_json: bool) -> None:
    """Print the last ``limit`` rows oldest first, then with ``follow`` new rows until stopped."""
    path = _db_path()

    def emit(row: Any) -> None:
        if as_json:
            click.echo(json.dumps(to_json(row), default=str))
        else:
            click.echo(render(row), color=None)

    try:
        with _sigterm_stops():
            conn = _open(path, follow)
            try:
                top = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
                for row in reversed(fetch(conn, before_id=top + 1, limit=limit, newest_first=True)):
                    emit(row)
                sys.stdout.flush()
                last = top
                while follow:
                    time.sleep(POLL_SECONDS)
                    while True:
                        rows = fetch(conn, after_id=last, limit=_BATCH, newest_first=False)
                        for row in rows:
                            emit(row)
                        if rows:
                            last = rows[-1].id
                            sys.stdout.flush()
                        if len(rows) < _BATCH:
                            break
            finally:
                conn.close()
    except (KeyboardInterrupt, _Stop):
        return
    except BrokenPipeError:
        _silence_stdout()
        return


_follow = click.option("-f", "--follow", is_flag=True, help="Keep printing new rows as they are recorded (Ctrl-C ends).")
_plugin = click.option("--plugin", default=None, metavar="ID", help="Only this plugin.")
_since_opt = click.option("--since", default=None, metavar="WHEN",
                          help="Only rows from then on: a duration ago (30s, 10m, 2h, 7d) or an ISO time.")
_grep = click.option("--grep", default=None, metavar="TEXT", help="Only rows whose text contains TEXT (literally).")
_limit = click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1),
                      help="How many of the latest matching rows to print first.")
_json = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")


@click.command("logs")
@_follow
@_plugin
@click.option("--level", type=click.Choice([lvl.value for lvl in LogLevel], case_sensitive=False), default=None,
              help="Only this level and above.")
@_since_opt
@_grep
@_limit
@_json
def logs_command(follow: bool, plugin: str | None, level: str | None, since: str | None, grep: str | None,
                 limit: int, as_json: bool) -> None:
    """Print recorded plugin logs, oldest first; -f follows new ones.

    Control characters in recorded text are shown escaped; lines are coloured
    by level only on a terminal.

    \b
    Example:
      pmon logs --plugin billing --level error --since 2h
      pmon logs -f --grep timeout
      pmon logs --json --limit 500 | jq .message
    """
    from pmon.store import queries

    start = _since(since)
    lvl = level.lower() if level else None

    def fetch(conn: sqlite3.Connection, **kw: Any) -> list[PluginLog]:
        return queries.logs(conn, plugin_id=plugin, min_level=lvl, text=grep, since=start, **kw)

    _tail("plugin_logs", fetch, format_log, log_json, follow=follow, limit=limit, as_json=as_json)


@click.command("events")
@_follow
@_plugin
@click.option("--severity", type=click.Choice([sev.value for sev in Severity], case_sensitive=False), default=None,
              help="Only this severity and above.")
@click.option("--category", type=click.Choice([cat.value for cat in EventCategory], case_sensitive=False),
              default=None, help="Only this category.")
@_since_opt
@_grep
@_limit
@_json
def events_command(follow: bool, plugin: str | None, severity: str | None, category: str | None,
                   since: str | None, grep: str | None, limit: int, as_json: bool) -> None:
    """Print recorded plugin events, oldest first; -f follows new ones.

    Control characters in recorded text are shown escaped; lines are coloured
    by severity only on a terminal.

    \b
    Example:
      pmon events --severity high --since 1d
      pmon events -f --category error
      pmon events --json --plugin billing
    """
    from pmon.store import queries

    start = _since(since)
    sev = severity.lower() if severity else None
    cat = category.lower() if category else None

    def fetch(conn: sqlite3.Connection, **kw: Any) -> list[PluginEvent]:
        return queries.events(conn, plugin_id=plugin, min_severity=sev, category=cat, text=grep, since=start, **kw)

    _tail("plugin_events", fetch, format_event, event_json, follow=follow, limit=limit, as_json=as_json)

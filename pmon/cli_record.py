"""`pmon record metric|log|event|snapshot`: record from the shell, cron or a non-Python plugin.

Each command makes a short-lived ``Monitor`` on the configured database, calls the
same ``record_*`` / ``create_snapshot`` method a Python plugin would (so the
validation is the same), waits until the row is committed and exits 0 silently
(like ``logger``). Invalid input exits 2 with one line ``pmon: <field>: <problem>``;
a row that could not be written exits 1 with the writer's error.

Registered on the main group by ``pmon.cli`` (``main.add_command(record)``); this
module imports ``pmon.cli`` only inside functions, so either may be imported first.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable
from typing import Any

import click

__all__ = ["record", "record_metric", "record_log", "record_event", "record_snapshot"]

_SEVERITY_CHOICES = ("info", "low", "medium", "high", "critical")
_FLUSH_TIMEOUT = 30.0
_GIVE_UP_AFTER_ERRORS = 2.0


def _problem(message: str, exit_code: int = 2) -> click.ClickException:
    """The CLI's one-line error (``pmon: ...``) with the given exit code."""
    from pmon.cli import UsageProblem

    exc = UsageProblem(message)
    exc.exit_code = exit_code
    return exc


def _read_source(option: str, source: str) -> str:
    """The text of a file (``-`` is stdin); an unreadable file is one line naming the option."""
    try:
        if source == "-":
            return sys.stdin.read()
        with open(source, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError as exc:
        raise _problem(f"{option}: cannot read {source!r}: {exc.strerror or exc}") from None


def _json_object(option: str, text: str | None) -> dict[str, Any] | None:
    """Parse ``--context`` / ``--data`` (inline JSON, or ``@file`` / ``@-``) into a dict."""
    if text is None:
        return None
    where = ""
    if text.startswith("@"):
        where = f" in {text[1:]!r}" if text[1:] != "-" else " on stdin"
        text = _read_source(option, text[1:] or "-")
    return _parse_object(option, text, where)


def _parse_object(option: str, text: str, where: str = "") -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _problem(f"{option}: invalid JSON{where} ({exc})") from None
    if not isinstance(value, dict):
        raise _problem(f"{option}: expected a JSON object{where}, got {type(value).__name__}")
    return value


def _meta(pairs: tuple[str, ...]) -> dict[str, str] | None:
    """``--meta key=value`` pairs (values stay strings)."""
    if not pairs:
        return None
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _problem(f"--meta: {pair!r} is not key=value")
        result[key.strip()] = value
    return result


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _problem(f"value: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _problem(f"value: {text!r} is not finite; NaN and infinities cannot be stored")
    return value


def _when(text: str | None) -> float | None:
    """``--at``: epoch seconds, an ISO 8601 time (naive means local) or a duration ago (``5m``)."""
    if text is None:
        return None
    import time

    from pmon.timespec import moment

    try:
        return float(text)
    except ValueError:
        pass
    try:
        return moment(text, time.time())
    except ValueError as exc:
        raise _problem(f"--at: {exc}") from None


def _commit(monitor: Any) -> tuple[bool, str | None]:
    """Wait for the commit: up to 30 s, but give up after a few seconds of write errors (a directory, no access)."""
    import time

    start = time.monotonic()
    while True:
        if monitor.flush(0.25):
            return True, None
        status = monitor.status()
        elapsed = time.monotonic() - start
        if elapsed > _FLUSH_TIMEOUT or (status.get("write_errors") and elapsed > _GIVE_UP_AFTER_ERRORS):
            return False, status.get("last_error")


def _record(ctx: click.Context, call: Callable[[Any], None], done: str, verbose: bool) -> None:
    """Run ``call(monitor)`` on a short-lived monitor, wait for the commit, report."""
    from pmon.cli import Context
    from pmon.monitor import Monitor

    obj = ctx.find_object(Context)
    if obj is None:  # invoked without the main group (tests, embedding): defaults
        obj = Context(None, None)
    monitor = Monitor(obj.db_path, config=obj.config, flush_interval=0.05, sample_interval=0)
    quiet = logging.NullHandler()  # the writer's warnings would be a second line; its error is reported below
    pmon_log = logging.getLogger("pmon")
    pmon_log.addHandler(quiet)
    committed = False
    try:
        try:
            call(monitor)
        except ValueError as exc:
            raise _problem(str(exc)) from None
        committed, error = _commit(monitor)
    finally:
        monitor.stop_monitoring(timeout=5.0 if committed else 0.5)
        pmon_log.removeHandler(quiet)
    if not committed:
        raise _problem(f"{monitor.db_path}: not written ({error or f'not committed within {_FLUSH_TIMEOUT:g} s'})",
                       exit_code=1)
    if verbose:
        click.echo(f"{done} in {monitor.db_path}")


_at_option = click.option("--at", "at", metavar="TIME", default=None,
                          help="When it happened: epoch seconds, an ISO time or a duration ago (5m); default now.")
_verbose_option = click.option("-v", "--verbose", is_flag=True, help="Print one line saying what was recorded.")


@click.group("record", context_settings={"help_option_names": ["-h", "--help"]})
def record() -> None:
    """Record a metric, log line, event or snapshot from the shell (cron, scripts, other languages).

    Validation is the same as the Python API's: invalid input exits 2 with one
    line naming the field. The row is committed before the command exits 0;
    nothing is printed on success unless -v.

    \b
    Example:
      pmon record metric my_plugin cpu_usage 45.2 --meta source=cron
      pmon record log my_plugin error "db down" --context '{"db_host": "x"}'
      pmon record event my_plugin startup "started" --severity info --data @event.json
      echo '{"cpu_usage": 12.5}' | pmon record snapshot my_plugin
    """


@record.command("metric", context_settings={"ignore_unknown_options": True})
@click.argument("plugin")
@click.argument("metric")
@click.argument("value")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Metadata, repeatable (values are strings).")
@_at_option
@_verbose_option
@click.pass_context
def record_metric(ctx: click.Context, plugin: str, metric: str, value: str, meta: tuple[str, ...],
                  at: str | None, verbose: bool) -> None:
    """Record one metric VALUE (a number) for PLUGIN.

    METRIC is one of cpu_usage, memory_usage, response_time, error_rate,
    throughput, disk_io, network_io, or a dotted lowercase custom name
    (custom.queue_depth). A negative VALUE works as is (-3.5).

    \b
    Example:
      pmon record metric my_plugin cpu_usage 45.2 --meta source=cron
      pmon record metric my_plugin custom.queue_depth 17 --at 2026-11-26T04:00Z
    """
    number = _number(value)
    metadata = _meta(meta)
    ts = _when(at)
    _record(ctx, lambda m: m.record_metric(plugin, metric, number, metadata, timestamp=ts),
            f"recorded metric {plugin} {metric}={number:g}", verbose)


@record.command("log")
@click.argument("plugin")
@click.argument("level")
@click.argument("message")
@click.option("--context", "context", metavar="JSON|@FILE", default=None,
              help="A JSON object stored with the line (inline, @file, or @- for stdin).")
@click.option("--traceback-file", "traceback_file", metavar="FILE", default=None,
              help="A file whose text is stored as the traceback (- for stdin).")
@_at_option
@_verbose_option
@click.pass_context
def record_log(ctx: click.Context, plugin: str, level: str, message: str, context: str | None,
               traceback_file: str | None, at: str | None, verbose: bool) -> None:
    """Record one log line for PLUGIN at LEVEL (debug, info, warning, error, critical).

    \b
    Example:
      pmon record log my_plugin error "db down" --context '{"db_host": "x"}' --traceback-file tb.txt
      pmon record log my_plugin info "nightly job done" --context @job.json
    """
    ctx_dict = _json_object("--context", context)
    traceback = None if traceback_file is None else _read_source("--traceback-file", traceback_file)
    ts = _when(at)
    _record(ctx, lambda m: m.record_log(plugin, level, message, ctx_dict, traceback, timestamp=ts),
            f"recorded log {plugin} {level}", verbose)


@record.command("event")
@click.argument("plugin")
@click.argument("event_type", metavar="TYPE")
@click.argument("description")
@click.option("--severity", default="info", show_default=True, metavar="|".join(_SEVERITY_CHOICES),
              help="How serious the event is.")
@click.option("--data", "data", metavar="JSON|@FILE", default=None,
              help="A JSON object stored with the event (inline, @file, or @- for stdin).")
@_at_option
@_verbose_option
@click.pass_context
def record_event(ctx: click.Context, plugin: str, event_type: str, description: str, severity: str,
                 data: str | None, at: str | None, verbose: bool) -> None:
    """Record one event of TYPE for PLUGIN (startup, shutdown, error, a name of yours).

    \b
    Example:
      pmon record event my_plugin startup "started" --severity info --data @event.json
      pmon record event my_plugin deploy "v2.3 rolled out" --data '{"version": "2.3"}'
    """
    payload = _json_object("--data", data)
    ts = _when(at)
    _record(ctx, lambda m: m.record_event(plugin, event_type, description, severity, payload, timestamp=ts),
            f"recorded event {plugin} {event_type} ({severity})", verbose)


@record.command("snapshot")
@click.argument("plugin")
@click.argument("source", required=False, default=None, metavar="[-]")
@click.option("--file", "file", metavar="FILE", default=None, help="Read the JSON object from FILE (default: stdin).")
@_at_option
@_verbose_option
@click.pass_context
def record_snapshot(ctx: click.Context, plugin: str, source: str | None, file: str | None, at: str | None,
                    verbose: bool) -> None:
    """Record a performance snapshot for PLUGIN from a JSON object on stdin (or --file).

    Fields: cpu_usage, memory_usage, response_time, error_rate, request_count,
    throughput (numbers; missing ones are 0) and disk_io, network_io,
    custom_metrics (objects). Any other field is an error.

    \b
    Example:
      echo '{"cpu_usage": 12.5, "request_count": 40}' | pmon record snapshot my_plugin -
      pmon record snapshot my_plugin --file snapshot.json
    """
    if source is not None and file is not None and source != file:
        raise _problem(f"--file: give the snapshot either as {source!r} or with --file, not both")
    where = file or source or "-"
    option = "--file" if file else "stdin" if where == "-" else "snapshot"
    text = _read_source(option, where)
    snapshot = _parse_object(option, text, "" if where == "-" else f" in {where!r}")
    ts = _when(at)
    _record(ctx, lambda m: m.create_snapshot(plugin, snapshot, timestamp=ts), f"recorded snapshot {plugin}", verbose)


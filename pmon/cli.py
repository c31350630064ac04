"""The `pmon` command line (click). Commands stay thin: they parse, call, print."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pmon import __version__, timespec
from pmon.config import Config, ConfigError, database_path, load_config
from pmon.plain_text import escape_controls
from pmon.store.schema import StoreError


class UsageProblem(click.ClickException):
    """One clear line on stderr and exit code 2 (bad config, bad database path, bad argument)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"pmon: {escape_controls(self.format_message())}", err=True)


class Context:
    """What every command needs: the config and the database path, resolved once."""

    def __init__(self, db: str | None, config_file: str | None) -> None:
        self._db = db
        self._config_file = config_file
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self._config_file)
            except ConfigError as exc:
                raise UsageProblem(str(exc)) from None
        return self._config

    @property
    def db_path(self) -> Path:
        return database_path(self.config, self._db)

    @property
    def config_file(self) -> str | None:
        """``--config`` / ``$PMON_CONFIG`` as given (not yet loaded)."""
        return self._config_file


pass_context = click.make_pass_decorator(Context)


class _Commands(click.Group):
    """The top-level group: an SQLite error escaping any command is one line naming the database, not a traceback.

    Why here: a file damaged in its middle opens fine and fails only when a
    query reaches the bad page, in whichever command reads it.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except sqlite3.Error as exc:
            found = ctx.find_object(Context)
            where = found.db_path if found is not None else "the database"
            raise UsageProblem(f"{where}: {exc}{_damage_hint(exc)}") from None


def _damage_hint(exc: BaseException) -> str:
    text = str(exc)
    if "malformed" in text or "not a database" in text:
        return " (the file is damaged; pmon leaves it as it is)"
    return ""


@click.group(cls=_Commands, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="PMON_DB", metavar="PATH", help="Database file (default: $PMON_DB, pmon.toml, XDG data dir).")
@click.option("--config", "config_file", envvar="PMON_CONFIG", metavar="PATH",
              help="pmon.toml to use (default: $PMON_CONFIG, ./pmon.toml, XDG config dir).")
@click.version_option(__version__, "-V", "--version", prog_name="pmon")
@click.pass_context
def main(ctx: click.Context, db: str | None, config_file: str | None) -> None:
    """pmon: monitoring console for plugin-based applications.

    With no command, opens the console on the configured database.

    \b
    Examples:
      pmon                      the console (same as `pmon tui`)
      pmon demo                 a simulated plugin host, recording live, in the console
      pmon status               database, row counts, plugins
      pmon bench --rows 100000  measure the recording and query paths
    """
    ctx.obj = Context(db, config_file)
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Database path and size, rows per table, plugins, schema version.

    \b
    Example:
      pmon --db ./pmon.db status --json
    """
    from pmon.store import queries
    from pmon.store.schema import open_reader

    path = ctx.db_path
    try:
        conn = open_reader(path)
    except StoreError as exc:
        raise UsageProblem(str(exc)) from None
    try:
        counts = queries.row_counts(conn)
        summaries = queries.plugins(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    sizes = {suffix or "db": os.path.getsize(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")
             if os.path.exists(f"{path}{suffix}")}
    from pmon.collect.daemon_lock import running_daemon

    collector = running_daemon(path)
    report = {
        "db_path": str(path),
        "collector_pid": collector,
        "schema_version": version,
        "size_bytes": sizes,
        "rows": counts,
        "plugins": [{"plugin_id": p.plugin_id, "status": p.status, "last_seen": p.last_seen,
                     "metrics": {k: v.value for k, v in sorted(p.latest.items())}} for p in summaries],
    }
    if as_json:
        _emit_json(report)
        return
    click.echo(f"database  {path}  (schema v{version})")
    running = "not running (pmon collect)" if not collector else "running" + (f", pid {collector}" if collector > 0 else "")
    click.echo(f"collector {running}")
    click.echo("size      " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sizes.items()))
    click.echo("rows      " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    click.echo(f"plugins   {len(summaries)}")
    for summary in summaries[:STATUS_PLUGINS_SHOWN]:
        latest = " ".join(f"{k}={v.value:.4g}" for k, v in sorted(summary.latest.items()))
        click.echo(f"  {click.style(escape_controls(summary.plugin_id), bold=True)}  {summary.status}  {latest}")
    if len(summaries) > STATUS_PLUGINS_SHOWN:
        click.echo(f"  … and {len(summaries) - STATUS_PLUGINS_SHOWN:,} more; `pmon plugins` lists them all")


STATUS_PLUGINS_SHOWN = 50
"""`pmon status` is a glance: past this many plugins it says how many more there are."""


def _open_console(path: Path, config: Config) -> None:
    from pmon.tui.app import run

    _refuse_foreign_file(path)
    run(path, refresh_interval=config.ui.refresh_interval)


def _refuse_foreign_file(path: Path) -> None:
    """One line and exit 2 for a path pmon could never use (a folder, a damaged or foreign file, a newer schema),
    found through a read-only connection; a missing or still empty database passes (the console waits for data,
    a writer creates the schema).

    Why before any writer: a read-write connection closed on a file that is not a database deletes the -wal and
    -shm beside it; a read-only one touches nothing.
    """
    from pmon.store.schema import open_reader

    try:
        if not path.is_dir() and (not path.exists() or path.stat().st_size == 0):
            return
        open_reader(path).close()
    except OSError as exc:
        raise UsageProblem(f"{path}: {exc.strerror or exc}") from None
    except StoreError as exc:
        text = str(exc)
        if not any(passing in text for passing in ("no schema yet", "locked", "busy")):
            raise UsageProblem(text) from None


@main.command()
@click.option("--db", metavar="PATH", help="Database file (same as `pmon --db PATH tui`).")
@click.option("--config", "config_file", metavar="PATH", help="pmon.toml to use (same as `pmon --config PATH tui`).")
@pass_context
def tui(ctx: Context, db: str | None, config_file: str | None) -> None:
    """The console: overview, metrics, logs, events and snapshots, live.

    Read-only: it never blocks or changes what the writers record. A missing
    or empty database shows where it looked and how to start recording.

    \b
    Example:
      pmon tui --db ~/.local/share/pmon/demo.db
    """
    if db or config_file:
        ctx = Context(db or ctx._db, config_file or ctx._config_file)
    _open_console(ctx.db_path, ctx.config)


@main.command()
@click.option("--rows", default=1_000_000, show_default=True, type=click.IntRange(min=1000),
              help="Rows in the generated store for the query figures.")
@click.option("--points", default=1_000_000, show_default=True, type=click.IntRange(min=1000),
              help="Points recorded end to end per repeat for the persist figures.")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(min=1), help="Repeats per figure (median).")
@click.option("--json", "as_json", is_flag=True, help="Print name -> {value, baseline, ratio, target, met}.")
@click.option("--console", "console", is_flag=True,
              help="Measure the console instead: launch, refresh tick, idle CPU, drill-down.")
@click.option("--drill-rows", default=10_000_000, show_default=True, type=click.IntRange(min=1000),
              help="With --console: rows in the store the drill-down figure reads.")
@click.option("--sampler", is_flag=True, help="Measure the daemon's sampling: cost per process, CPU at 100 processes.")
@click.option("--retention", is_flag=True,
              help="Measure pruning and rollups on a store of --rows rows (use --rows 10000000 for the target figures).")
@click.option("--analysis", is_flag=True, help="Measure performance statistics over --rows points and the detectors.")
@click.option("--api", "api", is_flag=True,
              help="Measure the HTTP API on a real `pmon collect --api` under a loopback load (needs pmon[api]).")
def bench(rows: int, points: int, repeats: int, as_json: bool, console: bool, drill_rows: int, sampler: bool,
          retention: bool, analysis: bool, api: bool) -> None:
    """Measure the recording and query paths (or, with --console, the console) against baselines in the same run.

    \b
    Examples:
      pmon bench --rows 100000 --json
      pmon bench --console
      pmon bench --sampler
      pmon bench --retention --rows 10000000
      pmon bench --analysis
      pmon bench --api
    """
    from pmon.bench import (render_table, run_analysis_bench, run_bench, run_console_bench, run_retention_bench,
                            run_sampler_bench)

    if console + sampler + retention + analysis + api > 1:
        raise UsageProblem("--console, --sampler, --retention, --analysis, --api: choose one")
    progress = None if as_json else lambda m: click.echo(m, err=True)
    if api:
        from pmon.api.api_bench import run_api_bench

        results = run_api_bench(repeats=repeats, progress=progress)
    elif sampler:
        results = run_sampler_bench(repeats=repeats, progress=progress)
    elif analysis:
        results = run_analysis_bench(rows=rows, repeats=repeats, progress=progress)
    elif retention:
        results = run_retention_bench(rows=rows, repeats=repeats, progress=progress)
    elif console:
        results = run_console_bench(rows=rows, drill_rows=drill_rows, repeats=repeats, progress=progress)
    else:
        results = run_bench(rows=rows, points=points, repeats=repeats, progress=progress)
    if as_json:
        _emit_json({r.name: r.as_dict() for r in results})
    else:
        click.echo(render_table(results))


def _seconds(text: str) -> float:
    """A duration option (``30d``) for click: its error names the option."""
    try:
        return timespec.duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _check_api(config: Config) -> None:
    """The API's settings, checked before the daemon starts: aiohttp installed, listen valid, a token where needed."""
    try:
        import aiohttp  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError:
        raise UsageProblem("--api: the API needs aiohttp and prometheus-client: pip install 'pmon[api]'") from None
    from pmon.api.listen import parse_listen
    from pmon.api.security import resolve_token

    try:
        resolve_token(config.api, parse_listen(config.api.listen), config.file.parent if config.file else None)
    except ValueError as exc:
        raise UsageProblem(f"--api: {exc}") from None


def _started(daemon: Any) -> str:
    line = f"ok started, pid {os.getpid()}"
    if daemon.api is not None:
        line += f", API on {daemon.api.url}"
    return line


@main.command()
@click.option("--once", is_flag=True, help="Sample every plugin once (with a short baseline for rates), snapshot, exit.")
@click.option("--foreground", is_flag=True,
              help="Stay attached and log to stderr (use this under systemd or a supervisor).")
@click.option("-v", "--verbose", is_flag=True, help="Debug log lines.")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None,
              help="Where a detached daemon logs (default: DB.collect.log beside the database).")
@click.option("--api", "api", metavar="[HOST:]PORT", is_flag=False, flag_value="", default=None,
              help="Serve the HTTP API, live stream and Prometheus /metrics (default [api] listen, "
                   "127.0.0.1:8765). Needs pmon[api].")
@pass_context
def collect(ctx: Context, once: bool, foreground: bool, verbose: bool, log_file: str | None,
            api: str | None) -> None:
    """The collector daemon: samples the [plugins.NAME] of pmon.toml with psutil.

    Records CPU, memory, disk I/O, threads, file descriptors and context
    switches per plugin, the system as plugin `system`, itself as plugin
    `pmon`; started / stopped / restarted events; a snapshot per plugin every
    collector.snapshot_interval; prunes and rolls up old rows. SIGTERM or
    SIGINT flush and exit 0; SIGHUP reloads pmon.toml. One daemon per database.
    Without --foreground (or --once) it detaches and logs to a file.

    \b
    Exit codes: 0 stopped cleanly, 1 another daemon collects into this
    database (or the daemon failed), 2 bad arguments, config or database path.

    \b
    Examples:
      pmon --config /etc/pmon/pmon.toml collect --foreground
      pmon collect --once -v
      pmon collect --foreground --api 127.0.0.1:8765
      kill -HUP "$(cat ~/.local/share/pmon/pmon.db.collect.lock)"   # reload the config
    """
    from pmon.collect.daemon import EXIT_FAILED, Daemon
    from pmon.collect.daemon_lock import AlreadyRunning
    from pmon.collect.service import configure_logging, detach, report_ready, wait_ready

    config = ctx.config
    db_path = ctx.db_path.expanduser().absolute()
    attached = foreground or once
    if log_file and attached:
        raise UsageProblem("--log-file: only for a detached daemon (--foreground and --once log to stderr)")
    log_path = None if attached else Path(log_file or db_path.with_name(db_path.name + ".collect.log")).absolute()
    if config.file is not None:
        config = dataclasses.replace(config, file=config.file.absolute())
    if api is not None:
        if once:
            raise UsageProblem("--api: serves while the daemon runs; not with --once")
        config = dataclasses.replace(config, api=dataclasses.replace(config.api, enabled=True,
                                                                      listen=api or config.api.listen))
    if config.api.enabled and not once:
        _check_api(config)  # before detaching: a missing token is said here, not in a log file
    reload_from = config.file or (Path.cwd() / "pmon.toml")  # resolved now: a detached daemon works from /
    _refuse_foreign_file(db_path)  # before detaching, and before the daemon opens it for writing
    try:
        configure_logging(verbose=verbose, log_file=log_path)  # before detaching: a bad path is said here
    except OSError as exc:
        raise UsageProblem(f"{log_path}: cannot write the log: {exc.strerror or exc}") from None
    if not attached:
        ready = detach(log_path)
        if ready is not None:  # the original process: report how the start went
            line = wait_ready(ready)
            if line.startswith("ok"):
                click.echo(f"pmon collect: {line[3:]}; logging to {log_path}")
                return
            click.echo(f"pmon: {line or f'the daemon did not start; see {log_path}'}", err=True)
            sys.exit(EXIT_FAILED)
    try:
        daemon = Daemon(config, db_path, config_file=reload_from)
        daemon.install_signal_handlers()
        code = daemon.run(once=once, on_ready=lambda: report_ready(_started(daemon)))
        if daemon.failure:
            report_ready(daemon.failure)
            click.echo(f"pmon: {escape_controls(daemon.failure)}", err=True)
    except AlreadyRunning as exc:
        report_ready(str(exc))
        click.echo(f"pmon: {escape_controls(str(exc))}", err=True)
        sys.exit(EXIT_FAILED)
    except (StoreError, ConfigError) as exc:
        report_ready(str(exc))
        raise UsageProblem(str(exc)) from None
    sys.exit(code)


@main.command()
@click.option("--older-than", "older_than", metavar="DURATION", default=None,
              callback=lambda ctx, param, value: None if value is None else _seconds(value),
              help="Delete raw rows older than this (e.g. 30d, 12h); default: [retention] days.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_context
def prune(ctx: Context, older_than: float | None, as_json: bool) -> None:
    """Roll up, then delete old rows now, as the daemon does continuously.

    Raw metrics, logs, events and snapshots older than [retention] days (or
    --older-than) go; their 1-minute and 1-hour rollups stay (minute_rollup_days,
    rollup_days), so long charts still show them. Steps hold the write lock
    at most [retention] max_lock_ms, so running recorders are not blocked.

    \b
    Examples:
      pmon prune
      pmon --db ./pmon.db prune --older-than 7d --json
    """
    from pmon.store.retention import prune as run_prune

    from pmon.store.schema import open_reader

    path = ctx.db_path
    if not path.exists():
        raise UsageProblem(f"{path}: no database here; nothing to prune")
    try:
        open_reader(path).close()  # refuses what is not a pmon database before anything opens it for writing
        report = run_prune(path, ctx.config.retention, older_than=older_than)
    except StoreError as exc:
        raise UsageProblem(str(exc)) from None
    if report.failed:
        raise UsageProblem(report.failed)
    if as_json:
        _emit_json(dataclasses.asdict(report))
    else:
        click.echo(report.summary())


def _alert_row(alert: Any, now: float) -> dict[str, Any]:
    return {"id": alert.id, "rule": alert.rule, "plugin_id": alert.plugin_id, "metric": alert.metric,
            "state": str(alert.state), "value": alert.value, "threshold": alert.threshold, "severity": alert.severity,
            "started_at": alert.started_at, "fired_at": alert.fired_at, "resolved_at": alert.resolved_at,
            "acked_at": alert.acked_at, "acked_by": alert.acked_by, "reason": alert.reason}


@main.group(invoke_without_command=True)
@click.option("--state", type=click.Choice(["open", "pending", "firing", "resolved"]), default=None,
              help="Only alerts in this state (default: all, newest first).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def alerts(click_ctx: click.Context, state: str | None, limit: int, as_json: bool) -> None:
    """Alerts of the [[alerts]] rules: pending, firing, resolved; ack and silence them.

    The daemon (and a host with start_monitoring()) evaluates the rules; an
    alert fires after its condition held for the rule's `for`, and resolves
    only when the value crosses the rule's `clear` threshold.

    \b
    Examples:
      pmon alerts --state firing
      pmon alerts ack 12
      pmon alerts silence cpu_hot --for 1h --reason "deploying"
    """
    if click_ctx.invoked_subcommand is not None:
        return
    import time

    from pmon.store import alert_store
    from pmon.store.schema import open_reader

    ctx = click_ctx.find_object(Context)
    try:
        conn = open_reader(ctx.db_path)
    except StoreError as exc:
        raise UsageProblem(str(exc)) from None
    try:
        found = alert_store.alerts(conn, state=state, limit=limit)
        silences = alert_store.active_silences(conn, time.time())
    finally:
        conn.close()
    now = time.time()
    if as_json:
        _emit_json([_alert_row(a, now) for a in found])
        return
    if not found:
        click.echo("no alerts" + (f" in state {state}" if state else ""))
    for a in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a.fired_at or a.started_at))
        acked = f"  acked by {escape_controls(a.acked_by or '?')}" if a.acked_at else ""
        click.echo(f"{a.id:>5}  {str(a.state):<8}  {a.severity:<8}  {when}  {escape_controls(a.rule)}  "
                   f"{escape_controls(a.plugin_id)}  {a.metric}={a.value:g} (threshold {a.threshold:g}){acked}")
    for sil in silences:
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(sil.until))
        click.echo(f"silenced: {escape_controls(sil.rule)} on {escape_controls(sil.plugin)} until {until}"
                   + (f" ({escape_controls(sil.reason)})" if sil.reason else ""))


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", "who", default=None, help="Who acknowledges (default: $USER).")
@pass_context
def alerts_ack(ctx: Context, alert_id: int, who: str | None) -> None:
    """Acknowledge a pending or firing alert: it shows as acked, and still resolves by itself.

    \b
    Example:
      pmon alerts ack 12
    """
    import time

    from pmon.store import alert_store
    from pmon.store.schema import open_writer

    try:
        if not ctx.db_path.exists():
            raise StoreError(f"{ctx.db_path}: no database here (check --db / PMON_DB)")
        conn = open_writer(ctx.db_path, ctx.config.store.busy_timeout_ms)
        try:
            alert = alert_store.ack(conn, alert_id, time.time(), who or os.environ.get("USER") or "pmon")
        finally:
            conn.close()
    except StoreError as exc:
        raise UsageProblem(str(exc)) from None
    click.echo(f"acked alert {alert.id}: {escape_controls(alert.rule)} on {escape_controls(alert.plugin_id)}")


@alerts.command("silence")
@click.argument("rule")
@click.option("--for", "duration", required=True, metavar="DURATION", help="How long, e.g. 30m, 1h, 2d.")
@click.option("--plugin", default="*", show_default=True, help="Only plugins matching this glob.")
@click.option("--reason", default="", help="Shown next to the silence.")
@pass_context
def alerts_silence(ctx: Context, rule: str, duration: str, plugin: str, reason: str) -> None:
    """Stop a rule notifying (events, callbacks) for a while; its alerts are still evaluated and listed.

    \b
    Example:
      pmon alerts silence cpu_hot --for 1h --plugin 'billing*' --reason "deploying"
    """
    import time

    from pmon.analysis.alert_rules import parse_duration
    from pmon.store import alert_store
    from pmon.store.schema import open_writer

    names = [r.name for r in ctx.config.alerts]
    if rule not in names:
        raise UsageProblem(f"RULE: {rule!r} is not a rule in {ctx.config.file or 'the config'} "
                           f"(rules: {', '.join(names) or 'none'})")
    try:
        seconds = parse_duration(duration, "--for")
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    try:
        if not ctx.db_path.exists():
            raise StoreError(f"{ctx.db_path}: no database here (check --db / PMON_DB)")
        conn = open_writer(ctx.db_path, ctx.config.store.busy_timeout_ms)
        try:
            silence = alert_store.silence(conn, rule, time.time() + seconds, plugin=plugin, reason=reason)
        finally:
            conn.close()
    except StoreError as exc:
        raise UsageProblem(str(exc)) from None
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(silence.until))
    click.echo(f"silenced {escape_controls(rule)} on {escape_controls(plugin)} until {until}")


def _moment(text: str, now: float) -> float:
    """A point-in-time option for click (see ``pmon.timespec.moment``)."""
    try:
        return timespec.moment(text, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _time_range(since: str, until: str | None) -> tuple[float, float]:
    import time

    now = time.time()
    start = _moment(since, now)
    end = _moment(until, now) if until else now
    if start >= end:
        raise UsageProblem(f"--since ({since}) must be before --until ({until or 'now'})")
    return start, end


def _read(ctx: Context, query: Callable[[Any], Any]) -> Any:
    """Run one read on a read-only connection to the database; a missing or foreign file is one line."""
    from pmon.store.schema import open_reader

    try:
        conn = open_reader(ctx.db_path)
    except StoreError as exc:
        raise UsageProblem(str(exc)) from None
    try:
        return query(conn)
    finally:
        conn.close()


_since_option = click.option("--since", default="1h", show_default=True, metavar="WHEN",
                             help="Start: a duration ago (30m, 24h, 7d) or an ISO time.")
_until_option = click.option("--until", default=None, metavar="WHEN", help="End (default: now).")
_plugin_option = click.option("--plugin", default=None, help="Only this plugin.")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@main.group()
def analytics() -> None:
    """Trends, performance statistics, error groups and detector backtests over the stored data.

    \b
    Examples:
      pmon analytics performance --since 24h
      pmon analytics errors --plugin payments --json
      pmon analytics detect --since 7d
    """


@analytics.command("trends")
@_plugin_option
@_since_option
@_until_option
@_json_option
@pass_context
def analytics_trends(ctx: Context, plugin: str | None, since: str, until: str | None, as_json: bool) -> None:
    """Every plugin x metric over the range: count, avg, min, max, and the change against the range before.

    \b
    Example:
      pmon analytics trends --since 24h --plugin search
    """
    from pmon.analysis.trends import trends
    start, end = _time_range(since, until)
    rows = _read(ctx, lambda conn: trends(conn, start, end, plugin_id=plugin))
    if as_json:
        _emit_json([r.to_dict() for r in rows])
        return
    click.echo(f"{'plugin':<20} {'metric':<28} {'count':>8} {'avg':>10} {'min':>10} {'max':>10} {'change':>9}")
    for r in rows:
        change = "-" if r.change_pct is None else f"{r.change_pct:+.1f}%"
        click.echo(f"{escape_controls(r.plugin_id)[:20]:<20} {r.metric[:28]:<28} {r.count:>8,} {_num(r.avg):>10} "
                   f"{_num(r.min):>10} {_num(r.max):>10} {change:>9}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


@analytics.command("performance")
@_plugin_option
@_since_option
@_until_option
@_json_option
@pass_context
def analytics_performance(ctx: Context, plugin: str | None, since: str, until: str | None, as_json: bool) -> None:
    """Requests, mean / p50 / p95 / p99 response time, error rate, throughput and uptime, per plugin and overall.

    Percentiles are exact up to 100,000 response times in the range, and within
    2 % beyond (marked ≈).

    \b
    Example:
      pmon analytics performance --since 24h --json
    """
    from pmon.analysis.performance import performance
    start, end = _time_range(since, until)
    stats = _read(ctx, lambda conn: performance(conn, start, end, plugin_id=plugin))
    if as_json:
        _emit_json(stats.to_dict())
        return
    click.echo(f"{'plugin':<20} {'requests':>9} {'mean':>9} {'p50':>9} {'p95':>9} {'p99':>9} {'errors':>7} "
               f"{'req/s':>8} {'uptime':>7}")
    for p in (*stats.plugins, stats.overall):
        approx = "" if p.exact else "≈"
        name = "(all)" if p.plugin_id is None else escape_controls(p.plugin_id)[:20]
        err = "-" if p.error_rate is None else f"{p.error_rate * 100:.1f}%"
        click.echo(f"{name:<20} {p.requests:>9,} {_ms(p.mean_ms):>9} {approx + _ms(p.p50_ms):>9} "
                   f"{approx + _ms(p.p95_ms):>9} {approx + _ms(p.p99_ms):>9} {err:>7} {_num(p.throughput):>8} "
                   f"{p.uptime_pct:>6.1f}%")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


@analytics.command("errors")
@_plugin_option
@_since_option
@_until_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@_json_option
@pass_context
def analytics_errors(ctx: Context, plugin: str | None, since: str, until: str | None, limit: int,
                     as_json: bool) -> None:
    """ERROR and CRITICAL logs grouped by fingerprint: exception type, normalised message, the plugin's own frames.

    \b
    Example:
      pmon analytics errors --since 24h --plugin payments
    """
    import time

    from pmon.analysis.errors import error_groups
    start, end = _time_range(since, until)
    groups = _read(ctx, lambda conn: error_groups(conn, start, end, plugin_id=plugin, limit=limit))
    if as_json:
        _emit_json([g.to_dict() for g in groups])
        return
    if not groups:
        click.echo("no errors in the range")
    for g in groups:
        last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(g.last_seen))
        first = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(g.first_seen))
        kind = g.exception_type or "error"
        text = g.message if g.message.startswith(kind) else f"{kind}: {g.message}"
        click.echo(f"{g.count:>7,}x  {escape_controls(text)}")
        click.echo(f"          {', '.join(map(escape_controls, g.plugins))}  first {first}  last {last}  "
                   f"[{g.fingerprint}]")
        if g.frames:
            click.echo(f"          at {' < '.join(map(escape_controls, g.frames[-3:]))}")


@analytics.command("baseline")
@click.argument("plugin")
@click.option("--snapshot", "snapshot_id", type=int, default=None,
              help="The baseline snapshot's id (default: the last one before the plugin's last restart).")
@click.option("--regression", "regression_pct", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="A watched field worse by more than this % is a regression.")
@_json_option
@pass_context
def analytics_baseline(ctx: Context, plugin: str, snapshot_id: int | None, regression_pct: float,
                       as_json: bool) -> None:
    """Now vs baseline: the plugin's newest snapshot against a baseline, every field, regressions flagged.

    Exit code 1 when something regressed, so a deploy script can check it.

    \b
    Examples:
      pmon analytics baseline payments
      pmon analytics baseline payments --snapshot 1234 --regression 5 --json
    """
    from pmon.analysis.baseline import compare_to_baseline
    from pmon.analysis.snapshot_diff import as_text
    try:
        result = _read(ctx, lambda conn: compare_to_baseline(conn, plugin, snapshot_id, regression_pct))
    except ValueError as exc:
        raise UsageProblem(f"--snapshot: {exc}") from None
    if result is None:
        raise UsageProblem(f"PLUGIN: {plugin!r} has no snapshots")
    if as_json:
        _emit_json(result.to_dict())
    else:
        import time

        def when(snapshot: Any) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.timestamp.timestamp()))

        click.echo(f"{escape_controls(plugin)}: snapshot {result.now.id} ({when(result.now)}) against "
                   f"{result.baseline.id} ({when(result.baseline)}, {result.choice})")
        for row in result.diff.rows:
            mark = "▲ " if row.path in result.regressions else "  "
            pct = "" if row.pct_change is None else f" ({row.pct_change:+.1f}%)"
            a, b = (escape_controls(as_text(v)) for v in (row.a, row.b))
            click.echo(f"{mark}{escape_controls(row.path):<40} {a:>14} -> {b:<14}{pct}")
        click.echo(f"regressions beyond {regression_pct:g}%: {', '.join(result.regressions) or 'none'}")
    if result.regressions:
        sys.exit(1)


@analytics.command("detect")
@_plugin_option
@click.option("--since", default="24h", show_default=True, metavar="WHEN",
              help="Start: a duration ago (30m, 24h, 7d) or an ISO time.")
@_until_option
@_json_option
@pass_context
def analytics_detect(ctx: Context, plugin: str | None, since: str, until: str | None, as_json: bool) -> None:
    """Run every detector, with the configured [detectors.*] settings, over the stored history; record nothing.

    The same code the live analysis runs, so a threshold tuned here behaves the
    same live. Data backfilled with timestamp= counts like any other.

    \b
    Example:
      pmon --config ./tuned.toml analytics detect --since 7d --plugin image_resizer
    """
    import time

    from pmon.analysis.detectors.backtest import backtest
    start, end = _time_range(since, until)
    findings = _read(ctx, lambda conn: backtest(conn, ctx.config.detectors, plugin_id=plugin, since=start, until=end))
    if as_json:
        _emit_json([{"detector": f.detector, "plugin_id": f.plugin_id, "metric": f.metric, "start": f.start,
                     "end": f.end, "severity": f.severity, "summary": f.summary, "evidence": f.evidence}
                    for f in findings])
        return
    if not findings:
        click.echo("no findings in the range")
    for f in findings:
        begin = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f.start))
        stop = "ongoing" if f.end is None else time.strftime("%H:%M:%S", time.localtime(f.end))
        click.echo(f"{f.detector:<12} {escape_controls(f.plugin_id):<20} {f.metric or '-':<16} {begin} - {stop}  "
                   f"{f.severity:<8} {escape_controls(f.summary)}")


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_context
def plugins_command(ctx: Context, as_json: bool) -> None:
    """Every plugin: status, first and last seen, latest value of each metric.

    \b
    Example:
      pmon plugins --json | jq '.[] | select(.status == "down") | .plugin_id'
    """
    import time

    from pmon.store import queries

    found = _read(ctx, queries.plugins)
    rows = [{"plugin_id": p.plugin_id, "status": p.status, "first_seen": p.first_seen, "last_seen": p.last_seen,
             "latest": {metric: latest.value for metric, latest in sorted(p.latest.items())}} for p in found]
    if as_json:
        _emit_json(rows)
        return
    now = time.time()
    for row in rows:
        ago = max(0, int(now - row["last_seen"]))
        cpu, memory = row["latest"].get("cpu_usage"), row["latest"].get("memory_usage")
        figures = "  ".join(text for text in (f"cpu {cpu:.0f}%" if cpu is not None else "",
                                              f"memory {memory:.0f} MB" if memory is not None else "") if text)
        click.echo(f"{escape_controls(row['plugin_id']):<24} {row['status']:<7} seen {ago}s ago  {figures}")


def _snapshot_dict(snap: Any) -> dict[str, Any]:
    return {"id": snap.id, "plugin_id": snap.plugin_id, "timestamp": snap.timestamp.timestamp(),
            **{name: getattr(snap, name) for name in ("cpu_usage", "memory_usage", "response_time", "error_rate",
                                                      "request_count", "throughput", "disk_io", "network_io",
                                                      "custom_metrics")}}


@main.group()
def snapshots() -> None:
    """Performance snapshots: list them, show one, compare two.

    \b
    Examples:
      pmon snapshots list --plugin payments --limit 5
      pmon snapshots show 1234 --json
      pmon snapshots diff 1200 1234
    """


@snapshots.command("list")
@click.option("--plugin", default=None, help="Only this plugin.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@_json_option
@pass_context
def snapshots_list(ctx: Context, plugin: str | None, limit: int, as_json: bool) -> None:
    """The newest snapshots, newest first.

    \b
    Example:
      pmon snapshots list --plugin payments
    """
    import time

    from pmon.store import queries

    found = _read(ctx, lambda conn: queries.snapshots(conn, plugin_id=plugin, limit=limit))
    if as_json:
        _emit_json([_snapshot_dict(snap) for snap in found])
        return
    for snap in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap.timestamp.timestamp()))
        click.echo(f"{snap.id:>8}  {when}  {escape_controls(snap.plugin_id):<20} cpu {snap.cpu_usage:.1f}%  "
                   f"memory {snap.memory_usage:.1f}  response {snap.response_time:.1f}ms  "
                   f"errors {snap.error_rate * 100:.1f}%  {snap.throughput:.2f}/s")


def _one_snapshot(ctx: Context, snapshot_id: int) -> Any:
    from pmon.store import queries

    found = _read(ctx, lambda conn: queries.snapshot(conn, snapshot_id))
    if found is None:
        raise UsageProblem(f"ID: no snapshot {snapshot_id} (`pmon snapshots list` shows them)")
    return found


@snapshots.command("show")
@click.argument("snapshot_id", type=int)
@_json_option
@pass_context
def snapshots_show(ctx: Context, snapshot_id: int, as_json: bool) -> None:
    """Every field of one snapshot.

    \b
    Example:
      pmon snapshots show 1234
    """
    from pmon.analysis.snapshot_diff import as_text, flatten
    snap = _one_snapshot(ctx, snapshot_id)
    shown = _snapshot_dict(snap)
    if as_json:
        _emit_json(shown)
        return
    for keys, value in flatten({k: v for k, v in shown.items() if k != "id"}):
        click.echo(f"{escape_controls('.'.join(keys)):<40} {escape_controls(as_text(value))}")


@snapshots.command("diff")
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.option("--threshold", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="A watched field (cpu, memory, response time, error rate) up by more than this % is a regression.")
@_json_option
@pass_context
def snapshots_diff(ctx: Context, a: int, b: int, threshold: float, as_json: bool) -> None:
    """Every field of snapshots A and B, nested ones included: A, B, change, %; regressions marked ▲.

    \b
    Example:
      pmon snapshots diff 1200 1234 --threshold 5
    """
    from pmon.analysis.snapshot_diff import MISSING, as_text, diff_snapshots
    diff = diff_snapshots(_one_snapshot(ctx, a), _one_snapshot(ctx, b), threshold_pct=threshold)
    if as_json:
        _emit_json({"a": a, "b": b, "threshold_pct": threshold, "rows": [
            {"path": row.path, "a": None if row.a is MISSING else row.a, "b": None if row.b is MISSING else row.b,
             "delta": row.delta, "pct_change": row.pct_change, "regression": row.regression,
             "improvement": row.improvement} for row in diff.rows]})
        return
    for row in diff.rows:
        mark = "▲ " if row.regression else "▼ " if row.improvement else "  "
        pct = "" if row.pct_change is None else f" ({row.pct_change:+.1f}%)"
        click.echo(f"{mark}{escape_controls(row.path):<40} {escape_controls(as_text(row.a)):>14} -> "
                   f"{escape_controls(as_text(row.b)):<14}{pct}")


@main.group("config")
def config_group() -> None:
    """Check pmon.toml, or show the effective configuration and where each value comes from.

    \b
    Examples:
      pmon config check /etc/pmon/pmon.toml
      pmon config show --json
    """


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=True))
@pass_context
def config_check(ctx: Context, file: str | None) -> None:
    """Exit 0 if FILE (default: --config, or the discovered pmon.toml) is valid, else 2 with one line naming the problem.

    \b
    Example:
      pmon config check ./pmon.toml && sudo systemctl reload pmon-collect
    """
    from pmon.config import find_config_file, load

    path = Path(file) if file else find_config_file(ctx.config_file)
    if path is None:
        click.echo("no pmon.toml found ($PMON_CONFIG, ./pmon.toml, $XDG_CONFIG_HOME/pmon/pmon.toml): defaults apply")
        return
    try:
        config = load(path)
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None
    click.echo(f"{path}: ok ({len(config.plugins)} plugins, {len(config.alerts)} alert rules)")


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: section -> key -> {value, source}.")
@pass_context
def config_show(ctx: Context, as_json: bool) -> None:
    """The effective configuration, every key with its value and source (the file, or the default).

    \b
    Example:
      pmon --config ./pmon.toml config show
    """
    import tomllib

    from pmon.config import SECTIONS

    config = ctx.config
    raw: dict[str, Any] = {}
    if config.file is not None:
        raw = tomllib.loads(config.file.read_text(encoding="utf-8-sig"))
    where = str(config.file) if config.file else "default"
    shown: dict[str, Any] = {"file": str(config.file) if config.file else None}
    db_source = ("--db / $PMON_DB" if ctx._db else "[store] path" if config.store.path else "default")
    shown["database"] = {"value": str(ctx.db_path), "source": db_source}
    for name in SECTIONS:
        section = getattr(config, name)
        shown[name] = {f.name: {"value": getattr(section, f.name),
                                "source": where if f.name in raw.get(name, {}) else "default"}
                       for f in dataclasses.fields(section)}
    if config.detectors is not None or "detectors" in raw:
        shown["detectors"] = dataclasses.asdict(config.detectors) if config.detectors else {}
    shown["plugins"] = {name: {k: v for k, v in dataclasses.asdict(spec).items() if v}
                        for name, spec in config.plugins.items()}
    shown["alerts"] = [dataclasses.asdict(rule) for rule in config.alerts]
    if as_json:
        _emit_json(shown)
        return
    click.echo(f"file      {shown['file'] or '(none: defaults)'}")
    click.echo(f"database  {shown['database']['value']}  ({db_source})")
    for name in SECTIONS:
        click.echo(f"[{name}]")
        for key, item in shown[name].items():
            source = "" if item["source"] == "default" else "   # from the file"
            click.echo(f"  {key} = {json.dumps(item['value'])}{source}")
    for name, spec in shown["plugins"].items():
        click.echo(f"[plugins.{name}] " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in spec.items()))
    for rule in config.alerts:
        click.echo(f"[[alerts]] {rule.name}: {rule.metric} {rule.comparison} {rule.threshold:g} on {rule.plugin}"
                   f" for {rule.for_:g}s, clear {rule.clear_at:g}, {rule.severity}")


@main.command()
@click.option("--headless", is_flag=True, help="Only simulate, printing what is written each second (no console).")
@click.option("--duration", type=click.FloatRange(min=0), default=None,
              help="Seconds to simulate with --headless (default: until Ctrl-C).")
@click.option("--history", default=2.0, show_default=True, type=click.FloatRange(min=0),
              help="Hours of history to pre-fill.")
@click.option("--quiet", is_flag=True, hidden=True, help="With --headless: print nothing.")
@click.option("--parent-pid", type=int, default=None, hidden=True, help="Stop when this process is gone.")
@pass_context
def demo(ctx: Context, headless: bool, duration: float | None, history: float, quiet: bool,
         parent_pid: int | None) -> None:
    """A simulated plugin host recording live, shown in the console.

    Eight plugins with a story each (a memory leak, latency spikes, real
    tracebacks, a plugin that goes down and comes back...), two hours of
    history pre-filled. Uses --db if given, else a demo database in the XDG
    data dir, so the demo never mixes with real data. Quitting the console
    stops the simulation.

    \b
    Examples:
      pmon demo
      pmon demo --headless --duration 30
    """
    from pmon.demo import default_demo_db, run_demo, start_background_host, stop_background_host

    path = Path(ctx._db) if ctx._db else default_demo_db()
    if duration is not None and not headless:
        raise UsageProblem("--duration: only with --headless (the console runs until you quit it)")
    if headless:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop cleanly: the monitor flushes on the way out
        try:
            run_demo(path, duration=duration, history_hours=history, echo=None if quiet else click.echo,
                     parent_pid=parent_pid)
        except (StoreError, ConfigError) as exc:
            raise UsageProblem(str(exc)) from None
        except KeyboardInterrupt:
            if not quiet:
                click.echo("stopped")
        return
    host = start_background_host(path, history)
    try:
        _open_console(path, ctx.config)
    finally:
        problems = stop_background_host(host)
    if host.returncode not in (0, -signal.SIGTERM) and problems:
        click.echo(f"pmon demo: the simulated host stopped with an error:\n{problems}", err=True)


def _register(module: str, *names: str) -> None:
    """Commands that live in their own module (one module, one job); imported when the CLI loads."""
    import importlib

    found = importlib.import_module(module)
    for name in names:
        main.add_command(getattr(found, name))


_register("pmon.cli_tail", "logs_command", "events_command")
_register("pmon.cli_export", "export_command")
_register("pmon.cli_record", "record")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)

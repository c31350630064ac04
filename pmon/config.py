"""pmon.toml -> a frozen ``Config``, with one clear line for every mistake.

Discovery order for the file: ``--config``, ``$PMON_CONFIG``, ``./pmon.toml``,
``$XDG_CONFIG_HOME/pmon/pmon.toml``. The database: ``--db``, ``$PMON_DB``,
``[store] path``, ``$XDG_DATA_HOME/pmon/pmon.db``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmon.analysis.alert_rules import AlertRule, parse_rules
from pmon.models import Severity
from pmon.validate import PLUGIN_ID_PATTERN


class ConfigError(ValueError):
    """A config file or value pmon cannot use; the message is one line for the user."""


@dataclass(frozen=True)
class StoreConfig:
    """Where the data lives and how long writers wait for each other."""

    path: str = ""
    """Database file; empty means the XDG data dir."""
    busy_timeout_ms: int = 5000
    """How long a write waits for another process's write lock before retrying later."""


@dataclass(frozen=True)
class MonitorConfig:
    """The in-process recorder: caches, batching and buffering."""

    flush_interval: float = 1.0
    """Seconds between batch commits (a full batch commits sooner)."""
    batch_size: int = 20_000
    """Rows per transaction at most."""
    max_buffer: int = 100_000
    """Rows waiting for the disk at most; beyond it the oldest are dropped and counted."""
    metrics_cache: int = 10_000
    """Recent metrics kept in memory (the seed's metrics_cache)."""
    logs_cache: int = 5_000
    """Recent logs kept in memory."""
    events_cache: int = 2_000
    """Recent events kept in memory."""
    alert_min_severity: str = "high"
    """Events at or above this severity are passed to the alert callbacks."""
    max_text_bytes: int = 65_536
    """Messages and tracebacks longer than this are truncated with a visible marker."""
    sample_interval: float = 2.0
    """Seconds between samples of the host process and registered plugin threads after
    ``start_monitoring()`` (0: no in-process sampling)."""
    host_plugin: str = "host"
    """The plugin id the host process's own figures are recorded under."""


@dataclass(frozen=True)
class UIConfig:
    """The console."""

    refresh_interval: float = 1.0
    """Seconds between the end of one read of the database and the start of the next."""


@dataclass(frozen=True)
class CollectorConfig:
    """The daemon (`pmon collect`): what it samples and how often."""

    sample_interval: float = 2.0
    """Seconds between psutil samples of every configured plugin."""
    snapshot_interval: float = 60.0
    """Seconds between performance snapshots of every plugin the daemon samples."""
    system: bool = True
    """Record system-wide CPU, memory, disk and network as plugin ``system``."""
    self_monitoring: bool = True
    """Record the daemon's own health (queue, flush latency, DB size) as plugin ``pmon``."""


@dataclass(frozen=True)
class RetentionConfig:
    """How long rows are kept, and the optional size cap; applied by the daemon and `pmon prune`."""

    days: float = 30.0
    """Raw metrics, logs, events and snapshots older than this are deleted (the seed's 30 days)."""
    minute_rollup_days: float = 35.0
    """1-minute rollups of metrics are kept this long."""
    rollup_days: float = 365.0
    """1-hour rollups of metrics are kept this long."""
    max_db_mb: float = 0.0
    """Size cap of the database in MB (0: none); past it the oldest rows go first."""
    prune_interval: float = 60.0
    """Seconds between retention passes of the daemon."""
    max_lock_ms: float = 50.0
    """Longest a pruning step may hold the write lock (steps shrink to stay under it)."""


@dataclass(frozen=True)
class AnalysisConfig:
    """The live detectors and alert rules (run by `pmon collect`, or in-process without a daemon)."""

    interval: float = 10.0
    """Seconds between analysis passes over what was recorded since the last one."""
    warmup: float = 3600.0
    """Seconds of stored history fed to the detectors at start, so their windows are full at once."""
    in_process: bool = True
    """After ``start_monitoring()``, a host application analyses when no daemon collects into its database."""


@dataclass(frozen=True)
class ApiConfig:
    """The HTTP API, live stream and Prometheus endpoint served by `pmon collect` (needs ``pmon[api]``)."""

    enabled: bool = False
    """Serve the API whenever `pmon collect` runs (``--api`` turns it on for one run)."""
    listen: str = "127.0.0.1:8765"
    """``HOST:PORT`` to bind; any address but loopback needs a token."""
    token: str = ""
    """Bearer token every request must carry (``PMON_API_TOKEN`` and ``token_file`` also set it)."""
    token_file: str = ""
    """A file holding the token (first line), kept out of pmon.toml; relative to pmon.toml."""
    allowed_hosts: tuple[str, ...] = ()
    """Extra names accepted in the Host header (e.g. a reverse proxy's), besides the bound ones."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the API (``https://dash.example``); empty: no CORS headers."""
    max_body_bytes: int = 1_048_576
    """Largest request body (after decompression); larger ones get 413."""
    max_batch_records: int = 10_000
    """Most records in one batch POST."""
    max_connections: int = 512
    """Concurrent connections at most; further ones get 503 and are closed."""
    request_timeout: float = 10.0
    """Seconds a client has to send a whole request, and a connection may sit idle."""


@dataclass(frozen=True)
class PluginSpec:
    """How ``[plugins.NAME]`` finds a plugin's processes; exactly one way of matching."""

    pid: int = 0
    """A fixed process id."""
    pidfile: str = ""
    """A file holding the pid (re-read every sample, so restarts are followed)."""
    process_name: str = ""
    """The process name exactly (as ``ps -o comm`` / psutil shows it)."""
    cmdline: str = ""
    """A regular expression searched in the command line joined with spaces."""
    children: bool = False
    """Include the matched processes' children, recursively (figures are summed)."""


MATCHERS = ("pid", "pidfile", "process_name", "cmdline")
RESERVED_PLUGINS = ("system", "pmon")


@dataclass(frozen=True)
class Config:
    """Everything pmon reads from pmon.toml; ``file`` is where it came from (None: defaults)."""

    store: StoreConfig = field(default_factory=StoreConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    plugins: dict[str, PluginSpec] = field(default_factory=dict)
    """The ``[plugins.NAME]`` tables, by name."""
    alerts: tuple[AlertRule, ...] = ()
    """The ``[[alerts]]`` threshold rules."""
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    detectors: Any = None
    """The ``[detectors.*]`` settings (``pmon.analysis.detectors.settings.DetectorSettings``); None: the defaults."""
    file: Path | None = None


SECTIONS: dict[str, type] = {"store": StoreConfig, "monitor": MonitorConfig, "ui": UIConfig,
                             "collector": CollectorConfig, "retention": RetentionConfig, "analysis": AnalysisConfig, "api": ApiConfig}

_POSITIVE = {"busy_timeout_ms", "batch_size", "max_buffer", "metrics_cache", "logs_cache", "events_cache",
             "max_text_bytes", "flush_interval", "refresh_interval", "sample_interval", "snapshot_interval",
             "days", "minute_rollup_days", "rollup_days", "prune_interval", "max_lock_ms", "interval", "warmup",
             "max_body_bytes", "max_batch_records", "max_connections", "request_timeout"}


_AT_MOST = {
    "flush_interval": (3600.0, "an hour"), "refresh_interval": (3600.0, "an hour"),
    "sample_interval": (86400.0, "a day"), "snapshot_interval": (86400.0, "a day"),
    "prune_interval": (86400.0, "a day"), "days": (36500.0, "a hundred years"),
    "minute_rollup_days": (36500.0, "a hundred years"), "rollup_days": (36500.0, "a hundred years"),
    "max_lock_ms": (60000.0, "a minute"), "max_db_mb": (1e9, "a petabyte"),
    "interval": (3600.0, "an hour"), "warmup": (30 * 86400.0, "30 days"),
    "max_body_bytes": (1 << 30, "1 GiB"), "max_batch_records": (1_000_000, "a million"),
    "max_connections": (100_000, "a hundred thousand"), "request_timeout": (3600.0, "an hour"),
    "busy_timeout_ms": (3_600_000, "an hour"), "batch_size": (1_000_000, "a million"),
    "max_buffer": (100_000_000, "a hundred million"), "metrics_cache": (10_000_000, "ten million"),
    "logs_cache": (10_000_000, "ten million"), "events_cache": (10_000_000, "ten million"),
    "max_text_bytes": (1 << 30, "1 GiB"), "pid": (1 << 22, "the largest Linux pid"),
}
"""Upper bounds, so a typo (``1e10``) is an error here rather than an overflow in a timer months later."""


MAX_FILE_BYTES = 1 << 20
"""A pmon.toml larger than this is refused before parsing (``--config /dev/zero`` must not eat the memory)."""
MAX_SHOWN = 60
"""Characters of an offending value quoted in an error: the line stays one short line."""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text):,} characters)"


def _shown(value: Any) -> str:
    """``repr(value)``, cut to ``MAX_SHOWN`` characters."""
    return _cut(repr(value))


def _name(name: str) -> str:
    """A table or key name from the file as one short, escaped piece of a line."""
    return _cut(repr(name)[1:-1])


def _check_value(where: str, name: str, value: Any, default: Any) -> Any:
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
            raise ConfigError(f"{where}: {name} must be a list of non-empty strings, got {_shown(value)}")
        return tuple(value)
    if type(value) is not expected:
        raise ConfigError(f"{where}: {name} must be {expected.__name__}, got {type(value).__name__} {_shown(value)}")
    if name == "sample_interval" and not where.endswith("[collector]") and value == 0:
        return value  # in-process sampling off
    if expected is float and not math.isfinite(value):
        raise ConfigError(f"{where}: {name} must be a finite number, got {_shown(value)}")
    if name in _POSITIVE and not value > 0:
        raise ConfigError(f"{where}: {name} must be greater than 0, got {_shown(value)}")
    ceiling = _AT_MOST.get(name)
    if ceiling is not None and value > ceiling[0]:
        raise ConfigError(f"{where}: {name} must be at most {ceiling[0]:,.0f} ({ceiling[1]}), got {_shown(value)}")
    if name == "alert_min_severity" and value not in {s.value for s in Severity}:
        raise ConfigError(f"{where}: alert_min_severity must be one of {', '.join(s.value for s in Severity)}")
    if name == "max_text_bytes" and value < 1024:
        raise ConfigError(f"{where}: max_text_bytes must be at least 1024")
    if name in ("max_db_mb", "pid") and value < 0:
        raise ConfigError(f"{where}: {name} must be 0 or more, got {_shown(value)}")
    if name == "host_plugin" and not PLUGIN_ID_PATTERN.fullmatch(value):
        raise ConfigError(f"{where}: host_plugin must be a plugin id (1-128 of A-Z a-z 0-9 _ . : -), "
                          f"got {_shown(value)}")
    if name == "sample_interval" and value < 0.1:
        raise ConfigError(f"{where}: sample_interval must be at least 0.1 seconds, got {_shown(value)}")
    if name == "listen":
        from pmon.api.listen import parse_listen

        try:
            parse_listen(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if name == "cmdline" and value:
        from pmon.collect.matching import pattern_problem  # lazily: matching builds on this module

        problem = pattern_problem(value)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    return value


def _plugin_specs(values: Any, source: str) -> dict[str, PluginSpec]:
    """``[plugins.NAME]`` tables: a valid plugin id each, exactly one matcher."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: plugins must be tables ([plugins.NAME])")
    specs = {}
    for name, table in values.items():
        where = f"{source}: [plugins.{_name(name)}]"
        if not PLUGIN_ID_PATTERN.fullmatch(name):
            raise ConfigError(f"{where}: the name must be a plugin id (1-128 of A-Z a-z 0-9 _ . : -)")
        if name in RESERVED_PLUGINS:
            raise ConfigError(f"{where}: {name!r} is reserved for pmon's own figures; choose another name")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table with one of {', '.join(MATCHERS)}")
        spec = build_section(PluginSpec, table, where)
        given = [m for m in MATCHERS if getattr(spec, m)]
        if len(given) != 1:
            raise ConfigError(f"{where}: set exactly one of {', '.join(MATCHERS)} (got {', '.join(given) or 'none'})")
        specs[name] = spec
    return specs


def build_section(cls: type, values: dict[str, Any], where: str) -> Any:
    """Check a section's keys and types, and build its dataclass."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    checked = {}
    for name, value in values.items():
        if name not in known:
            allowed = ", ".join(known)
            raise ConfigError(f"{where}: unknown key {_shown(name)} (allowed: {allowed})")
        checked[name] = _check_value(f"{where}", name, value, known[name].default)
    return cls(**checked)


def parse(text: str, source: str = "<string>") -> Config:
    """Parse pmon.toml text into a Config."""
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"{source}: invalid TOML: arrays or inline tables nested too deeply") from None
    sections: dict[str, Any] = {}
    for name, values in data.items():
        if name == "plugins":
            sections[name] = _plugin_specs(values, source)
            continue
        if name == "detectors":
            from pmon.analysis.detectors.settings import settings_from_toml  # it builds on this module

            sections[name] = settings_from_toml(values, source)
            continue
        if name == "alerts":
            try:
                sections[name] = parse_rules(values, source)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            continue
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{_name(name)}] "
                              f"(allowed: {', '.join([*SECTIONS, 'plugins.NAME', 'detectors.NAME', '[alerts]'])})")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: {name} must be a table ([{name}])")
        sections[name] = build_section(SECTIONS[name], values, f"{source}: [{name}]")
    return Config(**sections)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and parse one config file."""
    file = Path(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, expected a pmon.toml file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{file}: larger than {MAX_FILE_BYTES // (1 << 20)} MiB; is this a pmon.toml?")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) and _is_utf16(raw):
        raise ConfigError(f"{file}: UTF-16 text; save it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start}); is this a pmon.toml?") from None
    return dataclasses.replace(parse(text, str(file)), file=file)


def _is_utf16(raw: bytes) -> bool:
    """Text some Windows editors save: a byte-order mark, then UTF-16 that decodes."""
    try:
        raw.decode("utf-16")
    except UnicodeDecodeError:
        return False
    return True


def _xdg(variable: str, fallback: str) -> Path:
    base = os.environ.get(variable) or str(Path.home() / fallback)
    return Path(base) / "pmon"


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use, or None when there is none anywhere."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("PMON_CONFIG")
    if env:
        return Path(env)
    for candidate in (Path("pmon.toml"), _xdg("XDG_CONFIG_HOME", ".config") / "pmon.toml"):
        try:
            if candidate.is_file():
                return candidate
        except OSError:  # an unreadable home directory means no config there, not a crash
            continue
    return None


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Discover and load the config; defaults when no file exists."""
    file = find_config_file(explicit)
    return load(file) if file is not None else Config()


def database_path(config: Config, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The database file, by the documented order."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("PMON_DB")
    if env:
        return Path(env)
    if config.store.path:
        path = Path(config.store.path).expanduser()
        if not path.is_absolute() and config.file is not None:
            path = config.file.parent / path
        return path
    return _xdg("XDG_DATA_HOME", ".local/share") / "pmon.db"

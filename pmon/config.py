"""pmon.toml -> a frozen ``Config``, with one clear line for every mistake.

Discovery order for the file: ``--config``, ``$PMON_CONFIG``, ``./pmon.toml``,
``$XDG_CONFIG_HOME/pmon/pmon.toml``. The database: ``--db``, ``$PMON_DB``,
``[store] path``, ``$XDG_DATA_HOME/pmon/pmon.db``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmon.models import Severity


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


@dataclass(frozen=True)
class UIConfig:
    """The console."""

    refresh_interval: float = 1.0
    """Seconds between the end of one read of the database and the start of the next."""


@dataclass(frozen=True)
class Config:
    """Everything pmon reads from pmon.toml; ``file`` is where it came from (None: defaults)."""

    store: StoreConfig = field(default_factory=StoreConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    file: Path | None = None


SECTIONS: dict[str, type] = {"store": StoreConfig, "monitor": MonitorConfig, "ui": UIConfig}

_POSITIVE = {"busy_timeout_ms", "batch_size", "max_buffer", "metrics_cache", "logs_cache", "events_cache",
             "max_text_bytes", "flush_interval", "refresh_interval"}


def _check_value(where: str, name: str, value: Any, default: Any) -> Any:
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise ConfigError(f"{where}: {name} must be {expected.__name__}, got {type(value).__name__} {value!r}")
    if name in _POSITIVE and not value > 0:
        raise ConfigError(f"{where}: {name} must be greater than 0, got {value!r}")
    if name == "alert_min_severity" and value not in {s.value for s in Severity}:
        raise ConfigError(f"{where}: alert_min_severity must be one of {', '.join(s.value for s in Severity)}")
    if name == "max_text_bytes" and value < 1024:
        raise ConfigError(f"{where}: max_text_bytes must be at least 1024")
    return value


def build_section(cls: type, values: dict[str, Any], where: str) -> Any:
    """Check a section's keys and types, and build its dataclass."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    checked = {}
    for name, value in values.items():
        if name not in known:
            allowed = ", ".join(known)
            raise ConfigError(f"{where}: unknown key {name!r} (allowed: {allowed})")
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
    sections = {}
    for name, values in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}] (allowed: {', '.join(SECTIONS)})")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: {name} must be a table ([{name}])")
        sections[name] = build_section(SECTIONS[name], values, f"{source}: [{name}]")
    return Config(**sections)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and parse one config file."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, expected a pmon.toml file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start}); is this a pmon.toml?") from None
    return dataclasses.replace(parse(text, str(file)), file=file)


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

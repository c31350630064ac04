"""Enums and record dataclasses, named as in the original design.

The enums are ``StrEnum`` so that ``event.severity == "critical"`` holds, as the
seed's alert callback example expects, and so a string value can be passed
anywhere a member can.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any


class MetricType(StrEnum):
    """The seven kinds of metric a plugin can record."""

    CPU_USAGE = "cpu_usage"
    MEMORY_USAGE = "memory_usage"
    RESPONSE_TIME = "response_time"
    ERROR_RATE = "error_rate"
    THROUGHPUT = "throughput"
    DISK_IO = "disk_io"
    NETWORK_IO = "network_io"


class LogLevel(StrEnum):
    """Log levels, lowest first; ``rank`` orders them for minimum-level filters."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position from 0 (debug) to 4 (critical)."""
        return _LEVEL_RANK[self]


class Severity(StrEnum):
    """Event severities, lowest first (the seed uses all five)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position from 0 (info) to 4 (critical)."""
        return _SEVERITY_RANK[self]


class EventCategory(StrEnum):
    """Derived from the event type; ``alert`` is reserved for pmon's own alerts."""

    SYSTEM = "system"
    USER = "user"
    ERROR = "error"
    ALERT = "alert"


_LEVEL_RANK = {level: i for i, level in enumerate(LogLevel)}
_SEVERITY_RANK = {sev: i for i, sev in enumerate(Severity)}

_ERROR_WORDS = ("error", "exception", "fail", "crash", "fatal", "panic", "timeout")
_USER_WORDS = ("user", "login", "logout", "action", "command", "request", "session")


LIFECYCLE_STATUS = {"started": "active", "restarted": "active", "stopped": "down", "not_found": "down"}
"""Event types that set a plugin's stored status: the daemon records them, and so may a host application."""


def category_for(event_type: str) -> EventCategory:
    """Map a free-form event type to its category.

    Why a derivation and not a parameter: the seed's ``record_event`` has no
    category argument, yet the console filters on one.
    """
    name = event_type.lower()
    if name.startswith("alert"):
        return EventCategory.ALERT
    if any(word in name for word in _ERROR_WORDS):
        return EventCategory.ERROR
    if any(word in name for word in _USER_WORDS):
        return EventCategory.USER
    return EventCategory.SYSTEM


def to_datetime(epoch: float) -> datetime:
    """Epoch seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(slots=True)
class DetailedMetric:
    """One metric point."""

    plugin_id: str
    metric_type: MetricType
    value: float
    timestamp: datetime
    metadata: dict[str, Any] | None = None
    id: int | None = None


@dataclass(slots=True)
class PluginLog:
    """One log line, with its structured context and traceback."""

    plugin_id: str
    level: LogLevel
    message: str
    timestamp: datetime
    context: dict[str, Any] | None = None
    traceback: str | None = None
    id: int | None = None


@dataclass(slots=True)
class PluginEvent:
    """A discrete happening: startup, error, alert; callbacks receive these."""

    plugin_id: str
    event_type: str
    description: str
    severity: Severity
    timestamp: datetime
    data: dict[str, Any] | None = None
    category: EventCategory = EventCategory.SYSTEM
    id: int | None = None


@dataclass(slots=True)
class PerformanceSnapshot:
    """A plugin's key figures at one moment, for later comparison."""

    plugin_id: str
    timestamp: datetime
    cpu_usage: float = 0.0
    memory_usage: float = 0.0
    response_time: float = 0.0
    error_rate: float = 0.0
    request_count: int = 0
    throughput: float = 0.0
    disk_io: dict[str, Any] = field(default_factory=dict)
    network_io: dict[str, Any] = field(default_factory=dict)
    custom_metrics: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


SNAPSHOT_NUMBERS = ("cpu_usage", "memory_usage", "response_time", "error_rate", "request_count", "throughput")
SNAPSHOT_DICTS = ("disk_io", "network_io", "custom_metrics")
SNAPSHOT_FIELDS = SNAPSHOT_NUMBERS + SNAPSHOT_DICTS


# Rows travel from the hot path to the writer as plain tuples (cheaper than
# dataclasses); these build the dataclasses when somebody looks.
# metric: ("m", plugin_id, MetricType, value, ts, metadata_json)
# log:    ("l", plugin_id, LogLevel, message, ts, context_json, traceback)
# event:  ("e", plugin_id, event_type, description, Severity, ts, data_json, EventCategory)
# snap:   ("s", plugin_id, ts, {field: value, ... dicts as JSON text})


def metric_from_row(row: tuple) -> DetailedMetric:
    """Materialise a queued metric tuple."""
    return DetailedMetric(row[1], row[2], row[3], to_datetime(row[4]), _loads(row[5]))


def log_from_row(row: tuple) -> PluginLog:
    """Materialise a queued log tuple."""
    return PluginLog(row[1], row[2], row[3], to_datetime(row[4]), _loads(row[5]), row[6])


def event_from_row(row: tuple) -> PluginEvent:
    """Materialise a queued event tuple."""
    return PluginEvent(row[1], row[2], row[3], row[4], to_datetime(row[5]), _loads(row[6]), row[7])


def snapshot_from_row(row: tuple) -> PerformanceSnapshot:
    """Materialise a queued snapshot tuple."""
    values = dict(row[3])
    for name in SNAPSHOT_DICTS:
        values[name] = _loads(values[name]) or {}
    return PerformanceSnapshot(row[1], to_datetime(row[2]), **values)

"""The detectors' parameters: the ``[detectors.*]`` tables of pmon.toml, with the defaults users get.

The defaults are the ones the quality tests (tests/detectors/test_detectors_quality.py)
hold to precision and recall >= 0.9 on labelled synthetic streams, and to no finding
at all on a day of noisy, daily-periodic normal data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from pmon.config import ConfigError, build_section


@dataclass(frozen=True)
class LeakSettings:
    """Memory leak: a steady climb of memory over whole windows, several windows in a row."""

    enabled: bool = True
    """Run the leak detector."""
    metric: str = "memory_usage"
    """The metric watched (memory_usage is in MiB, so slopes are MiB per hour)."""
    window: float = 1800.0
    """Seconds in one window; the line is fitted to the means of its ten equal segments."""
    min_slope: float = 10.0
    """Growth per hour, in the metric's unit (MiB/h), below which nothing is a leak."""
    min_r2: float = 0.8
    """How well the line must fit the window's segment means (0-1): a steady climb, not a jump."""
    min_rising: float = 0.7
    """Fraction of steps between consecutive segment means that must rise (0-1)."""
    windows_in_a_row: int = 2
    """Consecutive whole windows that must pass to report a leak (and fail to end it)."""
    limit: float = 0.0
    """The metric's limit (MiB) for the estimated time to reach it; 0: no estimate."""


@dataclass(frozen=True)
class AnomalySettings:
    """Anomaly: a robust z-score against a rolling median and MAD, per plugin and metric."""

    enabled: bool = True
    """Run the anomaly detector."""
    metrics: tuple[str, ...] = ("cpu_usage", "memory_usage", "response_time", "throughput")
    """Metrics watched (error_rate is the error-spike detector's, which also weighs request counts)."""
    resolution: float = 60.0
    """Seconds per sample judged: points are averaged into clock-aligned buckets this long first, so
    m of n means m of n minutes, not a 6 s burst of a 2 s series (0: every point is a sample)."""
    window: int = 60
    """Samples (buckets) in the rolling window the median and MAD come from (60 x 60 s = 1 h)."""
    threshold: float = 3.5
    """|z| above this makes a sample anomalous (z = 0.6745 (x - median) / MAD)."""
    min_change: float = 0.2
    """|value - median| must also be at least this fraction of |median|: a 5 MiB wobble of a 500 MiB
    process is not news, however quiet the window was (0: z alone decides)."""
    m: int = 3
    """Anomalous samples among the last ``n`` that report an anomaly."""
    n: int = 5
    """How many recent samples ``m`` counts over; the anomaly ends when none of them is anomalous."""
    min_samples: int = 20
    """Samples in the window before any is judged (after start, or after the plugin was down)."""


@dataclass(frozen=True)
class ErrorSpikeSettings:
    """Error-rate spike: the recent error rate against the longer baseline before it, with enough traffic."""

    enabled: bool = True
    """Run the error-spike detector."""
    short_window: float = 300.0
    """Seconds of recent error_rate samples averaged; also how long the condition must be false to end a spike."""
    baseline_window: float = 3600.0
    """Seconds before the short window that make the baseline error rate."""
    factor: float = 3.0
    """The short-window rate must be at least this many times the baseline."""
    min_rate: float = 0.05
    """...and at least this error rate (0-1; error_rate is a fraction)."""
    min_requests: float = 100.0
    """...with at least this many requests in the short window (mean throughput x short_window)."""


@dataclass(frozen=True)
class DownSettings:
    """Plugin down: from the daemon's lifecycle events (stopped / not_found until started / restarted)."""

    enabled: bool = True
    """Report down plugins."""


@dataclass(frozen=True)
class DetectorSettings:
    """Every detector's parameters (the ``[detectors]`` table)."""

    leak: LeakSettings = field(default_factory=LeakSettings)
    """``[detectors.leak]``"""
    anomaly: AnomalySettings = field(default_factory=AnomalySettings)
    """``[detectors.anomaly]``"""
    error_spike: ErrorSpikeSettings = field(default_factory=ErrorSpikeSettings)
    """``[detectors.error_spike]``"""
    down: DownSettings = field(default_factory=DownSettings)
    """``[detectors.down]``"""


SECTIONS: dict[str, type] = {"leak": LeakSettings, "anomaly": AnomalySettings, "error_spike": ErrorSpikeSettings,
            "down": DownSettings}

_RANGES: dict[str, tuple[float, float, str]] = {
    "window": (1.0, 86400.0, "1 to 86400 seconds"),
    "min_slope": (0.0, 1e9, "0 or more"),
    "min_r2": (0.0, 1.0, "0 to 1"),
    "min_rising": (0.0, 1.0, "0 to 1"),
    "windows_in_a_row": (1, 24, "1 to 24"),
    "limit": (0.0, 1e12, "0 or more"),
    "threshold": (0.1, 1000.0, "0.1 to 1000"),
    "resolution": (0.0, 86400.0, "0 to 86400 seconds"),
    "min_change": (0.0, 100.0, "0 to 100 (a fraction of the median)"),
    "m": (1, 100, "1 to 100"),
    "n": (1, 100, "1 to 100"),
    "short_window": (1.0, 86400.0, "1 to 86400 seconds"),
    "baseline_window": (1.0, 30 * 86400.0, "1 second to 30 days"),
    "factor": (1.0, 1e6, "1 or more"),
    "min_rate": (0.0, 1.0, "0 to 1"),
    "min_requests": (0.0, 1e12, "0 or more"),
}
"""Allowed values by key; the anomaly window is in samples and has its own bounds below."""

ANOMALY_WINDOW = (5, 10_000)
"""Samples in the anomaly window: enough for a median, few enough to bound memory per series."""


def _check(where: str, section: Any) -> None:
    for f in fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {f.name} must be a finite number, got {value!r}")
        bounds = _RANGES.get(f.name)
        if isinstance(section, AnomalySettings) and f.name == "window":
            bounds = (*ANOMALY_WINDOW, f"{ANOMALY_WINDOW[0]} to {ANOMALY_WINDOW[1]} samples")
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise ConfigError(f"{where}: {f.name} must be {bounds[2]}, got {value!r}")
    if isinstance(section, AnomalySettings):
        if section.m > section.n:
            raise ConfigError(f"{where}: m must be at most n ({section.n}), got {section.m}")
        if not 3 <= section.min_samples <= section.window:
            raise ConfigError(f"{where}: min_samples must be 3 to window ({section.window}), got {section.min_samples}")
        if not section.metrics or not all(isinstance(name, str) and name for name in section.metrics):
            raise ConfigError(f"{where}: metrics must be a non-empty list of metric names")
    if isinstance(section, ErrorSpikeSettings) and section.baseline_window <= section.short_window:
        raise ConfigError(f"{where}: baseline_window must be longer than short_window ({section.short_window:g} s)")
    if isinstance(section, LeakSettings) and not section.metric:
        raise ConfigError(f"{where}: metric must be a metric name, e.g. 'memory_usage'")


def settings_from_toml(table: dict[str, Any], source: str) -> DetectorSettings:
    """The ``[detectors]`` table of pmon.toml as settings; a ``ValueError`` (ConfigError) names the key."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: detectors must be a table ([detectors.leak] etc.)")
    built: dict[str, Any] = {}
    for name, values in table.items():
        where = f"{source}: [detectors.{name}]"
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [detectors.{name}] (allowed: "
                              f"{', '.join(f'[detectors.{known}]' for known in SECTIONS)})")
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: must be a table")
        values = dict(values)
        if name == "anomaly" and isinstance(values.get("metrics"), list):
            values["metrics"] = tuple(values["metrics"])
        section = build_section(SECTIONS[name], values, where)
        _check(where, section)
        built[name] = section
    return DetectorSettings(**built)

"""pmon: monitoring for plugin-based applications.

Two lines in the host application::

    from pmon import monitor, MetricType
    monitor.record_metric("my_plugin", MetricType.CPU_USAGE, 45.2)

This module never imports Textual: host applications and the daemon must not
pay for the console.
"""

from __future__ import annotations

from pmon.config import Config, ConfigError
from pmon.models import (
    DetailedMetric,
    EventCategory,
    LogLevel,
    MetricType,
    PerformanceSnapshot,
    PluginEvent,
    PluginLog,
    Severity,
)
from pmon.monitor import Monitor
from pmon.store.schema import StoreError

__version__ = "0.1.0"

monitor = Monitor()
"""The process-wide default monitor (configured from pmon.toml / PMON_DB when it starts)."""

advanced_plugin_monitor = monitor
"""The seed's name for the default monitor."""

AdvancedPluginMonitor = Monitor
"""The seed's name for the monitor class."""

__all__ = [
    "AdvancedPluginMonitor",
    "Config",
    "ConfigError",
    "DetailedMetric",
    "EventCategory",
    "LogLevel",
    "MetricType",
    "Monitor",
    "PerformanceSnapshot",
    "PluginEvent",
    "PluginLog",
    "Severity",
    "StoreError",
    "advanced_plugin_monitor",
    "monitor",
    "__version__",
]

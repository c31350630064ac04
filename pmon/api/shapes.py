"""Stored records as JSON objects: epoch seconds plus ISO time, enums as their values, ids for paging."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pmon.analysis.alerting import Alert
from pmon.models import PerformanceSnapshot, PluginEvent, PluginLog
from pmon.store.api_queries import MetricRow
from pmon.store.queries import PluginSummary


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def metric(row: MetricRow) -> dict[str, Any]:
    """A metric point."""
    return {"id": row.id, "metric_type": row.metric_type, "value": row.value, "timestamp": row.timestamp,
            "time": _iso(row.timestamp), "metadata": row.metadata}


def log(entry: PluginLog) -> dict[str, Any]:
    """A log line with its context and traceback."""
    ts = entry.timestamp.timestamp()
    return {"id": entry.id, "plugin_id": entry.plugin_id, "level": str(entry.level), "message": entry.message,
            "timestamp": ts, "time": _iso(ts), "context": entry.context, "traceback": entry.traceback}


def event(entry: PluginEvent) -> dict[str, Any]:
    """An event with its data."""
    ts = entry.timestamp.timestamp()
    return {"id": entry.id, "plugin_id": entry.plugin_id, "event_type": entry.event_type,
            "description": entry.description, "severity": str(entry.severity), "category": str(entry.category),
            "timestamp": ts, "time": _iso(ts), "data": entry.data}


def snapshot(entry: PerformanceSnapshot) -> dict[str, Any]:
    """A performance snapshot with the seed's fields."""
    fields = asdict(entry)
    ts = entry.timestamp.timestamp()
    fields.update(timestamp=ts, time=_iso(ts))
    return fields


def plugin(summary: PluginSummary) -> dict[str, Any]:
    """A plugin with its status and latest value per metric."""
    return {"plugin_id": summary.plugin_id, "status": summary.status, "first_seen": summary.first_seen,
            "last_seen": summary.last_seen,
            "latest": {name: {"value": latest.value, "timestamp": latest.timestamp}
                       for name, latest in sorted(summary.latest.items())}}


def alert(entry: Alert) -> dict[str, Any]:
    """An alert episode."""
    fields = asdict(entry)
    fields["state"] = str(entry.state)
    return fields

"""A plugin's recent findings and alerts (its events of category ``alert``), each with where it stands now.

No Textual here: read on the refresh worker for the plugin screen. An alert
rule's event names its alert, whose stored row says whether it still fires
and who acknowledged it; a detector's finding is open until its
``alert_<detector>_resolved`` event, which the analysis runner records with
the same detector, metric and start.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from pmon.models import EventCategory, PluginEvent
from pmon.store import alert_store, queries
from pmon.store.alert_store import AlertError

RECENT_FINDINGS = 20
"""Alert-category events the plugin screen lists, newest first."""


@dataclass(frozen=True, slots=True)
class ShownFinding:
    """One alert-category event and the state of what it reported."""

    event: PluginEvent
    state: str
    """``firing``, ``pending``, ``resolved``, ``acked`` (firing, acknowledged), ``open`` (a finding not yet
    resolved), or ``-`` for an alert event that names neither an alert nor a detector."""


def _data(event: PluginEvent) -> dict[str, Any]:
    return event.data if isinstance(event.data, dict) else {}


def _finding_key(data: dict[str, Any]) -> tuple[object, object, object]:
    return data.get("detector"), data.get("metric"), data.get("start")


def read_findings(conn: sqlite3.Connection, plugin_id: str, limit: int = RECENT_FINDINGS) -> tuple[ShownFinding, ...]:
    """The plugin's last recorded alert-category events with their states, newest (by timestamp) first."""
    events = queries.events(conn, plugin_id=plugin_id, category=EventCategory.ALERT, limit=limit)
    events.sort(key=lambda ev: ev.timestamp, reverse=True)  # findings can be recorded after the fact
    resolved = {_finding_key(_data(ev)) for ev in events
                if ev.event_type.endswith("_resolved") and "detector" in _data(ev)}
    states: dict[int, str] = {}
    shown = []
    for ev in events:
        data = _data(ev)
        alert_id = data.get("alert_id")
        if isinstance(alert_id, int) and not isinstance(alert_id, bool):
            if alert_id not in states:
                try:
                    alert = alert_store.alert(conn, alert_id)
                    states[alert_id] = "acked" if alert.acked_at is not None and alert.state == "firing" \
                        else str(alert.state)
                except AlertError:
                    states[alert_id] = str(data.get("state", "-"))
            state = states[alert_id]
        elif ev.event_type.endswith("_resolved"):
            state = "resolved"
        elif "detector" in data:
            state = "resolved" if _finding_key(data) in resolved else "open"
        else:
            state = "-"
        shown.append(ShownFinding(ev, state))
    return tuple(shown)

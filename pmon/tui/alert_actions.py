"""The console's only writes: acknowledging an alert and silencing a rule from the Events tab.

Everything else the console does reads through one read-only connection.
These open a write connection of their own on a worker thread, make one
short change through ``alert_store`` and close it, so the console never
holds the write lock and never writes recorded data. No Textual here.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pmon.models import PluginEvent
from pmon.store import alert_store
from pmon.store.schema import open_writer
from pmon.tui.plugin_data import range_label

SILENCE_SECONDS = 3600.0
"""How long `S` silences a rule."""
_GLOB_SPECIALS = re.compile(r"([*?\[])")


@dataclass(frozen=True, slots=True)
class AlertTarget:
    """What an alert event lets the console act on."""

    plugin_id: str
    alert_id: int | None
    """The stored alert (``alert_firing`` / ``alert_resolved`` events of a rule carry it)."""
    rule: str | None
    """The rule's name (detector findings have none: they cannot be silenced by rule)."""


def alert_target(event: PluginEvent) -> AlertTarget:
    """The alert id and rule named in an event's data, where it names them."""
    data = event.data if isinstance(event.data, dict) else {}
    alert_id = data.get("alert_id")
    rule = data.get("rule")
    return AlertTarget(event.plugin_id, alert_id if isinstance(alert_id, int) and not isinstance(alert_id, bool)
                       else None, rule if isinstance(rule, str) and rule else None)


def who() -> str:
    """Who acknowledges: the user, as `pmon alerts ack` records it, marked as done from the console."""
    return f"{os.environ.get('USER') or 'pmon'} (console)"


def plugin_glob(plugin_id: str) -> str:
    """A glob matching exactly ``plugin_id``, even when it holds ``*``, ``?`` or ``[``."""
    return _GLOB_SPECIALS.sub(r"[\1]", plugin_id)


def ack_alert(path: Path, alert_id: int, now: float) -> str:
    """Acknowledge alert ``alert_id``; one line saying what happened. ``StoreError`` (one line) when it cannot."""
    conn = open_writer(path)
    try:
        before = alert_store.alert(conn, alert_id)
        alert = alert_store.ack(conn, alert_id, now, who())
    finally:
        conn.close()
    what = f"alert {alert.id} ({alert.rule} on {alert.plugin_id}, {alert.state})"
    if before.acked_at is None:
        return f"Acknowledged {what}."
    when = time.strftime("%H:%M:%S", time.localtime(alert.acked_at or now))
    return f"Already acknowledged: {what}, by {alert.acked_by} at {when}."


def silence_rule(path: Path, rule: str, plugin_id: str, now: float, seconds: float = SILENCE_SECONDS) -> str:
    """Silence ``rule`` on ``plugin_id`` for ``seconds``; one line saying until when. ``StoreError`` when it cannot."""
    conn = open_writer(path)
    try:
        silence = alert_store.silence(conn, rule, now + seconds, plugin_glob(plugin_id), "from the console", now)
    finally:
        conn.close()
    until = time.strftime("%H:%M:%S", time.localtime(silence.until))
    return f"Silenced {rule} on {plugin_id} for {range_label(seconds)} (until {until}, silence {silence.id})."

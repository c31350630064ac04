"""The alert state machine: one alert per rule × plugin, pending → firing → resolved.

``AlertEvaluator`` is pure (no SQL, no clock): the daemon or the monitor feeds
it metric points, saves the transitions it returns with
``pmon.store.alert_store.save_transitions`` and records an event for each that
``notify``. The store is the memory across restarts: ``load_state`` takes its
open alerts, so a restarted daemon continues an alert instead of firing it again.

Lifecycle of one rule × plugin:

- inactive → pending: a point breaches the threshold (``for`` > 0); no event.
- pending → inactive: a point no longer breaches before ``for`` has passed;
  silently, the pending row is forgotten.
- pending → firing: the breach has held for ``for`` seconds, measured on the
  points' own timestamps (so backfilled history and a live feed agree); with
  ``for`` = 0 inactive goes straight to firing. Event ``alert_firing``.
- firing → resolved: a point is past ``clear`` (hysteresis: a value between
  ``clear`` and the threshold keeps it firing). Event ``alert_resolved``.
  The next breach starts a new alert (a new id).

A down plugin (``down_plugins``; the daemon records zeros for it, which
would otherwise fire "too low" rules and resolve "too high" ones) mutes its
alerts: its points are not evaluated, a pending alert goes back to inactive,
and a firing one is frozen: it stays firing, with no event, until the plugin
is back and its points say otherwise. The plugin-down finding is the alert
for that period; resolving a CPU alert because the process died would be a lie.

A silence (``Silence``) hides notifications, not state: a silenced alert
still goes pending, fires and resolves, and is saved and listed, but its
transitions have ``notify`` False, so no event is recorded and no callback
runs. One that fired silenced and outlives its silence stays firing without a
late event; its resolution, after the silence, is notified.
"""

from __future__ import annotations

import time

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any, Final

from pmon.analysis.alert_rules import AlertRule, format_duration


class AlertState(StrEnum):
    """Where an alert is in its lifecycle (``inactive`` is never stored: no row)."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


OPEN_STATES: Final = (AlertState.PENDING, AlertState.FIRING)
"""States of an alert still in progress; at most one per rule × plugin."""

EVENT_TYPES: Final = {AlertState.FIRING: "alert_firing", AlertState.RESOLVED: "alert_resolved"}
"""Event types recorded for notified transitions (category ``alert`` by ``models.category_for``)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert episode as stored: from its first breach to its resolution."""

    id: int
    rule: str
    plugin_id: str
    metric: str
    state: AlertState
    value: float
    """The value at the last transition (the breaching one, then the resolving one)."""
    threshold: float
    """The rule's threshold when it started."""
    severity: str
    started_at: float
    """Timestamp of the first breaching point (pending since)."""
    fired_at: float | None = None
    resolved_at: float | None = None
    acked_at: float | None = None
    acked_by: str | None = None
    reason: str = ""
    """Why it resolved, when not by its value: ``rule removed``, ``plugin no longer matches``."""


@dataclass(frozen=True, slots=True)
class Silence:
    """While it lasts, transitions of ``rule`` on plugins matching ``plugin`` are not notified."""

    id: int
    rule: str
    plugin: str
    """Glob over plugin ids."""
    until: float
    created_at: float
    reason: str = ""

    def covers(self, rule: str, plugin_id: str, now: float) -> bool:
        """Does this silence hide this rule × plugin at ``now``?"""
        return self.rule == rule and self.created_at <= now < self.until and fnmatchcase(plugin_id, self.plugin)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of one rule × plugin's state: what the store saves and what an event says."""

    rule: str
    plugin_id: str
    metric: str
    state: AlertState
    """The new state (``inactive``: a pending alert cleared before ``for``, or was muted)."""
    previous: AlertState
    value: float
    """The point that caused it."""
    threshold: float
    """The rule's threshold (the resolve threshold is ``clear``)."""
    clear: float
    comparison: str
    severity: str
    since: float
    """When the breach began (the first breaching point)."""
    at: float
    """Timestamp of the point that caused it (the event's timestamp)."""
    description: str
    """One line for people: rule, plugin, value against the threshold, for how long."""
    silenced: bool = False
    reason: str = ""

    @property
    def notify(self) -> bool:
        """Record an event and run the alert callbacks for this one?"""
        return self.state in EVENT_TYPES and not self.silenced

    @property
    def event_type(self) -> str | None:
        """``alert_firing`` or ``alert_resolved``; None for pending and inactive."""
        return EVENT_TYPES.get(self.state)

    def event_data(self, alert_id: int | None = None) -> dict[str, Any]:
        """The evidence for the event's ``data``; ``alert_id`` lets a reader ack it."""
        data: dict[str, Any] = {"rule": self.rule, "plugin": self.plugin_id, "metric": self.metric,
                                "state": self.state.value, "value": self.value, "comparison": self.comparison,
                                "threshold": self.threshold, "clear": self.clear, "since": self.since}
        if alert_id is not None:
            data["alert_id"] = alert_id
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(slots=True)
class _Open:
    state: AlertState
    since: float
    last_ts: float


class AlertEvaluator:
    """Runs the rules over metric points; keeps the open alerts in memory between calls."""

    def __init__(self, rules: Iterable[AlertRule]) -> None:
        self.rules: dict[str, AlertRule] = {rule.name: rule for rule in rules}
        """The rules by name."""
        self._by_metric: dict[str, list[AlertRule]] = {}
        for rule in self.rules.values():
            self._by_metric.setdefault(rule.metric, []).append(rule)
        self._matches: dict[tuple[str, str], bool] = {}
        self._open: dict[tuple[str, str], _Open] = {}

    def state(self, rule: str, plugin_id: str) -> AlertState:
        """The current state of one rule × plugin."""
        found = self._open.get((rule, plugin_id))
        return AlertState.INACTIVE if found is None else found.state

    def open_alerts(self) -> dict[tuple[str, str], AlertState]:
        """Every pending or firing rule × plugin."""
        return {key: found.state for key, found in self._open.items()}

    def load_state(self, alerts: Iterable[Alert], now: float | None = None) -> list[Transition]:
        """Continue from the store's open alerts (after a restart), replacing what is in memory.

        Returns the transitions that close the alerts no rule covers any more
        (rule removed from pmon.toml, or its glob no longer matches the
        plugin): resolved for firing ones, inactive for pending ones. Save
        them, and record the resolved ones' events like any other; they are
        dated ``now`` (default: the current time), when the rule went away.
        """
        closed_at = time.time() if now is None else now
        self._open.clear()
        closing = []
        for alert in alerts:
            if alert.state not in OPEN_STATES:
                continue
            rule = self.rules.get(alert.rule)
            if rule is not None and self._watches(rule, alert.plugin_id):
                since = alert.started_at
                self._open[(alert.rule, alert.plugin_id)] = _Open(alert.state, since,
                                                                  alert.fired_at or alert.started_at)
                continue
            reason = "rule removed" if rule is None else "plugin no longer matches"
            state = AlertState.RESOLVED if alert.state is AlertState.FIRING else AlertState.INACTIVE
            closing.append(Transition(
                rule=alert.rule, plugin_id=alert.plugin_id, metric=alert.metric, state=state,
                previous=alert.state, value=alert.value, threshold=alert.threshold, clear=alert.threshold,
                comparison=rule.comparison if rule else "", severity=alert.severity, since=alert.started_at,
                at=closed_at, reason=reason,
                description=f"{alert.rule} on {alert.plugin_id} closed: {reason}"))
        return closing

    def evaluate(self, now: float, values: Iterable[tuple[str, str, float, float]],
                 down_plugins: Collection[str] = frozenset(), silences: Iterable[Silence] = ()) -> list[Transition]:
        """Feed new points ``(plugin_id, metric, timestamp, value)``; return the state changes, oldest first.

        Points are taken in timestamp order; a point not newer than the last
        one seen by an open alert is ignored, so feeding the same points twice
        changes nothing. ``now`` is when the silences are checked.
        """
        active = [s for s in silences if s.created_at <= now < s.until]
        changes: list[Transition] = []
        for key, found in list(self._open.items()):
            if key[1] in down_plugins and found.state is AlertState.PENDING:
                rule = self.rules[key[0]]
                del self._open[key]
                changes.append(self._change(rule, key[1], AlertState.INACTIVE, found, math.nan, found.last_ts,
                                            reason="plugin down"))
        for plugin_id, metric, ts, value in sorted(values, key=lambda point: point[2]):
            rules = self._by_metric.get(metric)
            if not rules or plugin_id in down_plugins or not math.isfinite(value):
                continue
            for rule in rules:
                if self._watches(rule, plugin_id):
                    change = self._step(rule, plugin_id, ts, value)
                    if change is not None:
                        changes.append(change)
        if active:
            changes = [replace(c, silenced=True) if any(s.covers(c.rule, c.plugin_id, now) for s in active) else c
                       for c in changes]
        return changes

    def _watches(self, rule: AlertRule, plugin_id: str) -> bool:
        key = (rule.name, plugin_id)
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = rule.matches(plugin_id)
        return found

    def _step(self, rule: AlertRule, plugin_id: str, ts: float, value: float) -> Transition | None:
        key = (rule.name, plugin_id)
        found = self._open.get(key)
        if found is None:
            if not rule.breached(value):
                return None
            found = _Open(AlertState.INACTIVE, ts, ts)
            if rule.for_ > 0:
                self._open[key] = _Open(AlertState.PENDING, ts, ts)
                return self._change(rule, plugin_id, AlertState.PENDING, found, value, ts)
            self._open[key] = _Open(AlertState.FIRING, ts, ts)
            return self._change(rule, plugin_id, AlertState.FIRING, found, value, ts)
        if ts <= found.last_ts:
            return None
        if found.state is AlertState.PENDING:
            if not rule.breached(value):
                del self._open[key]
                return self._change(rule, plugin_id, AlertState.INACTIVE, found, value, ts)
            found.last_ts = ts
            if ts - found.since < rule.for_:
                return None
            change = self._change(rule, plugin_id, AlertState.FIRING, found, value, ts)
            found.state = AlertState.FIRING
            return change
        if rule.still_firing(value):
            found.last_ts = ts
            return None
        del self._open[key]
        return self._change(rule, plugin_id, AlertState.RESOLVED, found, value, ts)

    @staticmethod
    def _change(rule: AlertRule, plugin_id: str, state: AlertState, found: _Open, value: float, ts: float,
                reason: str = "") -> Transition:
        return Transition(rule=rule.name, plugin_id=plugin_id, metric=rule.metric, state=state,
                          previous=found.state, value=value, threshold=rule.threshold, clear=rule.clear_at,
                          comparison=rule.comparison, severity=rule.severity, since=found.since, at=ts,
                          description=describe(rule, plugin_id, state, value, ts - found.since, reason), reason=reason)


def describe(rule: AlertRule, plugin_id: str, state: AlertState, value: float, held: float, reason: str = "") -> str:
    """The event description: what a person reading the Events tab needs without opening ``data``."""
    if state is AlertState.RESOLVED:
        text = (f"{rule.name} resolved on {plugin_id}: {rule.metric} {value:g} "
                f"(clears past {rule.clear_at:g}) after {format_duration(held)}")
    elif state is AlertState.FIRING:
        held_text = f" for {format_duration(held)}" if held > 0 else ""
        text = f"{rule.name} firing on {plugin_id}: {rule.metric} {value:g} {rule.comparison} {rule.threshold:g}{held_text}"
    elif state is AlertState.PENDING:
        text = f"{rule.name} pending on {plugin_id}: {rule.metric} {value:g} {rule.comparison} {rule.threshold:g}"
    elif reason:
        text = f"{rule.name} no longer pending on {plugin_id}: {reason}"
    else:
        text = f"{rule.name} back to normal on {plugin_id} before {format_duration(rule.for_)}"
    return f"{text} — {rule.description}" if rule.description else text

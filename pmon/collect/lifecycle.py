"""Plugin process lifecycle: from the matched pids of each tick to started / stopped / restarted events.

Only the processes a plugin's matcher finds itself (its roots) count: with
``children = true`` workers come and go all day, and each of those is not a
restart. The writer turns these event types into the plugin's stored status
(``LIFECYCLE_STATUS``), so the tracker itself writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pmon.store.lifecycle_queries import StoredLifecycle

ProcessKey = tuple[int, float]
"""A process: pid and create time, so a reused pid is a different process."""


@dataclass(frozen=True)
class LifecycleEvent:
    """One event to record for a plugin (``record_event`` arguments)."""

    plugin_id: str
    event_type: str
    description: str
    severity: str
    data: dict[str, Any] = field(default_factory=dict)


def _pids(keys: Iterable[ProcessKey]) -> list[int]:
    return sorted(pid for pid, _ in keys)


def _plural(pids: list[int]) -> str:
    return f"pid {pids[0]}" if len(pids) == 1 else f"pids {', '.join(map(str, pids))}"


class LifecycleTracker:
    """Remembers each plugin's root processes between ticks and says what changed."""

    def __init__(self) -> None:
        self._seen: dict[str, frozenset[ProcessKey]] = {}
        self._stored: dict[str, StoredLifecycle] = {}

    def seed(self, stored: dict[str, StoredLifecycle]) -> None:
        """What the store says of each plugin, so a restarted daemon reports only what changed meanwhile."""
        self._stored = dict(stored)

    def forget(self, plugin_id: str) -> None:
        """Drop a plugin removed from the config (a later return counts as a first sighting)."""
        self._seen.pop(plugin_id, None)

    def update(self, plugin_id: str, roots: frozenset[ProcessKey], *, problem: str | None = None) -> list[LifecycleEvent]:
        """Compare this tick's root processes with the last tick's; ``problem`` explains an empty match."""
        before = self._seen.get(plugin_id)
        self._seen[plugin_id] = roots
        now = _pids(roots)
        if before is None:
            stored = self._stored.pop(plugin_id, None)
            if stored is not None:
                return self._since_stored(plugin_id, stored, now, problem)
            if not roots:
                why = f": {problem}" if problem else ""
                return [LifecycleEvent(plugin_id, "not_found", f"no process matches {plugin_id}{why}", "medium",
                                       {"pids": [], "problem": problem})]
            return [LifecycleEvent(plugin_id, "started", f"found running ({_plural(now)})", "info",
                                   {"pids": now, "already_running": True})]
        if roots == before:
            return []
        old = _pids(before)
        if not before:
            return [LifecycleEvent(plugin_id, "started", f"started ({_plural(now)})", "info", {"pids": now})]
        if not roots:
            why = f"; {problem}" if problem else ""
            return [LifecycleEvent(plugin_id, "stopped", f"stopped ({_plural(old)} gone{why})", "high",
                                   {"pids": [], "previous_pids": old})]
        if not (before & roots):
            return [LifecycleEvent(plugin_id, "restarted", f"restarted ({_plural(old)} -> {_plural(now)})", "medium",
                                   {"pids": now, "previous_pids": old})]
        return []  # some of several processes came or went: process.count shows it, an event each would be a storm

    @staticmethod
    def _since_stored(plugin_id: str, stored: StoredLifecycle, now: list[int],
                      problem: str | None) -> list[LifecycleEvent]:
        """The first tick of a daemon that finds the plugin in the store already."""
        was_up = stored.status == "active"
        if not now:
            if not was_up:
                return []
            why = f": {problem}" if problem else ""
            return [LifecycleEvent(plugin_id, "not_found", f"no process matches {plugin_id}{why}", "medium",
                                   {"pids": [], "problem": problem,
                                    "previous_pids": sorted(stored.pids) if stored.pids else None})]
        if was_up and stored.pids == frozenset(now):
            return []
        if was_up and stored.pids:
            old = sorted(stored.pids)
            return [LifecycleEvent(plugin_id, "restarted",
                                   f"restarted while pmon was not watching ({_plural(old)} -> {_plural(now)})",
                                   "medium", {"pids": now, "previous_pids": old})]
        return [LifecycleEvent(plugin_id, "started", f"found running ({_plural(now)})", "info",
                               {"pids": now, "already_running": True})]

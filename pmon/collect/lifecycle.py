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

    def forget(self, plugin_id: str) -> None:
        """Drop a plugin removed from the config (a later return counts as a first sighting)."""
        self._seen.pop(plugin_id, None)

    def update(self, plugin_id: str, roots: frozenset[ProcessKey], *, problem: str | None = None) -> list[LifecycleEvent]:
        """Compare this tick's root processes with the last tick's; ``problem`` explains an empty match."""
        before = self._seen.get(plugin_id)
        self._seen[plugin_id] = roots
        now = _pids(roots)
        if before is None:
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
        gone, new = _pids(before - roots), _pids(roots - before)
        if not (before & roots):
            return [LifecycleEvent(plugin_id, "restarted", f"restarted ({_plural(old)} -> {_plural(now)})", "medium",
                                   {"pids": now, "previous_pids": old})]
        events = []
        if gone:
            events.append(LifecycleEvent(plugin_id, "process_exited", f"{_plural(gone)} exited, {len(now)} still running",
                                         "low", {"pids": now, "exited_pids": gone}))
        if new:
            events.append(LifecycleEvent(plugin_id, "process_spawned", f"{_plural(new)} started, {len(now)} running",
                                         "info", {"pids": now, "new_pids": new}))
        return events

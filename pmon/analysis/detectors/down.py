"""Plugin down: the daemon's lifecycle events, from stopped / not_found to the next started / restarted."""

from __future__ import annotations

from typing import Any

from pmon.analysis.detectors.finding import Finding
from pmon.models import LIFECYCLE_STATUS


class DownDetector:
    """One plugin's lifecycle: down or not, and since when."""

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self._open: Finding | None = None

    @property
    def open_finding(self) -> Finding | None:
        """The down period going on now, if any."""
        return self._open

    def update(self, ts: float, event_type: str, data: dict[str, Any] | None = None) -> Finding | None:
        """A lifecycle event; other event types are not this detector's business."""
        status = LIFECYCLE_STATUS.get(event_type)
        if status == "down" and self._open is None:
            problem = (data or {}).get("problem")
            why = f": {problem}" if problem else ""
            what = "stopped" if event_type == "stopped" else "not found"
            self._open = Finding("down", self.plugin_id, "", ts, None, "high", f"{self.plugin_id} is down ({what}{why})",
                                 {"event_type": event_type, **({"problem": problem} if problem else {})})
            return self._open
        if status == "active" and self._open is not None:
            closed, self._open = self._open.ended(ts, back_by=event_type, down_s=round(ts - self._open.start, 3)), None
            return closed
        return None

"""The console's colours for statuses, log levels and severities, in one place.

The word is always shown beside its colour, so NO_COLOR loses nothing.
"""

from __future__ import annotations

STATUS_STYLES = {"active": "green", "idle": "yellow", "down": "bold red"}
"""Rich style per plugin status."""

LEVEL_STYLES = {
    "debug": "dim",
    "info": "cyan",
    "warning": "yellow",
    "error": "bold red",
    "critical": "bold reverse red",
}
"""Rich style per log level."""

SEVERITY_STYLES = {"info": "", "low": "cyan", "medium": "yellow", "high": "bold red", "critical": "bold reverse red"}
"""Rich style per event severity."""

ALERT_STYLES = {"firing": "bold reverse red", "open": "bold red", "pending": "yellow", "acked": "yellow",
                "resolved": "green"}
"""Rich style per alert or finding state; ``firing`` is also the overview's count of firing alerts."""

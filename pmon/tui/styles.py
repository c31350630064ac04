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

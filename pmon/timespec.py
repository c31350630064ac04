"""Durations (``30d``) and points in time (``2h`` ago, or an ISO 8601 time) as people type them.

One parser for every command that takes ``--since``, ``--until``, ``--at`` or
``--older-than``, so they accept and refuse the same things with the same words.
"""

from __future__ import annotations

import math
from datetime import datetime

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s`` in seconds; ``ValueError`` for anything else."""
    raw = text.strip().lower()
    scale = UNITS.get(raw[-1:])
    if scale is None:  # a bare "30" might mean days or seconds; deleting the wrong one cannot be undone
        raise ValueError(f"{text!r} needs a unit: s, m, h, d or w (e.g. 30d)")
    try:
        value = float(raw[:-1]) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; use e.g. 30d, 12h, 90m, 45s") from None
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{text!r} must be a positive duration")
    return value


def moment(text: str, now: float) -> float:
    """A duration ago (``2h``) or an ISO 8601 time (naive means local time), in epoch seconds."""
    try:
        return now - duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"{text!r}: use a duration ago (30m, 2h, 7d) or an ISO time "
                         "(2026-11-26T04:00, 2026-11-26T04:00Z)") from None

"""Numbers and times as an operator reads them in a narrow column."""

from __future__ import annotations

import time


def compact(value: float) -> str:
    """At most five characters: 12.3, 456, 7.8k, 12M."""
    size = abs(value)
    if size >= 1e9:
        return f"{value / 1e9:.1f}G" if size < 1e10 else f"{value / 1e9:.0f}G"
    if size >= 1e6:
        return f"{value / 1e6:.1f}M" if size < 1e7 else f"{value / 1e6:.0f}M"
    if size >= 1e4:
        return f"{value / 1e3:.0f}k"
    if size >= 1e3:
        return f"{value / 1e3:.1f}k"
    if size >= 100:
        return f"{value:.0f}"
    if 0 < size < 1:
        return f"{value:.2f}"
    return f"{value:.1f}"


def percent(value: float | None) -> str:
    """A 0-100 percentage (CPU) as ``12%``; ``-`` when unknown."""
    return "-" if value is None else f"{value:.0f}%"


def fraction_percent(value: float | None) -> str:
    """A 0-1 fraction (error rate) as ``2.5%``; ``-`` when unknown."""
    if value is None:
        return "-"
    pct = value * 100
    return f"{pct:.1f}%" if pct < 10 else f"{pct:.0f}%"


def milliseconds(value: float | None) -> str:
    """Response time: ``85ms``, ``1.2s``; ``-`` when unknown."""
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.1f}s"
    return f"{value:.0f}ms"


def rate(value: float | None) -> str:
    """Throughput per second: ``55/s``, ``2.5k/s``; ``-`` when unknown."""
    return "-" if value is None else f"{compact(value)}/s"


def age(seconds: float) -> str:
    """How long ago, in the largest whole unit: ``now``, ``42s``, ``5m``, ``3h``, ``2d``."""
    if seconds < 1:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def clock(epoch: float) -> str:
    """Local wall-clock time ``HH:MM:SS`` (logs are read against the operator's own clock)."""
    return time.strftime("%H:%M:%S", time.localtime(epoch))

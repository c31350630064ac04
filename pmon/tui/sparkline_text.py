"""Sparklines as a few block characters, so one fits in a table cell.

Textual's ``Sparkline`` widget cannot live inside a ``DataTable`` cell; eight
block heights in a string can, and they survive NO_COLOR and copy-paste.
"""

from __future__ import annotations

BLOCKS = "▁▂▃▄▅▆▇█"
"""Bar heights, lowest first."""


def resample(values: list[float] | tuple[float, ...], width: int) -> list[float]:
    """Average ``values`` into at most ``width`` buckets, keeping the newest value in the last one."""
    if width < 1:
        return []
    count = len(values)
    if count <= width:
        return list(values)
    buckets = []
    for i in range(width):
        start, end = i * count // width, (i + 1) * count // width
        chunk = values[start:end]
        buckets.append(sum(chunk) / len(chunk))
    return buckets


def sparkline(values: list[float] | tuple[float, ...], width: int) -> str:
    """``values`` as ``width`` block characters scaled between their own min and max, right-aligned.

    A flat series draws a flat low line, so "no change" never looks like a spike.
    """
    points = resample(values, width)
    if not points:
        return " " * width
    low, high = min(points), max(points)
    span = high - low
    top = len(BLOCKS) - 1
    if span <= abs(high) * 1e-9 or span == 0:
        bars = BLOCKS[1] * len(points)
    else:
        bars = "".join(BLOCKS[round((p - low) / span * top)] for p in points)
    return bars.rjust(width)

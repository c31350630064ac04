"""Sparklines as a few block characters, so one fits in a table cell.

Textual's ``Sparkline`` widget cannot live inside a ``DataTable`` cell; eight
block heights in a string can, and they survive NO_COLOR and copy-paste.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def sparkline_rows(values: Sequence[float | None], height: int) -> list[str]:
    """``values`` (one a column, None for a gap) as ``height`` rows of blocks, top row first.

    ``8 * height`` levels between the values' own min and max; the smallest value
    keeps one eighth of a cell so it stays visible, a flat series draws a flat
    low line as ``sparkline`` does, and a gap stays blank so silence shows.
    """
    height = max(1, height)
    known = [v for v in values if v is not None]
    if not known:
        return [" " * len(values) for _ in range(height)]
    low, high = min(known), max(known)
    span = high - low
    flat = span == 0 or span <= abs(high) * 1e-9
    top = len(BLOCKS) * height - 1
    levels = [0 if v is None else 1 if flat else 1 + round((v - low) / span * top) for v in values]
    rows = []
    for row in range(height - 1, -1, -1):
        floor = row * len(BLOCKS)
        rows.append("".join(" " if level <= floor else BLOCKS[min(level - floor, len(BLOCKS)) - 1]
                            for level in levels))
    return rows

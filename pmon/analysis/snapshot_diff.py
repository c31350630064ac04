"""Two performance snapshots compared field by field, nested dicts included.

Pure: no Textual, no SQL. The console's comparison screen and the CLI's
``pmon snapshots diff A B`` both render the same ``SnapshotDiff``, so they
never disagree about what counts as a regression.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pmon.models import SNAPSHOT_DICTS, SNAPSHOT_NUMBERS, PerformanceSnapshot

WATCHED_FIELDS: Final = ("cpu_usage", "memory_usage", "response_time", "error_rate")
"""Fields where an increase is bad: rising beyond the threshold is a regression, falling beyond it an improvement."""

DEFAULT_THRESHOLD_PCT: Final = 10.0
"""A watched field must change by more than this many percent (of A) to count."""


class _Missing:
    """The value of a field recorded on one side only."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""Stands for a key present in one snapshot and absent from the other."""


class Direction(StrEnum):
    """How B differs from A in one field."""

    UP = "up"
    DOWN = "down"
    SAME = "same"
    CHANGED = "changed"
    """Text (or a mix of text and number) that differs."""
    ADDED = "added"
    """Only in B."""
    REMOVED = "removed"
    """Only in A."""


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One leaf field: its values in A and B and what the change means."""

    keys: tuple[str, ...]
    """The path as keys, e.g. ``("disk_io", "read_bytes")``; unambiguous even when a key holds a dot."""
    a: Any
    """A's value (a number, text, list, bool, None) or ``MISSING``."""
    b: Any
    """B's value or ``MISSING``."""
    delta: float | None
    """``b - a`` when both are numbers."""
    pct_change: float | None
    """``delta`` as a percentage of ``|a|``; None when ``a`` is 0, missing or not a number."""
    direction: Direction
    regression: bool
    """A watched field rose by more than the threshold (or rose from 0)."""
    improvement: bool
    """A watched field fell by more than the threshold."""

    @property
    def path(self) -> str:
        """Dotted path for people, e.g. ``disk_io.read_bytes``."""
        return ".".join(self.keys)


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """Snapshot ``a`` against snapshot ``b``: every field, in a stable order."""

    a: PerformanceSnapshot
    b: PerformanceSnapshot
    rows: tuple[FieldDiff, ...]
    threshold_pct: float

    @property
    def seconds_between(self) -> float:
        """How long after A B was taken (negative when B is older)."""
        return (self.b.timestamp - self.a.timestamp).total_seconds()

    @property
    def regressions(self) -> tuple[FieldDiff, ...]:
        """The rows that got worse."""
        return tuple(row for row in self.rows if row.regression)

    @property
    def improvements(self) -> tuple[FieldDiff, ...]:
        """The rows that got better."""
        return tuple(row for row in self.rows if row.improvement)


def is_number(value: object) -> bool:
    """A finite int or float; bools are flags, not quantities, so they compare as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def as_text(value: object) -> str:
    """How a non-numeric value is compared and shown: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def flatten(value: object, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """Leaf values of nested dicts with their key paths; an empty dict is a leaf (so it is not lost)."""
    if isinstance(value, Mapping) and value:
        for key in sorted(value, key=str):
            yield from flatten(value[key], (*prefix, str(key)))
    else:
        yield prefix, value


def compare_values(keys: tuple[str, ...], a: object, b: object, *, watched: bool,
                   threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> FieldDiff:
    """One field's difference; ``watched`` fields are judged as regressions or improvements."""
    if a is MISSING or b is MISSING:
        direction = Direction.ADDED if a is MISSING else Direction.REMOVED
        return FieldDiff(keys, a, b, None, None, direction, False, False)
    if not (is_number(a) and is_number(b)):
        direction = Direction.SAME if as_text(a) == as_text(b) else Direction.CHANGED
        return FieldDiff(keys, a, b, None, None, direction, False, False)
    delta = b - a  # type: ignore[operator]
    pct = delta / abs(a) * 100 if a else None  # type: ignore[arg-type]
    direction = Direction.UP if delta > 0 else Direction.DOWN if delta < 0 else Direction.SAME
    regression = improvement = False
    if watched:
        # From 0 any rise counts: errors appearing where there were none is the change that matters most.
        regression = direction is Direction.UP and (pct is None or pct > threshold_pct)
        improvement = direction is Direction.DOWN and pct is not None and pct < -threshold_pct
    return FieldDiff(keys, a, b, delta, pct, direction, regression, improvement)


def _leaves(snapshot: PerformanceSnapshot, name: str) -> dict[tuple[str, ...], object]:
    """A dict field's leaves; an empty (or absent) top-level dict has none, rather than one ``{}`` leaf."""
    value = getattr(snapshot, name)
    if value is None or (isinstance(value, Mapping) and not value):
        return {}
    return dict(flatten(value, (name,)))


def diff_snapshots(a: PerformanceSnapshot, b: PerformanceSnapshot, *,
                   threshold_pct: float = DEFAULT_THRESHOLD_PCT,
                   watched: Collection[str] = WATCHED_FIELDS) -> SnapshotDiff:
    """Every field of ``a`` and ``b``: the numbers first in their usual order, then each nested dict flattened.

    ``watched`` names the dotted paths where a rise beyond ``threshold_pct``
    percent is a regression (by default CPU, memory, response time and error
    rate); a key found on one side only is reported as added or removed.
    """
    if threshold_pct < 0:
        raise ValueError(f"threshold_pct: must be 0 or more, got {threshold_pct}")
    rows = [compare_values((name,), getattr(a, name), getattr(b, name), watched=name in watched,
                           threshold_pct=threshold_pct)
            for name in SNAPSHOT_NUMBERS]
    for name in SNAPSHOT_DICTS:
        left, right = _leaves(a, name), _leaves(b, name)
        for keys in sorted(left.keys() | right.keys()):
            rows.append(compare_values(keys, left.get(keys, MISSING), right.get(keys, MISSING),
                                       watched=".".join(keys) in watched, threshold_pct=threshold_pct))
    return SnapshotDiff(a, b, tuple(rows), threshold_pct)

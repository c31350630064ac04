"""A mergeable log-bucketed histogram (DDSketch-style) for quantiles of more values than are worth sorting.

Bucket ``k`` holds the values in (gamma^(k-1), gamma^k] with
``gamma = (1 + a) / (1 - a)``; a quantile is answered with the bucket's
middle ``2 gamma^k / (gamma + 1)``, which is within ``a`` (relative) of every
value in the bucket. So with the default ``a`` = 1 % the answer is within 1 %
of the exact nearest-rank quantile, whatever the data's range or shape, and
two histograms built apart (per plugin, per thread, per process) merge into
exactly the histogram of all their values. Negative values are bucketed by
their magnitude in a mirror store; values within ``min_value`` of 0 count as 0.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import repeat
from typing import Final

DEFAULT_ACCURACY: Final = 0.01
"""Relative accuracy of a quantile: 1 %."""
MIN_VALUE: Final = 1e-9
"""Values with a smaller magnitude count as 0 (they would need thousands of buckets of their own)."""


def nearest_rank(fraction: float, count: int) -> int:
    """The 1-based rank of the ``fraction`` quantile among ``count`` values: ceil(fraction x count), at least 1.

    The same rank as ``pmon.store.metric_queries.percentile``; the small
    tolerance keeps 0.95 x 100 from rounding up to rank 96.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction: must be between 0 and 1, got {fraction}")
    return min(count, max(1, math.ceil(fraction * count - 1e-9)))


def exact_quantile(sorted_values: list[float], fraction: float) -> float | None:
    """The nearest-rank quantile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    return sorted_values[nearest_rank(fraction, len(sorted_values)) - 1]


class LogHistogram:
    """Counts of values in logarithmic buckets: ``add``, ``merge``, ``quantile`` with bounded relative error."""

    __slots__ = ("relative_accuracy", "min_value", "gamma", "inv_log_gamma", "positive", "negative", "zero")

    def __init__(self, relative_accuracy: float = DEFAULT_ACCURACY, min_value: float = MIN_VALUE) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy: must be between 0 and 1, got {relative_accuracy}")
        if not min_value > 0.0:
            raise ValueError(f"min_value: must be positive, got {min_value}")
        self.relative_accuracy = relative_accuracy
        """A quantile is within this fraction of the exact one."""
        self.min_value = min_value
        """Values with ``|value| <= min_value`` are counted as 0."""
        self.gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        """Ratio between a bucket's upper and lower edge."""
        self.inv_log_gamma = 1.0 / math.log(self.gamma)
        """``1 / ln(gamma)``: a value's key is ``ceil(ln(value) * inv_log_gamma)`` (SQL computes it the same way)."""
        self.positive: Counter[int] = Counter()
        """Key -> how many values above ``min_value`` fell in that bucket."""
        self.negative: Counter[int] = Counter()
        """Key of ``-value`` -> how many values below ``-min_value``."""
        self.zero = 0
        """How many values counted as 0."""

    def key(self, magnitude: float) -> int:
        """The bucket of a value above ``min_value``."""
        return math.ceil(math.log(magnitude) * self.inv_log_gamma)

    def add(self, value: float, count: int = 1) -> None:
        """Count ``value`` ``count`` times (NaN is refused: it has no rank)."""
        if value > self.min_value:
            self.positive[self.key(value)] += count
        elif value < -self.min_value:
            self.negative[self.key(-value)] += count
        elif value == value:
            self.zero += count
        else:
            raise ValueError("value: NaN cannot be ranked")

    def extend(self, values: Iterable[float]) -> None:
        """Count many values; the keys are computed in C (``map``), about 0.1 µs a value."""
        values = list(values)
        if not values:
            return
        if min(values) > self.min_value:
            positive, negative, zero = values, [], 0
        else:
            if any(v != v for v in values):
                raise ValueError("values: NaN cannot be ranked")
            positive = [v for v in values if v > self.min_value]
            negative = [-v for v in values if v < -self.min_value]
            zero = len(values) - len(positive) - len(negative)
        for store, magnitudes in ((self.positive, positive), (self.negative, negative)):
            if magnitudes:
                store.update(map(math.ceil, map(operator.mul, map(math.log, magnitudes), repeat(self.inv_log_gamma))))
        self.zero += zero

    def add_buckets(self, positive: Mapping[int, int], negative: Mapping[int, int] | None = None,
                    zero: int = 0) -> None:
        """Add counts already bucketed with this histogram's ``inv_log_gamma`` (e.g. by SQLite)."""
        self.positive.update(positive)
        if negative:
            self.negative.update(negative)
        self.zero += zero

    def merge(self, other: LogHistogram) -> None:
        """Add every value of ``other`` (it must have the same accuracy, so the buckets line up)."""
        if other.gamma != self.gamma or other.min_value != self.min_value:
            raise ValueError("merge: histograms of different accuracy or min_value do not line up")
        self.add_buckets(other.positive, other.negative, other.zero)

    @property
    def count(self) -> int:
        """How many values were added."""
        return self.positive.total() + self.negative.total() + self.zero

    def _middle(self, key: int) -> float:
        return 2.0 * self.gamma ** key / (self.gamma + 1.0)

    def quantile(self, fraction: float) -> float | None:
        """The nearest-rank ``fraction`` quantile, within ``relative_accuracy`` of the exact one (None when empty)."""
        count = self.count
        if not count:
            return None
        rank = nearest_rank(fraction, count)
        seen = 0
        for key in sorted(self.negative, reverse=True):
            seen += self.negative[key]
            if seen >= rank:
                return -self._middle(key)
        seen += self.zero
        if seen >= rank:
            return 0.0
        for key in sorted(self.positive):
            seen += self.positive[key]
            if seen >= rank:
                return self._middle(key)
        raise AssertionError("rank beyond the count")  # unreachable: rank <= count

    def __repr__(self) -> str:
        return f"LogHistogram(relative_accuracy={self.relative_accuracy}, count={self.count})"

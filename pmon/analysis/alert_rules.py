"""Alert rules: the ``[[alerts]]`` tables of pmon.toml, checked into frozen ``AlertRule`` values.

Every mistake is one ``ValueError`` line naming the table (``[[alerts]] #2
(cpu_hot)``), the key and what is allowed, so ``pmon`` can print it as it
prints any other config error. Plain ``ValueError`` and no import of
``pmon.config``, so the config module can import this one.

A rule as written in pmon.toml::

    [[alerts]]
    name = "cpu_hot"            # unique; what `pmon alerts silence NAME` takes
    metric = "cpu_usage"        # a seed metric type or a dotted custom name
    plugin = "web-*"            # glob over plugin ids (default "*")
    comparison = ">"            # >, >=, <, <=
    threshold = 90
    for = "5m"                  # seconds (a number) or a duration: 90s, 5m, 1h30m, 2d
    clear = 75                  # resolves only once cpu_usage <= 75 (default: threshold)
    severity = "high"           # info, low, medium, high, critical
    description = "web CPU saturated"
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from numbers import Real
from typing import Any, Final

from pmon.models import MetricType, Severity
from pmon.plain_text import escape_controls
from pmon.validate import custom_metric

COMPARISONS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
"""The comparisons a rule may use; the condition is ``value <comparison> threshold``."""

KEYS: Final = ("name", "metric", "plugin", "comparison", "threshold", "for", "clear", "severity", "description")
REQUIRED: Final = ("name", "metric", "comparison", "threshold")
RULE_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
PLUGIN_GLOB_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:*?\[\]!-]{1,128}")
MAX_FOR_SECONDS: Final = 30 * 86400.0
MAX_DESCRIPTION: Final = 500

DURATION_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertRule:
    """One ``[[alerts]]`` table: when a metric of the matching plugins is in alarm."""

    name: str
    """Unique among the rules; alerts, acks and silences refer to it."""
    metric: str
    """A seed metric type (``cpu_usage``) or a dotted custom metric (``custom.queue_depth``)."""
    plugin: str = "*"
    """A glob (fnmatch, case-sensitive) over plugin ids; each matching plugin has its own alert."""
    comparison: str
    """One of ``COMPARISONS``: the rule is breached while ``value <comparison> threshold``."""
    threshold: float
    """Where the alarm starts."""
    for_: float = 0.0
    """Seconds the breach must last (by the points' own timestamps) before the alert fires; 0 fires at once."""
    clear: float | None = None
    """Where it resolves: firing lasts while ``value <comparison> clear`` (None: the threshold itself)."""
    severity: str = "high"
    """The severity of the firing and resolved events (a ``Severity`` value)."""
    description: str = ""
    """Free text for people, appended to the event descriptions."""

    @property
    def clear_at(self) -> float:
        """The resolve threshold, ``threshold`` unless ``clear`` is set."""
        return self.threshold if self.clear is None else self.clear

    def matches(self, plugin_id: str) -> bool:
        """Does this rule watch the plugin?"""
        return fnmatchcase(plugin_id, self.plugin)

    def breached(self, value: float) -> bool:
        """Is the value in alarm (enough to start pending, or to keep a pending alert going)?"""
        return COMPARISONS[self.comparison](value, self.threshold)

    def still_firing(self, value: float) -> bool:
        """Is a firing alert still on? Hysteresis: only a value past ``clear`` resolves it."""
        return COMPARISONS[self.comparison](value, self.clear_at)


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds from a number (seconds) or text such as ``90s``, ``5m``, ``1h30m``, ``2d``, ``1w``.

    Why a unit is required in text: a bare ``"30"`` reads as minutes to some and seconds to others.
    """
    if isinstance(value, Real) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{what} must be seconds or a duration such as 90s, 5m, 1h30m, 2d; got {value!r}")
        seconds = sum(float(n) * DURATION_UNITS[u] for n, u in parts)
    else:
        raise ValueError(f"{what} must be seconds or a duration such as 90s, 5m, 1h30m, 2d; got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a finite duration of 0 or more, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """``5m``, ``1h30m``, ``45s``: the shortest text ``parse_duration`` reads back."""
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    out, rest = "", int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key} must be a string, got {type(value).__name__} {value!r}")
    return value


def _metric(where: str, value: Any) -> str:
    text = _text(where, "metric", value)
    if text in {m.value for m in MetricType}:
        return text
    try:
        return custom_metric(text, MetricType)
    except ValueError:
        seed = ", ".join(m.value for m in MetricType)
        raise ValueError(f"{where}: metric {text!r} is not one of {seed}, nor a dotted custom metric "
                         f"(lowercase, e.g. 'custom.queue_depth')") from None


def _rule(table: dict[str, Any], where: str) -> AlertRule:
    unknown = [key for key in table if key not in KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(KEYS)})")
    missing = [key for key in REQUIRED if key not in table]
    if missing:
        raise ValueError(f"{where}: missing required key {missing[0]!r} (required: {', '.join(REQUIRED)})")
    comparison = _text(where, "comparison", table["comparison"])
    if comparison not in COMPARISONS:
        raise ValueError(f"{where}: comparison must be one of {', '.join(COMPARISONS)}, got {comparison!r}")
    plugin = _text(where, "plugin", table.get("plugin", "*"))
    if not PLUGIN_GLOB_PATTERN.fullmatch(plugin):
        raise ValueError(f"{where}: plugin must be a plugin id or a glob of one (A-Z a-z 0-9 _ . : - * ? [ ] !), "
                         f"got {plugin!r}")
    threshold = _number(where, "threshold", table["threshold"])
    clear = None if "clear" not in table else _number(where, "clear", table["clear"])
    if clear is not None and clear != threshold and (clear > threshold) == (comparison in (">", ">=")):
        side = "at most" if comparison in (">", ">=") else "at least"
        raise ValueError(f"{where}: clear must be {side} the threshold for comparison {comparison!r} "
                         f"(it is where the alarm resolves), got clear {clear:g} and threshold {threshold:g}")
    try:
        for_ = parse_duration(table.get("for", 0.0), "for")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if for_ > MAX_FOR_SECONDS:
        raise ValueError(f"{where}: for must be at most 30d, got {table['for']!r}")
    severity = _text(where, "severity", table.get("severity", "high"))
    if severity not in {s.value for s in Severity}:
        raise ValueError(f"{where}: severity must be one of {', '.join(s.value for s in Severity)}, got {severity!r}")
    description = _text(where, "description", table.get("description", ""))
    if len(description) > MAX_DESCRIPTION:
        raise ValueError(f"{where}: description must be at most {MAX_DESCRIPTION} characters")
    return AlertRule(name=table["name"], metric=_metric(where, table["metric"]), plugin=plugin,
                     comparison=comparison, threshold=threshold, for_=for_, clear=clear, severity=severity,
                     description=description)


def parse_rules(items: Any, source: str) -> tuple[AlertRule, ...]:
    """The rules of a ``[[alerts]]`` array, in file order; ``source`` (the file) starts every error line."""
    if not isinstance(items, list):
        raise ValueError(f"{source}: alerts must be an array of tables ([[alerts]]), got {type(items).__name__}")
    rules: list[AlertRule] = []
    seen: dict[str, int] = {}
    for number, table in enumerate(items, start=1):
        name = table.get("name") if isinstance(table, dict) else None
        where = f"{source}: [[alerts]] #{number} ({escape_controls(name) if isinstance(name, str) else '?'})"
        if not isinstance(table, dict):
            raise ValueError(f"{where}: must be a table with keys {', '.join(KEYS)}")
        if "name" in table and not (isinstance(name, str) and RULE_NAME_PATTERN.fullmatch(name)):
            raise ValueError(f"{where}: name must be 1-64 characters from A-Z a-z 0-9 _ . : -, got {name!r}")
        if isinstance(name, str) and name in seen:
            raise ValueError(f"{where}: name {name!r} is already used by [[alerts]] #{seen[name]}; names must be unique")
        rule = _rule(table, where)
        seen[rule.name] = number
        rules.append(rule)
    return tuple(rules)

"""Argument checks for the recording API.

Every check raises ``ValueError`` naming the argument and what is allowed, so a
plugin author sees the mistake at the call site instead of a silent gap in the
data. The fast paths (a known plugin id, an enum member, a float) cost a dict
lookup or a type test; the slow paths run only for unusual input.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import datetime
from enum import StrEnum
from numbers import Real
from typing import Any, TypeVar

PLUGIN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_KNOWN_IDS = 10_000
TRUNCATION_MARKER = "\n…[pmon: truncated {dropped} bytes]"

E = TypeVar("E", bound=StrEnum)


def enum_lookup(enum: type[E]) -> dict[Any, E]:
    """A table accepting members and their string values (any case)."""
    table: dict[Any, E] = {}
    for member in enum:
        table[member] = member
        table[member.value] = member
        table[member.value.upper()] = member
        table[member.name] = member
    return table


CUSTOM_METRIC_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")
MAX_CUSTOM_METRIC = 64


@functools.lru_cache(maxsize=4096)
def _is_custom_metric(value: str) -> bool:
    return len(value) <= MAX_CUSTOM_METRIC and CUSTOM_METRIC_PATTERN.fullmatch(value) is not None


def custom_metric(value: Any, allowed: type[StrEnum]) -> str:
    """Accept a dotted custom metric name (``process.threads``) beside the seed's seven types.

    Why dotted: a typo of a seed type (``cpu``) must still be an error, not a new series.
    """
    if type(value) is str and _is_custom_metric(value):
        return value
    seed = ", ".join(m.value for m in allowed)
    raise ValueError(f"metric_type: {value!r} is not one of {seed}; custom metrics are lowercase names with a dot, "
                     f"at most {MAX_CUSTOM_METRIC} characters (e.g. 'custom.queue_depth')")


def bad_enum(argument: str, value: Any, enum: type[StrEnum]) -> ValueError:
    """The error for a value outside an enum."""
    allowed = ", ".join(m.value for m in enum)
    return ValueError(f"{argument}: {value!r} is not one of {allowed}")


def plugin_id(value: Any, known: dict[str, str]) -> str:
    """Check a plugin id; remembered ids skip the regex."""
    if value in known:  # only str values are ever stored, so hash equality is enough
        return known[value]
    if not isinstance(value, str) or not PLUGIN_ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"plugin_id: {value!r} is not allowed; use 1-128 characters from A-Z a-z 0-9 _ . : -"
        )
    if len(known) < MAX_KNOWN_IDS:
        known[value] = value
    return value


def number(argument: str, value: Any) -> float | int:
    """Accept a finite real number (not bool, not a numeric string)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{argument}: {value!r} is not a number; pass an int or float")
    result = float(value) if not isinstance(value, int) else value
    if isinstance(result, float) and not math.isfinite(result):
        raise ValueError(f"{argument}: {value!r} is not finite; NaN and infinities cannot be stored")
    if isinstance(result, int) and not -(2**63) <= result < 2**63:
        result = float(result)
    return result


def timestamp(value: Any) -> float:
    """An aware datetime or epoch seconds, as epoch seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError("timestamp: naive datetime; pass an aware datetime (e.g. tz=timezone.utc) or epoch seconds")
        return value.timestamp()
    seconds = number("timestamp", value)
    if not 0 <= seconds < 32503680000:  # year 3000
        raise ValueError(f"timestamp: {value!r} is outside 1970..3000 (epoch seconds)")
    return float(seconds)


def _finite_only(value: Any) -> Any:
    """Replace non-finite floats (invalid JSON) with their names."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _finite_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_only(v) for v in value]
    return value


def json_text(argument: str, value: Any) -> str | None:
    """Serialise a metadata / context / data mapping to JSON text.

    Values JSON cannot hold are stored as their ``repr()`` (the documented
    fallback) so a datetime in a context never costs the host a crash;
    NaN and infinities become strings so the stored text stays valid JSON.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{argument}: expected a dict (JSON object) or None, got {type(value).__name__}")
    try:
        return json.dumps(value, default=repr, allow_nan=False, ensure_ascii=False)
    except ValueError as exc:
        if "Circular" in str(exc):
            raise ValueError(f"{argument}: contains a circular reference and cannot be stored as JSON") from None
        return json.dumps(_finite_only(value), default=repr, allow_nan=False, ensure_ascii=False)
    except (TypeError, RecursionError) as exc:
        raise ValueError(f"{argument}: cannot be stored as JSON ({exc})") from None


def text(argument: str, value: Any, max_bytes: int, *, required: bool = True) -> str | None:
    """Coerce to str, make it valid UTF-8, truncate beyond ``max_bytes`` with a marker."""
    if value is None:
        if required:
            raise ValueError(f"{argument}: must be a string, got None")
        return None
    if type(value) is not str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value).decode("utf-8", "replace")
        else:
            value = str(value)
    if len(value) * 4 > max_bytes:
        encoded = value.encode("utf-8", "surrogatepass")
        if len(encoded) > max_bytes:
            kept = encoded[:max_bytes].decode("utf-8", "ignore")
            value = kept + TRUNCATION_MARKER.format(dropped=len(encoded) - len(kept.encode("utf-8", "surrogatepass")))
    return value


def scrub(value: str) -> str:
    """Replace lone surrogates with U+FFFD so SQLite can store the text."""
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")

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
"""How many checked plugin ids a lookup table remembers (later ones are checked each time)."""
MAX_PLUGIN_IDS = 10_000
"""Distinct plugin ids one Monitor records; rows of further ids are dropped and counted (``status()``).

Why a cap: plugin ids name plugins; a plugin that puts a request id in it
(``f"req-{uuid}"``) would otherwise grow the process and the store without end.
"""
TRUNCATION_MARKER = "\n…[pmon: truncated {dropped} bytes]"
JSON_TRUNCATION_KEY = "pmon_truncated"
"""The key of the object that replaces a metadata / context / data mapping too large to keep."""
INT64 = range(-(2**63), 2**63)
"""What an SQLite INTEGER holds."""
_SHOWN_CHARS = 80
_MEASURE_CHUNK = 1 << 20

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
    raise ValueError(f"metric_type: {shown(value)} is not one of {seed}; "
                     "custom metrics are lowercase names with a dot, "
                     f"at most {MAX_CUSTOM_METRIC} characters (e.g. 'custom.queue_depth')")


def shown(value: Any) -> str:
    """``repr(value)`` for an error message: at most ~80 characters, and never raising.

    Why: the value in an error may be a 10 MB string, an int past Python's
    4,300-digit str() limit, or an object whose ``__repr__`` raises.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    try:
        text = repr(value[:_SHOWN_CHARS + 1] if isinstance(value, (str, bytes)) else value)
    except Exception as exc:  # a hostile __repr__ must not replace the error we mean to raise
        return f"a {type(value).__name__} whose repr() raised {type(exc).__name__}"
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def bad_enum(argument: str, value: Any, enum: type[StrEnum]) -> ValueError:
    """The error for a value outside an enum."""
    allowed = ", ".join(m.value for m in enum)
    return ValueError(f"{argument}: {shown(value)} is not one of {allowed}")


def plugin_id(value: Any, known: dict[str, str]) -> str:
    """Check a plugin id; remembered ids skip the regex."""
    if type(value) is str and value in known:
        return known[value]
    if not isinstance(value, str) or not PLUGIN_ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"plugin_id: {shown(value)} is not allowed; use 1-128 characters from A-Z a-z 0-9 _ . : -"
        )
    if len(known) < MAX_KNOWN_IDS:
        known[value] = value
    return value


def number(argument: str, value: Any) -> float | int:
    """Accept a finite real number (not bool, not a numeric string).

    Ints outside SQLite's 64-bit INTEGER become the nearest float; past a
    float's range (about ±1.8e308) they are an error, as NaN and infinities are.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{argument}: {shown(value)} is not a number; pass an int or float")
    try:
        result = float(value) if not isinstance(value, int) or value not in INT64 else value
    except OverflowError:
        raise ValueError(f"{argument}: {shown(value)} is too large; numbers are stored as 64-bit floats "
                         "(at most about ±1.8e308)") from None
    if isinstance(result, float) and not math.isfinite(result):
        raise ValueError(f"{argument}: {shown(value)} is not finite; NaN and infinities cannot be stored")
    return result


def count(argument: str, value: Any) -> int:
    """A number stored in an INTEGER column (a snapshot's request_count): truncated to an int, 64-bit signed."""
    exact = isinstance(value, int) and not isinstance(value, bool)
    result = int(value) if exact else int(number(argument, value))
    if result not in INT64:
        raise ValueError(f"{argument}: {shown(value)} is outside -2**63..2**63-1 (a 64-bit integer)")
    return result


def timestamp(value: Any) -> float:
    """An aware datetime or epoch seconds, as epoch seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError("timestamp: naive datetime; pass an aware datetime (e.g. tz=timezone.utc) or epoch seconds")
        return value.timestamp()
    seconds = number("timestamp", value)
    if not 0 <= seconds < 32503680000:  # year 3000
        raise ValueError(f"timestamp: {shown(value)} is outside 1970..3000 (epoch seconds)")
    return float(seconds)


def _json_key(key: Any) -> str:
    """A mapping key as JSON text: what ``json.dumps`` makes of str, int, float, bool and None; else its repr."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, float)):
        return json.dumps(key, allow_nan=True)
    return _safe_repr(key)


def _safe_repr(value: Any) -> str:
    """``repr()`` as the JSON fallback; ints past Python's 4,300-digit limit in hex, a raising repr named."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(int(value))
        except ValueError:
            return hex(value)
    try:
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__name__} whose repr() raised {type(exc).__name__}>"


def _jsonable(value: Any) -> Any:
    """A copy JSON can hold: non-finite floats and huge ints as strings, other keys as text, other values repr()."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 14_000:
        return _safe_repr(value)  # past 4,300 digits json.dumps cannot write it
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def json_text(argument: str, value: Any, max_bytes: int | None = None) -> str | None:
    """Serialise a metadata / context / data mapping to JSON text.

    Values JSON cannot hold are stored as their ``repr()`` (the documented
    fallback) so a datetime in a context never costs the host a crash;
    NaN and infinities become strings, keys other than strings their text,
    so the stored text stays valid JSON. Past ``max_bytes`` of JSON the
    mapping is replaced by ``{"pmon_truncated": ..., "head": ...}`` (still a
    JSON object, visibly cut): see ``truncated_json``.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{argument}: expected a dict (JSON object) or None, got {type(value).__name__}")
    try:
        result = json.dumps(value, default=_safe_repr, allow_nan=False, ensure_ascii=False)
    except (ValueError, TypeError) as exc:
        if "Circular" in str(exc):
            raise ValueError(f"{argument}: contains a circular reference and cannot be stored as JSON") from None
        try:
            result = json.dumps(_jsonable(value), default=_safe_repr, allow_nan=False, ensure_ascii=False)
        except RecursionError:
            raise ValueError(f"{argument}: nested too deeply to be stored as JSON") from None
        except (ValueError, TypeError) as again:
            raise ValueError(f"{argument}: cannot be stored as JSON ({again})") from None
    except RecursionError:
        raise ValueError(f"{argument}: nested too deeply to be stored as JSON") from None
    if max_bytes is not None and len(result) * 4 > max_bytes:
        return truncated_json(result, max_bytes)
    return result


def truncated_json(result: str, max_bytes: int) -> str:
    """``result`` if it fits ``max_bytes`` (UTF-8), else a small object saying how much was cut, with its start."""
    size = _utf8_length(result)
    if size <= max_bytes:
        return result
    keep = max_bytes // 2  # escaping in the replacement JSON may grow the head; halved again until it fits
    while True:
        head = result.encode("utf-8", "surrogatepass")[:keep].decode("utf-8", "ignore")
        marker = f"[pmon: truncated {size - len(head.encode('utf-8', 'surrogatepass'))} bytes of {size}]"
        replaced = json.dumps({JSON_TRUNCATION_KEY: marker, "head": head}, ensure_ascii=False)
        if len(replaced.encode("utf-8", "surrogatepass")) <= max_bytes or keep < 64:
            return replaced
        keep //= 2


def _utf8_length(value: str) -> int:
    """Bytes of ``value`` in UTF-8, measured a chunk at a time so a 1 GB string costs no second gigabyte."""
    if len(value) <= _MEASURE_CHUNK:
        return len(value.encode("utf-8", "surrogatepass"))
    return sum(len(value[i:i + _MEASURE_CHUNK].encode("utf-8", "surrogatepass"))
               for i in range(0, len(value), _MEASURE_CHUNK))


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
            try:
                value = str(value)
            except Exception as exc:
                if isinstance(value, int):  # past Python's 4,300-digit limit: exact, in hex
                    value = hex(value)
                else:
                    raise ValueError(f"{argument}: str() of the {type(value).__name__} raised "
                                     f"{type(exc).__name__}; pass a string") from None
    if len(value) * 4 > max_bytes:
        size = _utf8_length(value)
        if size > max_bytes:
            kept = value[:max_bytes].encode("utf-8", "surrogatepass")[:max_bytes].decode("utf-8", "ignore")
            value = kept + TRUNCATION_MARKER.format(dropped=size - len(kept.encode("utf-8", "surrogatepass")))
    return value


def scrub(value: str) -> str:
    """Replace each lone surrogate with one U+FFFD so SQLite can store the text (a pair becomes its character)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value

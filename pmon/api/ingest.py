"""JSON records -> the recording API, with the Python API's checks and an error naming the exact field.

A batch is checked whole before anything is recorded, so a 400 means nothing
was taken and the client can fix and resend without duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pmon import validate
from pmon.api.responses import ApiError, bad_request
from pmon.models import SNAPSHOT_DICTS, SNAPSHOT_FIELDS, SNAPSHOT_NUMBERS, LogLevel, MetricType, Severity
from pmon.monitor import Monitor

MAX_DEPTH = 32
"""Deepest nesting of a metadata / context / data object."""

KINDS = ("metrics", "logs", "events", "snapshots")

_METRICS = validate.enum_lookup(MetricType)
_LEVELS = validate.enum_lookup(LogLevel)
_SEVERITIES = validate.enum_lookup(Severity)

_ALLOWED = {
    ("metric_type", "value"): frozenset(("metric_type", "value", "metadata", "timestamp", "plugin_id")),
    ("level", "message"): frozenset(("level", "message", "context", "traceback", "timestamp", "plugin_id")),
    ("event_type", "description"): frozenset(("event_type", "description", "severity", "data", "timestamp",
                                              "plugin_id")),
    (): frozenset((*SNAPSHOT_FIELDS, "timestamp", "plugin_id")),
}
"""Each kind's fields by its required ones, for ``_fields``' fast path."""
_REQUIRED = {required: frozenset(required) for required in _ALLOWED}

_KNOWN_IDS: dict[str, str] = {}
"""Plugin ids already checked (bounded like the Monitor's), so a batch of one plugin runs the regex once."""

_INT_RANGE = range(-(2**63), 2**63)

Record = tuple[Callable[..., None], tuple[Any, ...], dict[str, Any]]
"""A checked record: the Monitor method, its positional and keyword arguments."""


def _fields(item: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    if type(item) is dict and item.keys() <= _ALLOWED[required] and item.keys() >= _REQUIRED[required]:
        return item  # the usual case: two set comparisons instead of a loop per field
    if not isinstance(item, dict):
        raise bad_request(f"expected a JSON object, got {_json_type(item)}", where or "body")
    unknown = [name for name in item if name not in required and name not in optional]
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}; allowed: {', '.join(required + optional)}",
                          _at(where, unknown[0]))
    for name in required:
        if name not in item:
            raise bad_request(f"missing field {name!r}", _at(where, name))
    return item


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _check(where: str, name: str, check: Callable[[], Any]) -> Any:
    """Run a ``validate`` check; its ValueError becomes a 400 naming ``where.name``."""
    try:
        return check()
    except ValueError as exc:
        raise bad_request(str(exc), _at(where, name)) from None


def _string(item: dict[str, Any], where: str, name: str, *, required: bool = True) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name}: expected a string, got {_json_type(value)}", _at(where, name))
    return value


def _object(item: dict[str, Any], where: str, name: str) -> dict[str, Any] | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"{name}: expected an object or null, got {_json_type(value)}", _at(where, name))
    if _depth(value) > MAX_DEPTH:
        raise bad_request(f"{name}: nested deeper than {MAX_DEPTH} levels", _at(where, name))
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (a hostile body cannot blow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _number(item: dict[str, Any], where: str, name: str) -> float | int:
    value = item.get(name)
    if type(value) is float and value - value == 0.0 or type(value) is int and value in _INT_RANGE:
        return value  # finite float / int in SQLite's range: what nearly every record sends
    return _check(where, name, lambda: validate.number(name, item.get(name)))


def _timestamp(item: dict[str, Any], where: str) -> float | None:
    value = item.get("timestamp")
    if value is None:
        return None
    if type(value) is float and 0 <= value < 32503680000:
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise bad_request(f"timestamp: {value!r} is neither epoch seconds nor an ISO 8601 time",
                              _at(where, "timestamp")) from None
        return _check(where, "timestamp", lambda: validate.timestamp(parsed))
    return _check(where, "timestamp", lambda: validate.timestamp(value))


def _plugin(value: Any, where: str) -> str:
    known = _KNOWN_IDS.get(value) if type(value) is str else None
    return known or _check(where, "plugin_id", lambda: validate.plugin_id(value, _KNOWN_IDS))


def _taken(monitor: Monitor, plugin_id: str, where: str) -> str:
    """The id, unless the daemon's Monitor is at its cap of distinct plugin ids (it would drop the rows silently)."""
    if not monitor.accepts_plugin(plugin_id):
        raise bad_request(f"plugin_id: the daemon already records {validate.MAX_PLUGIN_IDS:,} distinct plugin ids; "
                          "a new one is refused (nothing of this request was taken)", _at(where, "plugin_id"))
    return plugin_id


def _metric(monitor: Monitor, plugin_id: str, item: Any, where: str) -> Record:
    item = _fields(item, where, ("metric_type", "value"), ("metadata", "timestamp", "plugin_id"))
    metric = item["metric_type"]
    if not (type(metric) is str and metric in _METRICS):
        _check(where, "metric_type", lambda: validate.custom_metric(metric, MetricType))
    value = _number(item, where, "value")
    metadata = _object(item, where, "metadata") if "metadata" in item else None
    timestamp = _timestamp(item, where) if "timestamp" in item else None
    return monitor.record_metric, (plugin_id, metric, value, metadata), {"timestamp": timestamp}


def _log(monitor: Monitor, plugin_id: str, item: Any, where: str) -> Record:
    item = _fields(item, where, ("level", "message"), ("context", "traceback", "timestamp", "plugin_id"))
    level = item["level"]
    if not isinstance(level, str) or level not in _LEVELS:
        raise bad_request(str(validate.bad_enum("level", level, LogLevel)), _at(where, "level"))
    message = _string(item, where, "message")
    traceback = _string(item, where, "traceback", required=False)
    args = (plugin_id, level, message, _object(item, where, "context"), traceback)
    return monitor.record_log, args, {"timestamp": _timestamp(item, where)}


def _event(monitor: Monitor, plugin_id: str, item: Any, where: str) -> Record:
    item = _fields(item, where, ("event_type", "description"), ("severity", "data", "timestamp", "plugin_id"))
    event_type = _string(item, where, "event_type")
    if not event_type or not event_type.strip() or len(event_type) > 128:
        raise bad_request("event_type: must be a non-empty string of at most 128 characters",
                          _at(where, "event_type"))
    severity = item.get("severity", "info")
    if not isinstance(severity, str) or severity not in _SEVERITIES:
        raise bad_request(str(validate.bad_enum("severity", severity, Severity)), _at(where, "severity"))
    description = _string(item, where, "description")
    args = (plugin_id, event_type, description, severity, _object(item, where, "data"))
    return monitor.record_event, args, {"timestamp": _timestamp(item, where)}


def _snapshot(monitor: Monitor, plugin_id: str, item: Any, where: str) -> Record:
    item = _fields(item, where, (), (*SNAPSHOT_FIELDS, "timestamp", "plugin_id"))
    data: dict[str, Any] = {}
    for name in SNAPSHOT_NUMBERS:
        if name in item:
            data[name] = _number(item, where, name)
    if "request_count" in data:  # a 64-bit INTEGER column: checked here, so a bad one takes nothing of the batch
        _check(where, "request_count", lambda: validate.count("request_count", data["request_count"]))
    for name in SNAPSHOT_DICTS:
        if name in item:
            data[name] = _object(item, where, name) or {}
    return monitor.create_snapshot, (plugin_id, data), {"timestamp": _timestamp(item, where)}


PARSERS: dict[str, Callable[[Monitor, str, Any, str], Record]] = {
    "metrics": _metric, "logs": _log, "events": _event, "snapshots": _snapshot}


def one(monitor: Monitor, kind: str, plugin_id: str, body: Any) -> Record:
    """A single record POSTed to ``/plugins/{plugin_id}/{kind}``."""
    plugin_id = _taken(monitor, _plugin(plugin_id, ""), "")
    if isinstance(body, dict) and body.get("plugin_id", plugin_id) != plugin_id:
        raise bad_request("plugin_id in the body differs from the one in the path", "plugin_id")
    return PARSERS[kind](monitor, plugin_id, body, "")


def batch(monitor: Monitor, body: Any, max_records: int) -> tuple[list[Record], dict[str, int]]:
    """Every record of a batch body (``{"metrics": [...], "logs": [...], ...}``), checked; and counts per kind."""
    if not isinstance(body, dict):
        raise bad_request(f"expected a JSON object with {', '.join(KINDS)} arrays, got {_json_type(body)}", "body")
    unknown = [name for name in body if name not in KINDS]
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}; allowed: {', '.join(KINDS)}", unknown[0])
    total = 0
    for kind in KINDS:
        items = body.get(kind, [])
        if not isinstance(items, list):
            raise bad_request(f"{kind}: expected an array, got {_json_type(items)}", kind)
        total += len(items)
    if total == 0:
        raise bad_request(f"the batch is empty; send at least one of {', '.join(KINDS)}", "body")
    if total > max_records:
        raise ApiError(413, f"the batch holds {total} records; at most {max_records} (api.max_batch_records)",
                       "body")
    records: list[Record] = []
    counts = {}
    for kind in KINDS:
        items = body.get(kind, [])
        parse = PARSERS[kind]
        for index, item in enumerate(items):
            where = f"{kind}[{index}]"
            if not isinstance(item, dict):
                raise bad_request(f"expected a JSON object, got {_json_type(item)}", where)
            if "plugin_id" not in item:
                raise bad_request("missing field 'plugin_id'", f"{where}.plugin_id")
            records.append(parse(monitor, _taken(monitor, _plugin(item["plugin_id"], where), where), item, where))
        counts[kind] = len(items)
    return records, counts


def record_all(records: list[Record]) -> int:
    """Hand checked records to the monitor; returns how many were taken."""
    taken = 0
    for method, args, kwargs in records:
        method(*args, **kwargs)
        taken += 1
    return taken

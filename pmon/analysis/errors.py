"""Error grouping: ERROR / CRITICAL logs grouped by a fingerprint, so a flood of one failure reads as one line.

The fingerprint is the exception type, the message with its variable parts
(numbers, hex addresses, UUIDs, IPs, quoted values) replaced by
placeholders, and the plugin's own frames of the traceback (file basename
and function, no line numbers): the same failure from another request,
object or line edit groups together, while a different exception or a
different path through the plugin's code does not. Frames in the standard
library, in site-packages and in pmon are left out: they say how the error
travelled, not where the plugin went wrong.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import sysconfig
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from pmon.store import analysis_queries as aq

DEFAULT_LIMIT: Final = 50
"""Groups returned by default (the largest)."""

_NORMALISERS: Final = (
    ("-", re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), "<uuid>"),
    ("0x", re.compile(r"0x[0-9a-fA-F]+"), "<hex>"),
    (".", re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    ("'", re.compile(r"'[^'\n]*'"), "'<str>'"),
    ('"', re.compile(r'"[^"\n]*"'), '"<str>"'),
    ("", re.compile(r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{12,}\b"), "<id>"),
    ("", re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)
"""(text that must occur for the pattern to match, pattern, placeholder), in order: a UUID or an address holds
digits the number rule would otherwise split."""
_RAISED: Final = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")
"""The last line of a traceback: ``module.Type: message`` or a bare ``Type``."""
_NAMED_IN_MESSAGE: Final = re.compile(r"([A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt|Timeout)):")
"""A message that starts with an exception's name, as ``f"{type(e).__name__}: {e}"`` writes it."""
_FRAME: Final = re.compile(r'^[ \t]*File "([^"\n]+)", line \d+, in (\S+)', re.MULTILINE)
r"""A frame line. ``[ \t]*``, not ``\s*``: that would run over blank lines from every line start, quadratic
in a traceback of newlines (64 KiB of them took 7 s, a megabyte half an hour)."""
_TRACEBACK_START: Final = "Traceback (most recent call last):"
_FOREIGN_PATH: Final = re.compile(r"[/\\](?:site|dist)-packages[/\\]|[/\\]lib[/\\]python\d[\d.]*[/\\]|"
                                  r"[/\\]Lib[/\\]|^<|[/\\]pmon[/\\](?:[\w/\\]+[/\\])?\w+\.py$")
"""Paths of frames that are not the plugin's: installed packages, the standard library, frozen modules, pmon."""
_SEPARATORS: Final = re.compile(r"[/\\]")
_STDLIB: Final = tuple({p for p in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib"))
                        if p})
_PMON: Final = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """Error logs sharing one fingerprint."""

    fingerprint: str
    exception_type: str | None
    """From the traceback's last line, else from a ``SomeError: ...`` message; None when neither names one."""
    message: str
    """The normalised message every log of the group has."""
    frames: tuple[str, ...]
    """The plugin's own frames, outermost first, as ``file.py:function``."""
    count: int
    first_seen: float
    last_seen: float
    plugins: tuple[str, ...]
    levels: tuple[str, ...]
    example_id: int
    """The newest log of the group."""
    example_message: str
    example_traceback: str | None

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return asdict(self)


def normalise_message(message: str) -> str:
    """``message`` with its variable parts replaced by placeholders (``<n>``, ``<hex>``, ``<uuid>``, ``<ip>``...)."""
    for needed, pattern, placeholder in _NORMALISERS:
        if needed in message:
            message = pattern.sub(placeholder, message)
    return " ".join(message.split())


@lru_cache(maxsize=4096)
def is_own_frame(path: str, plugin_id: str = "") -> bool:
    """A frame of the plugin's code: not the standard library, an installed package or pmon itself.

    A path with a folder or file named after the plugin is its own even in
    site-packages: a plugin installed as a package.
    """
    parts = _SEPARATORS.split(path)
    if plugin_id and (plugin_id in parts or f"{plugin_id}.py" in parts):
        return True
    if _FOREIGN_PATH.search(path) or path.startswith(_PMON):
        return False
    return not (_STDLIB and path.startswith(_STDLIB))


@lru_cache(maxsize=4096)
def _frame_name(path: str, function: str, plugin_id: str) -> str | None:
    """``file.py:function`` for one of the plugin's own frames, None for the others."""
    if not is_own_frame(path, plugin_id):
        return None
    return f"{_SEPARATORS.split(path)[-1]}:{function}"


def parse_traceback(traceback: str | None, message: str = "",
                    plugin_id: str = "") -> tuple[str | None, tuple[str, ...]]:
    """The exception type and the plugin's own frames (``file.py:function``, outermost first) of a traceback.

    A chained traceback counts by its last exception, the one that was
    raised. Without a traceback the type comes from a message such as
    ``"TimeoutError: ..."``, if it starts so.
    """
    exception_type: str | None = None
    frames: tuple[str, ...] = ()
    if traceback:
        last = traceback[traceback.rfind(_TRACEBACK_START):] if _TRACEBACK_START in traceback else traceback
        named = (_frame_name(path, function, plugin_id) for path, function in _FRAME.findall(last))
        frames = tuple(name for name in named if name is not None)
        for line in reversed(last.strip().split("\n")):  # not splitlines(): \x85 and U+2028 are message text
            if line and not line[0].isspace():
                match = _RAISED.match(line)
                exception_type = match.group(1) if match and line != _TRACEBACK_START else None
                break
    if exception_type is None:
        match = _NAMED_IN_MESSAGE.match(message)
        exception_type = match.group(1) if match else None
    return exception_type, frames


def _key(exception_type: str | None, normalised: str, frames: tuple[str, ...]) -> str:
    text = "\x1f".join((exception_type or "", normalised, *frames))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def fingerprint(message: str, traceback: str | None, plugin_id: str) -> str:
    """A 16-hex-digit id shared by the logs of one failure (``plugin_id`` tells its frames from the libraries')."""
    exception_type, frames = parse_traceback(traceback, message, plugin_id)
    return _key(exception_type, normalise_message(message), frames)


def error_groups(conn: sqlite3.Connection, since: float, until: float, plugin_id: str | None = None,
                 limit: int = DEFAULT_LIMIT, *, by_plugin: bool = False,
                 order: str = "count") -> list[ErrorGroup]:
    """ERROR / CRITICAL logs of [since, until) grouped by fingerprint; the largest (``order="last_seen"``: newest) first.

    By default one failure in several plugins is one group listing them all
    (``by_plugin=True`` keeps them apart, as ``fingerprint`` does). Each
    distinct message and traceback is parsed once per call.
    """
    if order not in ("count", "last_seen"):
        raise ValueError(f"order: 'count' or 'last_seen', got {order!r}")
    parsed: dict[tuple[str, str | None, str], tuple[str, str | None, str, tuple[str, ...]]] = {}
    tracebacks: dict[tuple[str, str], tuple[str | None, tuple[str, ...]]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for row in aq.error_logs(conn, since, until, plugin_id):
        found = parsed.get((row.message, row.traceback, row.plugin_id))
        if found is None:
            if row.traceback is None:
                exception_type, frames = parse_traceback(None, row.message)
            else:
                # The same traceback under many messages is parsed once (its type is read from it, not them).
                tb = tracebacks.get((row.traceback, row.plugin_id))
                if tb is None:
                    tb = tracebacks[(row.traceback, row.plugin_id)] = parse_traceback(row.traceback, "", row.plugin_id)
                exception_type, frames = tb
                if exception_type is None:
                    exception_type = parse_traceback(None, row.message)[0]
            normalised = normalise_message(row.message)
            found = (_key(exception_type, normalised, frames), exception_type, normalised, frames)
            parsed[(row.message, row.traceback, row.plugin_id)] = found
        key = f"{found[0]}:{row.plugin_id}" if by_plugin else found[0]
        group = groups.get(key)
        if group is None:
            groups[key] = {"found": found, "count": 1, "first": row.timestamp, "last": row.timestamp,
                           "plugins": {row.plugin_id}, "levels": {row.level}, "example": row}
            continue
        group["count"] += 1
        group["plugins"].add(row.plugin_id)
        group["levels"].add(row.level)
        if row.timestamp < group["first"]:
            group["first"] = row.timestamp
        if row.timestamp >= group["last"]:
            group["last"], group["example"] = row.timestamp, row
    result = [
        ErrorGroup(g["found"][0], g["found"][1], g["found"][2], g["found"][3], g["count"], float(g["first"]),
                   float(g["last"]), tuple(sorted(g["plugins"])), tuple(sorted(g["levels"])), g["example"].id,
                   g["example"].message, g["example"].traceback)
        for g in groups.values()
    ]
    if order == "count":
        result.sort(key=lambda g: (-g.count, -g.last_seen))
    else:
        result.sort(key=lambda g: (-g.last_seen, -g.count))
    return result[:limit]

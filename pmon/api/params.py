"""Query strings as the routes accept them: known names only, times like the CLI's, bounded limits."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from aiohttp import web

from pmon import timespec
from pmon.api.responses import bad_request

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
LATEST_MOMENT = 32503680000.0
"""3000-01-01 in epoch seconds: ``since`` and ``until`` are before it."""
MAX_CURSOR = 2**63 - 1
"""SQLite's largest integer: no id or millisecond time stored can be above it."""


def _whole(text: str) -> int | None:
    """A non-negative integer written in ASCII digits, or None.

    Why not ``str.isdigit``: it takes ``²`` and other digits ``int`` refuses,
    and ``int`` refuses more than 4,300 digits; both were 500s.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_CURSOR)):
        return None
    return int(text)


class Params:
    """The query string of one request, refusing names the route does not know (a typo is not a silent no-op)."""

    def __init__(self, request: web.Request, allowed: Iterable[str]) -> None:
        self.query = request.query
        self.allowed = tuple(allowed)
        for name in self.query:
            if name not in self.allowed:
                raise bad_request(f"unknown query parameter {name!r}; allowed: {', '.join(self.allowed) or 'none'}",
                                  name)
        self.now = time.time()

    def text(self, name: str) -> str | None:
        """A string parameter, or None when absent or empty."""
        value = self.query.get(name)
        return value if value else None

    def moment(self, name: str) -> float | None:
        """``since`` / ``until``: a duration ago (``2h``), an ISO 8601 time, or epoch seconds, from 1970 to 3000.

        A duration reaching back before 1970 (``100000d``) means "from the
        start" and becomes 0; an ISO or epoch time outside the range is a 400.
        Why bounded: times become integer milliseconds for SQLite, which
        overflows (a 500) near 1e16 s.
        """
        value = self.text(name)
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                return max(0.0, self.now - timespec.duration(value))
            except ValueError:
                pass
            try:
                seconds = timespec.moment(value, self.now)
            except ValueError as exc:
                raise bad_request(f"{name}: {exc}", name) from None
        if not math.isfinite(seconds) or not 0 <= seconds < LATEST_MOMENT:
            raise bad_request(f"{name}: {value!r} is not a time between 1970 and 3000", name)
        return seconds

    def range(self, default_seconds: float | None = None) -> tuple[float | None, float | None]:
        """``since`` and ``until``; with a default, ``since`` falls back to that long ago and ``until`` to now."""
        since, until = self.moment("since"), self.moment("until")
        if default_seconds is not None:
            until = self.now if until is None else until
            since = until - default_seconds if since is None else since
        if since is not None and until is not None and until <= since:
            raise bad_request("until must be after since", "until")
        return since, until

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer in [low, high]."""
        value = self.text(name)
        if value is None:
            return default
        number = _whole(value)
        if number is None or not low <= number <= high:
            raise bad_request(f"{name}: {value!r} must be an integer from {low} to {high}", name)
        return number

    def limit(self) -> int:
        """Page size."""
        return self.integer("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)

    def cursor(self) -> int | None:
        """An id cursor from a previous page's ``next_cursor``."""
        value = self.text("cursor")
        if value is None:
            return None
        number = _whole(value)
        if number is None or number > MAX_CURSOR:
            raise bad_request(f"cursor: {value!r} is not a cursor this API returned", "cursor")
        return number

    def pair_cursor(self) -> tuple[int, int] | None:
        """A ``ts_ms-id`` cursor (metrics page by time)."""
        value = self.text("cursor")
        if value is None:
            return None
        first, _, second = value.partition("-")
        ts_ms, row_id = _whole(first), _whole(second)
        if ts_ms is None or row_id is None or max(ts_ms, row_id) > MAX_CURSOR:
            raise bad_request(f"cursor: {value!r} is not a cursor this API returned", "cursor")
        return ts_ms, row_id

    def choice(self, name: str, allowed: Iterable[str]) -> str | None:
        """One of ``allowed`` (case-insensitive), or None."""
        value = self.text(name)
        if value is None:
            return None
        options = list(allowed)
        if value.lower() not in options:
            raise bad_request(f"{name}: {value!r} is not one of {', '.join(options)}", name)
        return value.lower()

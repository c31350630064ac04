"""What the Logs tab's error groups view reads, as plain frozen dataclasses (no Textual here).

Grouping parses every error log of the range (about a second for 100 000
distinct ones), so the view asks for it at most every ``GROUPS_EVERY``
seconds, and only while it is shown; the plugin screen reads its top groups
through ``read_groups`` too.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from pmon.analysis.errors import ErrorGroup, error_groups
from pmon.models import PluginLog
from pmon.store import queries

GROUPS_RANGE = 86400.0
"""Seconds of error logs the Logs tab groups (the last 24 h)."""
GROUPS_EVERY = 5.0
"""Seconds between two groupings while the view is shown: new errors show up within this."""
GROUPS_LIMIT = 50
"""The largest groups listed."""
ASK_AGAIN = 1.0
"""Seconds after which a grouping asked for but never answered (its refresh was cancelled by a newer one) is
asked for again."""


class GroupingSchedule:
    """When a view should group again: at once for a new filter, then GROUPS_EVERY seconds after the last answer.

    Times are the caller's monotonic clock; ``key`` is whatever identifies
    the view's filters (a generation number).
    """

    def __init__(self) -> None:
        self._asked: tuple[object, float] | None = None
        self._answered: tuple[object, float] | None = None

    def due(self, key: object, now: float) -> bool:
        """Ask for a grouping on this refresh? Saying yes counts as asking."""
        if self._answered is not None and self._answered[0] == key and now - self._answered[1] < GROUPS_EVERY:
            return False
        if self._asked is not None and self._asked[0] == key and now - self._asked[1] < ASK_AGAIN:
            return False
        self._asked = (key, now)
        return True

    def answered(self, key: object, now: float) -> None:
        """A grouping for ``key`` arrived."""
        self._answered = (key, now)

    def reset(self) -> None:
        """Group at the next refresh, whatever the key (the view was hidden, or shows another plugin)."""
        self._asked = self._answered = None


@dataclass(frozen=True, slots=True)
class ShownGroup:
    """One error group and its newest log, read in full so Enter can open it in the log screen."""

    group: ErrorGroup
    example: PluginLog | None
    """None when the log was pruned between grouping and reading it."""

    @property
    def title(self) -> str:
        """``Type: message`` as a reader expects it, without repeating a type the message already starts with."""
        group = self.group
        kind = group.exception_type
        if not kind or group.message.startswith((f"{kind}:", f"{kind.rpartition('.')[2]}:")):
            return group.message
        return f"{kind}: {group.message}"


def read_groups(conn: sqlite3.Connection, since: float, until: float, plugin_id: str | None,
                limit: int) -> tuple[ShownGroup, ...]:
    """The largest error groups of [since, until), each with its example log."""
    shown = []
    for group in error_groups(conn, since, until, plugin_id, limit):
        found = queries.logs(conn, after_id=group.example_id - 1, before_id=group.example_id + 1, limit=1)
        shown.append(ShownGroup(group, found[0] if found else None))
    return tuple(shown)


@dataclass(frozen=True, slots=True)
class GroupsQuery:
    """The groups view's next read; ``generation`` changes with the plugin filter so stale answers are dropped."""

    generation: int
    plugin_id: str | None = None
    range_seconds: float = GROUPS_RANGE

    def read(self, conn: sqlite3.Connection, now: float) -> GroupsView:
        """Runs on the refresh worker thread."""
        return GroupsView(self, read_groups(conn, now - self.range_seconds, now, self.plugin_id, GROUPS_LIMIT), now)


@dataclass(frozen=True, slots=True)
class GroupsView:
    """The groups answering one ``GroupsQuery``, largest first."""

    query: GroupsQuery
    groups: tuple[ShownGroup, ...]
    read_at: float

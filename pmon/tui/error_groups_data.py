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

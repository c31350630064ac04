"""What the Events tab reads on each refresh, as plain frozen dataclasses.

Imports no Textual: the query runs on the refresh worker thread and can be
tested and timed without the UI.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from pmon.models import EventCategory, PluginEvent, Severity
from pmon.store import event_queries, queries

EVENT_PAGE = 200
"""Events loaded when the tab (re)starts, and the most read per refresh after that."""


@dataclass(frozen=True, slots=True)
class EventQuery:
    """The Events tab's filters and tail position; ``generation`` changes with the filters so stale answers are dropped."""

    generation: int = 0
    min_severity: Severity | None = None
    category: EventCategory | None = None
    plugin_id: str | None = None
    text: str | None = None
    """Substring the description must contain."""
    after_id: int | None = None
    """None: the newest page; otherwise only events after this id."""

    def read(self, conn: sqlite3.Connection, now: float) -> EventBatch:
        """The newest page, or everything after ``after_id`` (at most EVENT_PAGE), oldest first."""
        newest = event_queries.newest_event_id(conn)
        found = queries.events(conn, plugin_id=self.plugin_id, min_severity=self.min_severity,
                               category=self.category, text=self.text, after_id=self.after_id,
                               limit=EVENT_PAGE, newest_first=self.after_id is None)
        if self.after_id is None:
            found.reverse()
        return EventBatch(self, tuple(found), newest, tuple(event_queries.event_plugins(conn)))


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events answering one ``EventQuery``, oldest first."""

    query: EventQuery
    events: tuple[PluginEvent, ...]
    newest_id: int
    """The store's highest event id just before reading: a tail need not rescan events up to it."""
    plugins: tuple[str, ...]
    """Every plugin with events, for the plugin filter."""

    def tail_after(self, current: int) -> int:
        """Where the next read starts: after the newest event read, or after ``newest_id`` once nothing is left.

        A full page after ``after_id`` may have more behind it, so only a
        first page or a short tail proves every event up to ``newest_id``
        has been seen.
        """
        last_read = max((event.id or 0 for event in self.events), default=0)
        complete = self.query.after_id is None or len(self.events) < EVENT_PAGE
        return max(current, last_read, self.newest_id if complete else 0)

    @property
    def more_waiting(self) -> bool:
        """A full tail page: more events are waiting, read again now rather than in a second."""
        return self.query.after_id is not None and len(self.events) >= EVENT_PAGE

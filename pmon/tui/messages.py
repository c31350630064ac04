"""Messages from the refresh worker to the widgets: the only way data reaches the UI."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from pmon.tui.reader import Reading


@dataclass
class DataRead(Message):
    """A refresh finished: every tab takes its part of ``reading``."""

    reading: Reading


@dataclass
class ReadFailed(Message):
    """A refresh could not read the database (missing, not yet a pmon database, busy, replaced)."""

    reason: str


@dataclass
class RefreshWanted(Message):
    """A panel's query changed (filter, range, selection): read now instead of at the next tick."""


@dataclass
class OpenPlugin(Message):
    """Drill down into one plugin: the app opens the plugin screen."""

    plugin_id: str

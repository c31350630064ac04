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

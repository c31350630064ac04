"""Route standard-library log records into pmon as plugin logs.

For Python code that already logs with ``logging``::

    import pmon.integrations.logging
    pmon.integrations.logging.install({"myapp.plugins.billing": "billing"})

Every record from ``myapp.plugins.billing`` and its children is then stored as
a log of the ``billing`` plugin, with its exception as the traceback and its
``extra`` attributes as the context. The logger's own level still decides
which records are made at all; ``install`` never changes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pmon.monitor import Monitor

__all__ = ["PmonHandler", "install", "uninstall"]

_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
"""What every LogRecord carries; anything else on a record came from ``extra=`` and becomes context."""

_LEVELS = ((logging.CRITICAL, "critical"), (logging.ERROR, "error"), (logging.WARNING, "warning"),
           (logging.INFO, "info"))

_inside = threading.local()
"""Set while a thread is recording, so logging done by the recording itself is not recorded again."""


def pmon_level(levelno: int) -> str:
    """The pmon level for a numeric logging level: custom levels take the nearest standard level below."""
    for threshold, name in _LEVELS:
        if levelno >= threshold:
            return name
    return "debug"


def _is_pmon_logger(name: str) -> bool:
    return name == "pmon" or name.startswith("pmon.")


class PmonHandler(logging.Handler):
    """A ``logging.Handler`` that records each record as a log of one plugin.

    It never raises into the code that logged (failures go to ``handleError``)
    and ignores pmon's own loggers, so attaching it to the root logger cannot
    feed pmon's reports about itself back into pmon.
    """

    def __init__(self, plugin_id: str, level: int | str = logging.NOTSET, monitor: Monitor | None = None) -> None:
        super().__init__(level)
        if monitor is None:
            import pmon
            monitor = pmon.monitor
        self.plugin_id = plugin_id
        """The plugin every record is recorded under."""
        self.monitor: Monitor = monitor
        """The monitor the records go to (pmon's default monitor unless one was given)."""
        self.logger_name: str | None = None
        """The logger ``install`` attached this handler to, so ``uninstall`` can take it off."""

    def emit(self, record: logging.LogRecord) -> None:
        if _is_pmon_logger(record.name) or getattr(_inside, "active", False):
            return
        _inside.active = True
        try:
            self.monitor.record_log(self.plugin_id, pmon_level(record.levelno), self._message(record),
                                    context=self._context(record), traceback=self._traceback(record),
                                    timestamp=record.created)
        except Exception:
            self.handleError(record)
        finally:
            _inside.active = False

    def _message(self, record: logging.LogRecord) -> str:
        """The message alone: the traceback and stack have their own column, so a formatter's are left out."""
        message = record.getMessage()
        formatter = self.formatter
        if formatter is None:
            return message
        record.message = message
        if formatter.usesTime():
            record.asctime = formatter.formatTime(record, formatter.datefmt)
        return formatter.formatMessage(record)

    @staticmethod
    def _traceback(record: logging.LogRecord) -> str | None:
        parts = []
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        return "\n".join(parts) or None

    @staticmethod
    def _context(record: logging.LogRecord) -> dict[str, Any] | None:
        extra = {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES}
        return extra or None


def install(mapping: dict[str, str], level: int | str = logging.INFO,
            monitor: Monitor | None = None) -> list[PmonHandler]:
    """Record each logger tree (``logger name → plugin_id``) as that plugin's logs.

    Installing the same mapping again reuses the handlers already attached, so
    a module that installs on import does not double every record.
    """
    if monitor is None:
        import pmon
        monitor = pmon.monitor
    handlers = []
    for logger_name, plugin_id in mapping.items():
        logger = logging.getLogger(logger_name)
        handler = next((h for h in logger.handlers if isinstance(h, PmonHandler)
                        and h.plugin_id == plugin_id and h.monitor is monitor), None)
        if handler is None:
            handler = PmonHandler(plugin_id, level, monitor)
            logger.addHandler(handler)
        else:
            handler.setLevel(level)
        handler.logger_name = logger_name
        handlers.append(handler)
    return handlers


def uninstall(handlers: Iterable[PmonHandler]) -> None:
    """Take handlers returned by ``install`` off their loggers (the monitor keeps running)."""
    for handler in handlers:
        if handler.logger_name is not None:
            logging.getLogger(handler.logger_name).removeHandler(handler)
            handler.logger_name = None
        handler.close()

"""Code that logs with the standard library gets its records into pmon as plugin logs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmon import Monitor
from pmon.integrations.logging import PmonHandler, install, uninstall
from sqlite_rows import rows


def stored(monitor: Monitor, db_path: Path) -> list[tuple]:
    assert monitor.flush()
    return rows(db_path, "SELECT level, message, context, traceback FROM plugin_logs ORDER BY id")


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("test_app.worker")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    log.setLevel(logging.NOTSET)
    log.propagate = True


def test_levels_are_mapped_and_custom_levels_take_the_nearest_below(monitor, db_path, logger) -> None:
    logger.setLevel(1)
    logger.addHandler(PmonHandler("worker", monitor=monitor))
    logger.debug("d")
    logger.info("i")
    logger.warning("w")
    logger.error("e")
    logger.critical("c")
    logger.log(25, "between info and warning")
    logger.log(5, "below debug")
    logger.log(60, "above critical")
    assert [(level, message) for level, message, _, _ in stored(monitor, db_path)] == [
        ("debug", "d"), ("info", "i"), ("warning", "w"), ("error", "e"), ("critical", "c"),
        ("info", "between info and warning"), ("debug", "below debug"), ("critical", "above critical")]


def test_an_exception_is_stored_as_the_traceback(monitor, db_path, logger) -> None:
    logger.addHandler(PmonHandler("worker", monitor=monitor))
    try:
        raise KeyError("missing invoice 42")
    except KeyError:
        logger.exception("billing failed")
    logger.info("where am I", stack_info=True)
    (level, message, _, traceback), (_, _, _, stack) = stored(monitor, db_path)
    assert (level, message) == ("error", "billing failed")
    assert traceback.startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing invoice 42'" in traceback
    assert "Stack (most recent call last):" in stack


def test_extra_attributes_become_the_context(monitor, db_path, logger) -> None:
    logger.addHandler(PmonHandler("worker", monitor=monitor))
    logger.info("charged", extra={"customer": "c-7", "amount": 12.5, "when": object})
    logger.info("plain")
    (_, _, context, _), (_, _, plain, _) = stored(monitor, db_path)
    assert json.loads(context) == {"customer": "c-7", "amount": 12.5, "when": repr(object)}
    assert plain is None


def test_non_string_messages_are_formatted(monitor, db_path, logger) -> None:
    logger.addHandler(PmonHandler("worker", monitor=monitor))
    thing = object()
    logger.info(42)
    logger.info("%s", thing)
    logger.info({"a": 1})
    assert [message for _, message, _, _ in stored(monitor, db_path)] == ["42", str(thing), "{'a': 1}"]


def test_a_formatter_shapes_the_message_but_not_the_traceback(monitor, db_path, logger) -> None:
    handler = PmonHandler("worker", monitor=monitor)
    handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    logger.addHandler(handler)
    try:
        1 / 0
    except ZeroDivisionError:
        logger.exception("oops")
    ((_, message, _, traceback),) = stored(monitor, db_path)
    assert message == "[test_app.worker] oops"
    assert "ZeroDivisionError" in traceback


class CountingHandler(PmonHandler):
    failures = 0

    def handleError(self, record: logging.LogRecord) -> None:
        self.failures += 1
        super().handleError(record)


def test_a_handler_that_cannot_record_never_raises(monitor, db_path, logger, monkeypatch, capsys) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", True)
    handler = CountingHandler("not a valid id!", monitor=monitor)
    logger.addHandler(handler)
    logger.error("lost")
    assert handler.failures == 1
    assert "plugin_id" in capsys.readouterr().err
    monkeypatch.setattr(logging, "raiseExceptions", False)
    logger.error("lost quietly")
    assert handler.failures == 2
    assert capsys.readouterr().err == ""
    monitor.record_log("worker", "info", "the monitor still works")
    assert [message for _, message, _, _ in stored(monitor, db_path)] == ["the monitor still works"]


def test_pmon_s_own_loggers_are_never_recorded(monitor, db_path) -> None:
    root = logging.getLogger()
    handler = PmonHandler("host", monitor=monitor)
    root.addHandler(handler)
    try:
        logging.getLogger("pmon").warning("pmon itself")
        logging.getLogger("pmon.store").error("pmon's writer")
        logging.getLogger("pmonitor_app").warning("not pmon")
    finally:
        root.removeHandler(handler)
    assert [message for _, message, _, _ in stored(monitor, db_path)] == ["not pmon"]


def test_logging_from_inside_a_recording_is_not_recorded_again(monitor, db_path, logger) -> None:
    class Chatty(Monitor):
        def record_log(self, *args, **kwargs) -> None:
            logger.warning("nested")
            super().record_log(*args, **kwargs)

    chatty = Chatty(db_path, flush_interval=0.05)
    logger.addHandler(PmonHandler("worker", monitor=chatty))
    try:
        logger.info("outer")
        assert [message for _, message, _, _ in stored(chatty, db_path)] == ["outer"]
    finally:
        chatty.stop_monitoring()


def test_install_routes_a_logger_tree_and_is_idempotent(monitor, db_path) -> None:
    app = logging.getLogger("myapp")
    app.setLevel(logging.DEBUG)
    mapping = {"myapp.plugins.billing": "billing", "myapp.plugins.search": "search"}
    first = install(mapping, monitor=monitor)
    second = install(mapping, monitor=monitor)
    try:
        assert second == first
        assert len(logging.getLogger("myapp.plugins.billing").handlers) == 1
        logging.getLogger("myapp.plugins.billing.sub").info("charged")
        logging.getLogger("myapp.plugins.search").warning("slow query")
        logging.getLogger("myapp.plugins.billing").debug("below the installed level")
        logging.getLogger("myapp.other").error("not routed")
    finally:
        uninstall(first)
        app.setLevel(logging.NOTSET)
    logging.getLogger("myapp.plugins.billing").info("after uninstall")
    assert logging.getLogger("myapp.plugins.billing").handlers == []
    assert monitor.flush()
    assert rows(db_path, "SELECT plugin_id, level, message FROM plugin_logs ORDER BY id") == [
        ("billing", "info", "charged"), ("search", "warning", "slow query")]


def test_importing_pmon_does_not_import_the_integration() -> None:
    code = "import sys, pmon; print('pmon.integrations' in sys.modules, 'pmon.integrations.logging' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]

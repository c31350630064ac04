"""Running the daemon as a service: its log lines, and leaving the terminal when not in the foreground.

Log lines are plain text, one per record, UTC timestamps, control characters
escaped (a plugin name or a path from a config must not drive the terminal
or the journal). Under systemd use ``--foreground``: systemd keeps stderr.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import Any

from pmon.plain_text import escape_controls

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3


class PlainFormatter(logging.Formatter):
    """``2026-11-26T04:50:00Z INFO pmon.collect: message``, with controls escaped.

    A record is one line: a newline in its message (a value from pmon.toml,
    the decoded path of an API request) is shown as ``\\n``, so nothing from
    outside can forge a line of its own. Only a traceback keeps its breaks.
    """

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT, "%Y-%m-%dT%H:%M:%SZ")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802
        return escape_controls(super().formatException(ei), keep_newlines=True)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return escape_controls(super().formatStack(stack_info), keep_newlines=True)


def configure_logging(*, verbose: bool, log_file: Path | None) -> None:
    """Send pmon's log records to stderr (``log_file`` None) or a rotating file."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
    handler.setFormatter(PlainFormatter())
    logger = logging.getLogger("pmon")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def detach(log_file: Path | None = None) -> int | None:
    """Double-fork away from the terminal.

    ``log_file`` receives the daemon's stderr. Returns the read end of a pipe
    in the original process (None in the daemon): the daemon writes one line to ``report_ready`` once it holds the
    lock, so the command that started it can say whether it really started.
    """
    read, write = os.pipe()
    if os.fork() > 0:
        os.close(write)
        return read
    os.close(read)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    # stderr goes to the log: whatever escapes logging (a crash in an extension, a fatal error) is kept
    err = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if log_file else os.open(os.devnull, os.O_RDWR)
    os.dup2(err, 2)
    os.close(err)
    os.environ["PMON_READY_FD"] = str(write)
    return None


def report_ready(message: str) -> None:
    """Tell the starting command (if any) how the start went; a no-op in the foreground."""
    fd = os.environ.pop("PMON_READY_FD", None)
    if fd is None:
        return
    try:
        os.write(int(fd), (message.rstrip("\n") + "\n").encode())
        os.close(int(fd))
    except OSError:
        pass


def wait_ready(read_fd: int, timeout: float = 10.0) -> str:
    """The daemon's first line ("" if it died before saying anything), controls escaped: the starting command
    prints it, and it may quote a bad pmon.toml."""
    import select

    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
        if b"\n" in chunk:
            break
    os.close(read_fd)
    return escape_controls(b"".join(chunks).decode(errors="replace").strip())

"""A row the database can never take costs only itself: the rest of its batch is stored, the writer lives on.

Rows reach the writer as tuples on its queue (what the recording API appends);
these tests append crafted ones there directly, with a flush interval long
enough that each test's rows form one batch, on a real SQLite file.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pmon.models import SNAPSHOT_FIELDS
from pmon.store.writer import Writer

NOW = time.time()
GOOD_ROWS = 300
"""Rows of each kind around the bad one (1,200 in all)."""


def snapshot(**values: Any) -> dict[str, Any]:
    """A snapshot's values as the recording API queues them: numbers, and the dicts as JSON text."""
    return {name: values.get(name, "{}" if name.endswith(("_io", "_metrics")) else 0) for name in SNAPSHOT_FIELDS}


def good_rows(plugin: str, start: int) -> list[tuple]:
    rows: list[tuple] = []
    for i in range(start, start + GOOD_ROWS):
        ts = NOW + i / 1000
        rows += [("m", plugin, "cpu_usage", float(i), ts, None),
                 ("l", plugin, "info", f"line {i}", ts, None, None),
                 ("e", plugin, "tick", f"tick {i}", "info", ts, None, "system"),
                 ("s", plugin, ts, snapshot(cpu_usage=float(i), request_count=i))]
    return rows


class Unhashable:
    def __hash__(self) -> int:
        raise RuntimeError("no hash")


BAD_ROWS: dict[str, tuple] = {
    "an int too big for SQLite in a snapshot": ("s", "p", NOW, snapshot(request_count=2**64)),
    "a plugin id that is not text (log)": ("l", ["p"], "info", "x", NOW, None, None),
    "a plugin id that is not text (metric)": ("m", ["p"], "cpu_usage", 1.0, NOW, None),
    "a value SQLite cannot bind": ("e", "p", "tick", object(), "info", NOW, None, "system"),
    "a NULL in a NOT NULL column": ("l", "p", "info", None, NOW, None, None),
    "a snapshot without its fields": ("s", "p", NOW, {"cpu_usage": 1.0}),
    "a row of no known kind": ("x", "p", NOW),
    "a row that is no tuple": None,  # type: ignore[dict-item]
    "a tuple too short": ("l", "p"),
}


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    w = Writer(tmp_path / "pmon.db", flush_interval=30)
    w.start()
    yield w
    w.stop()


def stored(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table} WHERE plugin_id = 'p'").fetchone()[0]
                for table in ("plugin_metrics", "plugin_logs", "plugin_events", "performance_snapshots")}


@pytest.mark.parametrize("bad", BAD_ROWS)
def test_a_row_that_can_never_be_stored_is_rejected_alone(writer: Writer, bad: str) -> None:
    rows = good_rows("p", 0)
    rows.insert(len(rows) // 3, BAD_ROWS[bad])
    writer.queue.extend(rows)
    assert writer.flush(timeout=30) is False  # not every row before the flush was stored

    assert stored(writer.path) == dict.fromkeys(stored(writer.path), GOOD_ROWS)
    stats = writer.stats
    assert writer.running and stats.rejected == 1 and stats.write_errors == 0 and stats.dropped == 0
    assert sum(stats.rows_written.values()) == 4 * GOOD_ROWS
    assert stats.last_error is not None and stats.last_error.startswith(f"{writer.path}: ")
    assert writer.backlog == 0

    writer.queue.extend(good_rows("p", GOOD_ROWS))  # later batches are written as usual
    assert writer.flush(timeout=30) is True
    assert stored(writer.path) == dict.fromkeys(stored(writer.path), 2 * GOOD_ROWS)


def test_bad_rows_scattered_through_a_batch_cost_only_themselves(writer: Writer) -> None:
    rows = good_rows("p", 0)
    for at, bad in zip(range(len(rows), 0, -len(rows) // len(BAD_ROWS)), BAD_ROWS.values()):
        rows.insert(at, bad)
    writer.queue.extend(rows)
    assert writer.flush(timeout=60) is False
    assert stored(writer.path) == dict.fromkeys(stored(writer.path), GOOD_ROWS)
    assert writer.running and writer.stats.rejected == len(BAD_ROWS) and writer.stats.write_errors == 0
    # in the order recorded, each once
    with sqlite3.connect(writer.path) as conn:
        assert [m for (m,) in conn.execute("SELECT message FROM plugin_logs ORDER BY id")] == [
            f"line {i}" for i in range(GOOD_ROWS)]


def test_lone_surrogates_inside_a_snapshot_are_scrubbed_not_rejected(writer: Writer) -> None:
    rows = good_rows("p", 0)
    rows.insert(10, ("s", "p", NOW, snapshot(custom_metrics='{"k": "a\ud800b"}', request_count=7)))
    writer.queue.extend(rows)
    assert writer.flush(timeout=30) is True
    assert writer.stats.rejected == 0
    with sqlite3.connect(writer.path) as conn:
        assert conn.execute("SELECT custom_metrics FROM performance_snapshots WHERE request_count = 7 "
                            "AND custom_metrics != '{}'").fetchall() == [('{"k": "a\ufffdb"}',)]


def test_an_unforeseen_error_costs_its_batch_and_the_writer_lives_on(
        writer: Writer, caplog: pytest.LogCaptureFixture) -> None:
    """Not a row's fault as far as the writer can tell (a key whose hash raises): the batch is counted as
    rejected and logged with its traceback; the thread keeps writing what comes next."""
    rows = good_rows("p", 0)
    rows.insert(5, ("m", Unhashable(), "cpu_usage", 1.0, NOW, None))
    with caplog.at_level(logging.WARNING, logger="pmon.store"):
        writer.queue.extend(rows)
        assert writer.flush(timeout=30) is False
    assert writer.running and writer.stats.rejected == len(rows) and writer.stats.write_errors == 0
    assert any("unexpected error" in r.getMessage() and r.exc_info for r in caplog.records)
    writer.queue.extend(good_rows("p", GOOD_ROWS))
    assert writer.flush(timeout=30) is True
    assert stored(writer.path) == dict.fromkeys(stored(writer.path), GOOD_ROWS)


def test_storage_errors_name_the_database_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An error SQLite words without the path gets it; a StoreError, which has it, does not get it twice."""
    locked = tmp_path / "locked.db"
    writer = Writer(locked, flush_interval=0.01, busy_timeout_ms=50)
    writer.queue.append(("l", "p", "info", "x", NOW, None, None))
    assert writer.flush(timeout=10) is True  # connected
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        writer.queue.append(("l", "p", "info", "x", NOW, None, None))
        assert writer.flush(timeout=0.5) is False
        assert writer.stats.last_error == f"OperationalError: {locked}: database is locked"
    finally:
        holder.rollback()
        holder.close()
        assert writer.stop()

    folder = tmp_path / "a folder"
    folder.mkdir()
    with caplog.at_level(logging.WARNING, logger="pmon.store"):
        writer = Writer(folder, flush_interval=0.01)
        writer.queue.append(("l", "p", "info", "x", NOW, None, None))
        assert writer.flush(timeout=0.3) is False
        writer.stop(timeout=0.3)
    assert writer.stats.last_error == f"StoreError: {folder}: is a directory, expected a pmon database file"
    lines = [r.getMessage() for r in caplog.records if str(folder) in r.getMessage()]
    assert any("cannot write" in line for line in lines), lines
    for line in lines:
        assert line.count(str(folder)) == 1, line

"""The batched writer: the only code that writes recorded rows to SQLite.

Producers append plain tuples to ``queue`` (a deque: appends are atomic and
cost ~40 ns); one background thread drains it in ``BEGIN IMMEDIATE``
transactions of up to ``batch_size`` rows every ``flush_interval`` (sooner when
a batch is full). When storage fails (locked, disk full, read-only, folder
gone) rows stay queued, the error is counted and logged at most once a minute,
and the writer retries with backoff until storage recovers. Past
``max_buffer`` queued rows the oldest are dropped and counted. A row that can
never be stored (a constraint, a value SQLite cannot bind) is found by
committing its batch in halves and is rejected alone, counted; the rest of its
batch is written. The writer also keeps the WAL from staying large after a long
read transaction (``_check_wal``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmon.models import LIFECYCLE_STATUS, SNAPSHOT_FIELDS
from pmon.store.schema import StoreError, open_writer
from pmon.validate import scrub

log = logging.getLogger("pmon.store")

LOG_EVERY_SECONDS = 60.0
MIN_SLEEP_SECONDS = 0.005
MAX_SLEEP_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 5.0
WAL_TRUNCATE_BYTES = 16 * 1024 * 1024
"""A WAL larger than this is checkpointed and cut to nothing as soon as no reader needs it."""
WAL_CHECK_SECONDS = 1.0


class FlushMarker:
    """Placed in the queue by ``flush()``; set once every row before it is committed (or dropped)."""

    __slots__ = ("done", "complete")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.complete = True


@dataclass
class WriterStats:
    """Counters for ``status()``; plain ints updated by the writer thread."""

    rows_written: dict[str, int] = field(default_factory=lambda: {"metrics": 0, "logs": 0, "events": 0, "snapshots": 0})
    batches: int = 0
    dropped: int = 0
    rejected: int = 0
    """Rows that can never be stored (SQLite or the binding refused the row itself), dropped one by one."""
    write_errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_flush_ms: float = 0.0
    last_commit_at: float | None = None
    wal_bytes: int = 0
    """Size of the ``-wal`` file when the writer last looked (every WAL_CHECK_SECONDS)."""
    wal_pinned_since: float | None = None
    """Since when (epoch seconds) an open read transaction keeps an oversized WAL from being cut; None if none does."""


_KIND = {"m": "metrics", "l": "logs", "e": "events", "s": "snapshots"}

_INSERT_POINT = "INSERT INTO metric_points (series_id, ts_ms, value, metadata) VALUES (?, ?, ?, ?)"
_INSERT_LOG = (
    "INSERT INTO plugin_logs (plugin_id, level, message, timestamp, context, traceback) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT = (
    "INSERT INTO plugin_events (plugin_id, event_type, description, severity, timestamp, data, category) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SNAPSHOT = (
    f"INSERT INTO performance_snapshots (plugin_id, timestamp, {', '.join(SNAPSHOT_FIELDS)}) "
    f"VALUES (?, ?, {', '.join('?' * len(SNAPSHOT_FIELDS))})"
)
_UPSERT_PLUGIN = (
    "INSERT INTO plugins (id, first_seen, last_seen) VALUES (?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), "
    "last_seen = max(last_seen, excluded.last_seen)"
)


# Errors that a row's own values cause: retrying cannot help, so the batch is split to find the row.
_ROW_FAULTS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError, sqlite3.InterfaceError,
               OverflowError, ValueError, TypeError, LookupError)
# Errors of the storage (locked, full, I/O, read-only, gone): the batch waits and is retried.
_STORAGE_FAULTS = (sqlite3.Error, OSError, StoreError, MemoryError)


def _is_row_fault(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
        return False  # the connection, not the row
    return isinstance(exc, _ROW_FAULTS)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if type(value) is dict:  # a snapshot's values
        return {name: _scrub_value(v) for name, v in value.items()}
    return value


def _scrub_row(row: tuple) -> tuple:
    return tuple(_scrub_value(v) for v in row)


def _describe_row(row: Any) -> str:
    if isinstance(row, tuple) and len(row) > 1:
        return f"a {_KIND.get(row[0], repr(row[0])[:20])} row of plugin {repr(row[1])[:80]}"
    return f"a malformed row {repr(row)[:80]}"


class Writer:
    """Owns the write connection and the thread that commits queued rows."""

    def __init__(self, path: str | os.PathLike[str], *, batch_size: int = 20_000, flush_interval: float = 1.0,
                 max_buffer: int = 100_000, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.busy_timeout_ms = busy_timeout_ms
        self.queue: deque[Any] = deque()
        """Rows and flush markers waiting for the writer thread, oldest first."""
        self.stats = WriterStats()
        """Counters reported by ``Monitor.status()``."""
        self._pending: list[tuple] = []
        self._markers: list[FlushMarker] = []
        self._wake = threading.Event()
        self._stopping = False
        self._drop_lock = threading.Lock()
        self._io_lock = threading.Lock()  # held while the connection is in use; fork waits for it
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._series: dict[tuple[str, str], int] = {}
        self._retry_at = 0.0
        self._failures = 0
        self._last_logged = 0.0
        self._rejects_logged = 0.0
        self._unexpected_logged = 0.0
        self._wal_checked_at = 0.0
        self._wal_logged = 0.0
        _live_writers.add(self)

    # -- producer side -------------------------------------------------------------

    def drop_oldest(self) -> None:
        """Called by producers when the queue is over ``max_buffer``."""
        with self._drop_lock:
            while len(self.queue) > self.max_buffer:
                try:
                    item = self.queue.popleft()
                except IndexError:
                    return
                if isinstance(item, FlushMarker):
                    item.complete = False
                    item.done.set()
                else:
                    self.stats.dropped += 1
            self._report("buffer full: dropping oldest rows")

    def nudge(self) -> None:
        """A full batch is queued: commit it now rather than at the next flush_interval."""
        if not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every row queued before the call is committed; False on timeout or drops."""
        if self._thread is None or not self._thread.is_alive():
            self.start()
        marker = FlushMarker()
        self.queue.append(marker)
        self._wake.set()
        if not marker.done.wait(timeout):
            return False
        return marker.complete

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="pmon-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Commit what is queued, stop the thread, close the connection; False if rows remain.

        ``timeout`` bounds the whole stop, flush and join together.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        flushed = self.flush(timeout) if self._thread is not None else True
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():  # still committing: it finishes on its own, on its own connection
                return False
            self._thread = None
        self._close()
        left = self.backlog
        if left:  # storage still failing at shutdown: say so, and count them as dropped
            self.stats.dropped += left
            log.warning("pmon: stopping with %d rows not written (%s)", left,
                        self._naming_path(self.stats.last_error or "no error recorded"))
        return flushed and not left

    @property
    def backlog(self) -> int:
        """Rows not yet committed: queued, plus the batch being (re)tried."""
        return len(self.queue) + len(self._pending)

    @property
    def running(self) -> bool:
        """True while the writer thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    # -- writer thread ------------------------------------------------------------

    def _run(self) -> None:
        with self._io_lock:
            try:
                self._connection()  # create the file now, so a bad path shows up in status() at once
            except Exception as exc:
                self._failed(exc)
        last = time.monotonic()
        while not self._stopping:
            # Sleep until the next flush is due: producers nudge when a batch is full, flush() and
            # stop() set the event, so an idle writer wakes once per flush_interval, not 20 times a second.
            woken = self._wake.wait(min(MAX_SLEEP_SECONDS,
                                        max(MIN_SLEEP_SECONDS, last + self.flush_interval - time.monotonic())))
            if woken:  # cleared only after it was seen set: a flush() arriving now is never lost
                self._wake.clear()
            now = time.monotonic()
            try:
                if woken or len(self.queue) >= self.batch_size or now - last >= self.flush_interval:
                    self._drain()
                    last = time.monotonic()
                if now - self._wal_checked_at >= WAL_CHECK_SECONDS:
                    self._wal_checked_at = now
                    self._check_wal()
            except Exception as exc:  # the thread must outlive any bug: with it go all later rows
                self._unexpected(exc)
                last = time.monotonic()
        try:
            self._drain()
        except Exception as exc:
            self._unexpected(exc)

    def _take(self) -> None:
        """Move up to batch_size rows (and the markers among them) into the pending batch."""
        queue, pending, markers = self.queue, self._pending, self._markers
        room = self.batch_size - len(pending)
        while room > 0:
            try:
                item = queue.popleft()
            except IndexError:
                return
            if type(item) is FlushMarker:
                markers.append(item)
                return  # commit what precedes the marker before honouring it
            pending.append(item)
            room -= 1

    def _drain(self) -> None:
        while True:
            if time.monotonic() < self._retry_at:
                return
            self._take()
            if not self._pending and not self._markers:
                return
            with self._io_lock:
                committed = not self._pending or self._commit(self._pending)
            if not committed:
                return
            self._pending = []
            for marker in self._markers:
                marker.done.set()
            self._markers = []

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._identity:
                    return self._conn
            except OSError:
                pass
            log.warning("pmon: database %s was moved or deleted; reopening", self.path)
            self._close()
        conn = open_writer(self.path, self.busy_timeout_ms)
        st = os.stat(self.path)
        self._conn, self._identity = conn, (st.st_dev, st.st_ino)
        self._series = {}
        return conn

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def _commit(self, rows: list[tuple]) -> bool:
        """Commit the pending batch (``rows``); False when storage failed and what is left must be retried."""
        started = time.perf_counter()
        try:
            conn = self._connection()
        except Exception as exc:  # no connection: the rows wait
            self._failed(exc)
            return False
        try:
            try:
                self._written(rows, self._write_scrubbed(conn, rows))
            except Exception as exc:
                if not _is_row_fault(exc):
                    raise
                self._isolate(conn, rows, exc)
        except _STORAGE_FAULTS as exc:
            self._failed(exc)
            return False
        except Exception as exc:  # neither a row's fault nor the storage's: a bug; the batch goes, the thread stays
            self._unexpected(exc)
            self._reject(len(self._pending), exc, "this batch")
        stats = self.stats
        stats.batches += 1
        stats.last_flush_ms = (time.perf_counter() - started) * 1000
        stats.last_commit_at = time.time()
        if self._failures:
            log.warning("pmon: writing to %s again after %d failed attempts", self.path, self._failures)
        self._failures = 0
        self._retry_at = 0.0
        return True

    def _write_scrubbed(self, conn: sqlite3.Connection, rows: list[tuple]) -> dict[tuple[str, str], int]:
        try:
            return self._write(conn, rows)
        except UnicodeEncodeError:  # a lone surrogate somewhere: each becomes U+FFFD
            return self._write(conn, [_scrub_row(r) for r in rows])

    def _written(self, rows: list[tuple], new_series: dict[tuple[str, str], int]) -> None:
        self._series.update(new_series)
        written = self.stats.rows_written
        for row in rows:
            written[_KIND[row[0]]] += 1

    def _isolate(self, conn: sqlite3.Connection, rows: list[tuple], fault: BaseException) -> None:
        """Commit, in halves found recursively, every row of a batch but those that can never be stored.

        A bad row costs about two commits per halving (~30 for 20,000 rows). Halves
        are committed in order, so when storage fails meanwhile, what is left
        pending is exactly what was not yet committed or rejected.
        """
        done = 0
        todo = [(0, len(rows), fault)]  # a slice already known to fail carries its error
        try:
            while todo:
                start, end, failed = todo.pop()
                if failed is None:
                    try:
                        self._written(rows[start:end], self._write_scrubbed(conn, rows[start:end]))
                    except Exception as exc:
                        if not _is_row_fault(exc):
                            raise
                        failed = exc
                if failed is not None:
                    if end - start > 1:
                        middle = (start + end) // 2
                        todo += [(middle, end, None), (start, middle, None)]
                        continue
                    self._reject(1, failed, _describe_row(rows[start]))
                done = end
        finally:
            if done:
                self._pending = rows[done:]

    def _reject(self, count: int, exc: BaseException, what: str) -> None:
        """Count rows that can never be stored; flush() callers waiting on this batch hear of it."""
        stats = self.stats
        stats.rejected += count
        stats.last_error = f"{self.path}: {what} rejected: {type(exc).__name__}: {str(exc)[:300]}"
        stats.last_error_at = time.time()
        for marker in self._markers:
            marker.complete = False
        now = time.monotonic()
        if now - self._rejects_logged >= LOG_EVERY_SECONDS:
            self._rejects_logged = now
            log.warning("pmon: %s; rows the database can never take are dropped (%d so far)",
                        stats.last_error, stats.rejected)

    def _unexpected(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._unexpected_logged >= LOG_EVERY_SECONDS:
            self._unexpected_logged = now
            log.error("pmon: unexpected error in the writer of %s; it keeps running", self.path, exc_info=exc)

    def _naming_path(self, text: str) -> str:
        return text if str(self.path) in text else f"{self.path}: {text}"

    def _failed(self, exc: BaseException) -> None:
        self.stats.write_errors += 1
        self.stats.last_error = f"{type(exc).__name__}: {self._naming_path(str(exc))}"
        self.stats.last_error_at = time.time()
        self._failures += 1
        self._retry_at = time.monotonic() + min(MAX_BACKOFF_SECONDS, 0.1 * 2 ** min(self._failures, 6))
        if isinstance(exc, sqlite3.DatabaseError) and "locked" not in str(exc) and "busy" not in str(exc):
            self._close()  # a fresh connection after disk-full / IO errors
        self._report(f"cannot write: {self.stats.last_error}; rows kept in memory and retried")

    def _check_wal(self) -> None:
        """Cut an oversized WAL back to nothing once no reader needs it; report it while one does.

        SQLite's automatic checkpoints copy pages back into the database but never
        shrink the ``-wal`` file, and cannot recycle it while a reader holds an older
        snapshot: one long read transaction makes the WAL grow with every commit and
        keep that size for good. A TRUNCATE checkpoint that does not wait (busy
        timeout 0, so neither this thread nor other writers stall on readers) is
        tried each WAL_CHECK_SECONDS while the file is over WAL_TRUNCATE_BYTES.
        """
        stats = self.stats
        try:
            stats.wal_bytes = os.stat(f"{self.path}-wal").st_size
        except OSError:
            stats.wal_bytes = 0
        if stats.wal_bytes <= WAL_TRUNCATE_BYTES or self._conn is None:
            return
        with self._io_lock:
            conn = self._conn
            if conn is None:
                return
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # the bulk, without the write lock
                conn.execute("PRAGMA busy_timeout = 0")
                try:
                    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                finally:
                    conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            except sqlite3.Error:
                self._close()  # the next commit reopens it, with its busy timeout for certain
                busy = 1
        if not busy:
            if stats.wal_pinned_since is not None:
                log.warning("pmon: the WAL of %s is checkpointed and truncated again (it was %d MiB)",
                            self.path, stats.wal_bytes >> 20)
            stats.wal_bytes, stats.wal_pinned_since = 0, None
            return
        now = time.time()
        if stats.wal_pinned_since is None:
            stats.wal_pinned_since = now
        if time.monotonic() - self._wal_logged >= LOG_EVERY_SECONDS:
            self._wal_logged = time.monotonic()
            log.warning("pmon: the WAL of %s is %d MiB and cannot be checkpointed while another connection reads "
                        "an older snapshot (for %.0f s so far); it is truncated once that read transaction ends",
                        self.path, stats.wal_bytes >> 20, now - stats.wal_pinned_since)

    def _report(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_logged >= LOG_EVERY_SECONDS:
            self._last_logged = now
            log.warning("pmon: %s (queued %d, dropped %d, errors %d)", message, self.backlog,
                        self.stats.dropped, self.stats.write_errors)

    def _series_id(self, conn: sqlite3.Connection, key: tuple[str, str], new: dict[tuple[str, str], int]) -> int:
        found = self._series.get(key) or new.get(key)
        if found is None:
            conn.execute("INSERT OR IGNORE INTO metric_series (plugin_id, metric_type) VALUES (?, ?)", key)
            found = conn.execute("SELECT id FROM metric_series WHERE plugin_id = ? AND metric_type = ?", key).fetchone()[0]
            new[key] = found
        return found

    def _write(self, conn: sqlite3.Connection, rows: list[tuple]) -> dict[tuple[str, str], int]:
        """One transaction for the whole batch; returns series ids created in it.

        Per-row work is kept to a dict lookup and a tuple: this loop holds the
        GIL that the host application records with. Latest values need no
        bookkeeping (the covering index answers them).
        """
        new: dict[tuple[str, str], int] = {}
        known = self._series
        points: list[tuple] = []
        add_point = points.append
        others: list[tuple] = []
        first: dict[str, float] = {}
        last: dict[str, float] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                if row[0] == "m":
                    key = (row[1], row[2])
                    ts = row[4]
                    add_point((known.get(key) or self._series_id(conn, key, new), int(ts * 1000), row[3], row[5]))
                    seen = last.get(row[1])
                    if seen is None:
                        first[row[1]] = last[row[1]] = ts
                    elif ts > seen:
                        last[row[1]] = ts
                    elif ts < first[row[1]]:
                        first[row[1]] = ts
                else:
                    others.append(row)
            if points:
                conn.executemany(_INSERT_POINT, points)
                conn.executemany(_UPSERT_PLUGIN, [(p, first[p], t) for p, t in last.items()])
            if others:
                self._write_others(conn, others)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        return new

    @staticmethod
    def _write_others(conn: sqlite3.Connection, rows: list[tuple]) -> None:
        logs, events, snaps = [], [], []
        seen: dict[str, list[float]] = {}
        for row in rows:
            kind, plugin = row[0], row[1]
            if kind == "l":
                logs.append(row[1:])
                ts = row[4]
            elif kind == "e":
                events.append(row[1:])
                ts = row[5]
            elif kind == "s":
                values = row[3]
                snaps.append((plugin, row[2], *(values[name] for name in SNAPSHOT_FIELDS)))
                ts = row[2]
            else:
                raise ValueError(f"unknown row kind {kind!r}")
            span = seen.get(plugin)
            if span is None:
                seen[plugin] = [ts, ts]
            elif ts < span[0]:
                span[0] = ts
            elif ts > span[1]:
                span[1] = ts
        if logs:
            conn.executemany(_INSERT_LOG, logs)
        if events:
            conn.executemany(_INSERT_EVENT, events)
        if snaps:
            conn.executemany(_INSERT_SNAPSHOT, snaps)
        conn.executemany(_UPSERT_PLUGIN, [(p, lo, hi) for p, (lo, hi) in seen.items()])
        # Lifecycle events set the stored status, latest timestamp last so it wins.
        changes = sorted((e[4], LIFECYCLE_STATUS[e[1]], e[0]) for e in events if e[1] in LIFECYCLE_STATUS)
        if changes:
            conn.executemany("UPDATE plugins SET status = ? WHERE id = ?", [(st, p) for _, st, p in changes])


# SQLite keeps its file-lock bookkeeping per process: a child forked while a
# connection is open (worse, mid-transaction) inherits locks it cannot release
# and a WAL it may write into after the parent deletes it. So around fork()
# every writer finishes its current commit and closes its connection; it
# reopens on its next commit.
_live_writers: weakref.WeakSet[Writer] = weakref.WeakSet()
_held_for_fork: list[Writer] = []
FORK_WAIT_SECONDS = 10.0


def _before_fork() -> None:
    for writer in list(_live_writers):
        if writer._io_lock.acquire(timeout=FORK_WAIT_SECONDS):
            writer._close()
            _held_for_fork.append(writer)


def _after_fork_in_parent() -> None:
    while _held_for_fork:
        _held_for_fork.pop()._io_lock.release()


def _after_fork_in_child() -> None:
    for writer in list(_live_writers):
        writer._io_lock = threading.Lock()
        writer._conn = None
    _held_for_fork.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)

"""Retention: old rows deleted in short steps, so processes recording into the same file never stall.

A pass (``prune``) first rolls the metric points up (``rollups.roll_up``),
then deletes

* raw metric points older than ``days`` (or ``older_than``) — only points
  already rolled up: older than the rollup watermark and with an id below the
  last rolled-up id (keeping the row with the highest id also keeps SQLite
  from reusing row ids, which the rollups rely on);
* logs, events and snapshots older than ``days``;
* minute rollups older than ``minute_rollup_days``, hour rollups older than
  ``rollup_days``;
* with ``max_db_mb`` set and the pages in use above it: the oldest rows of
  every raw table alike (then the oldest minute rollups, then the oldest hour
  rollups) until the pages in use are under 90 % of the cap.

Each step is its own BEGIN IMMEDIATE ... COMMIT of at most ``MAX_STEP_ROWS``
rows, sized from the hold times measured so far to stay under
``max_lock_ms``, and followed by a rest twice as long as its hold. A step
that meets SQLITE_BUSY is retried after a back-off, then left for the next
pass; nothing is raised to the caller. The candidates of a step are chosen
before it takes the lock, through indexes: metric points and rollups per
series through their (series, time) keys, the rest through time indexes.

The size cap and the file: deleting rows frees pages inside the file, which
SQLite reuses for new rows, so the file stops growing but does not shrink
(VACUUM would rewrite all of it under the write lock). With a cap set, a
ballast file ``<db>-headroom`` (5 % of the cap, 8 to 64 MB) is kept beside the
database; when a step fails because the disk is full, the ballast is deleted
so that the WAL can be checkpointed and the deletes written, and it is put
back on a later pass once the disk has room again (four times its size free).

"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pmon.config import RetentionConfig
from pmon.store.rollups import MAX_STEP_ROWS, WriteSteps, roll_up, rollup_watermark
from pmon.store.schema import StoreError, open_writer

log = logging.getLogger("pmon.store")

BUSY_RETRIES = 3
"""Back-offs a busy step gets within one pass before the pass leaves the rest to the next one."""
BUSY_BACKOFF_S = 0.2
CAP_TARGET = 0.9
"""With a size cap, pruning goes on until the pages in use are under this share of it."""
CAP_ROUNDS = 60
HEADROOM_SUFFIX = "-headroom"
MB = 1024 * 1024
SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_NOTADB = 8, 11, 26
"""Primary result codes of errors no retry gets past."""
TABLES = ("metric_points", "plugin_logs", "plugin_events", "performance_snapshots", "metric_rollups_1m",
          "metric_rollups_1h", "alerts", "alert_silences")


@dataclass
class PruneReport:
    """What one retention pass did; ``summary()`` is the line the CLI and the daemon log print."""

    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    """Rows deleted per table."""
    rolled_up: int = 0
    """Metric points folded into the rollups first."""
    steps: int = 0
    """Write transactions committed (roll-up and deletes)."""
    max_step_rows: int = 0
    """The most rows one step wrote or deleted."""
    max_hold_ms: float = 0.0
    """The longest a step held the write lock."""
    median_hold_ms: float = 0.0
    checkpoint_ms: float = 0.0
    """Time in WAL checkpoints (passive between steps, then one TRUNCATE attempt)."""
    checkpointed: bool = False
    """True when the final TRUNCATE checkpoint emptied the WAL (False when readers or writers were busy)."""
    busy: int = 0
    """Steps that met a locked database (each was retried after a back-off, or left for the next pass)."""
    errors: list[str] = field(default_factory=list)
    complete: bool = True
    """False when stopped, busy or failing before everything due was deleted."""
    used_mb: float = 0.0
    """Pages in use afterwards (the file itself does not shrink)."""
    over_cap: bool = False
    """Still above ``max_db_mb`` afterwards (only rows not rolled up yet, or nothing left to delete)."""
    headroom_released: bool = False
    """The disk was full and the headroom ballast was given up so the deletes could be written."""
    failed: str = ""
    """Why the pass stopped where no later pass gets further without a person (a read-only or damaged file),
    naming the file; empty otherwise."""
    duration_s: float = 0.0

    @property
    def deleted_total(self) -> int:
        """Rows deleted in all tables."""
        return sum(self.deleted.values())

    def summary(self) -> str:
        """One line for people."""
        tables = ", ".join(f"{name} {count:,}" for name, count in self.deleted.items() if count) or "nothing"
        line = (f"deleted {tables}; rolled up {self.rolled_up:,} points; {self.steps} steps "
                f"(at most {self.max_step_rows:,} rows, lock held at most {self.max_hold_ms:.1f} ms, "
                f"median {self.median_hold_ms:.1f} ms); {self.used_mb:,.1f} MB in use; {self.duration_s:.1f} s")
        if self.busy:
            line += f"; database busy {self.busy} times"
        if self.errors:
            line += f"; {len(self.errors)} errors, last: {self.errors[-1]}"
        if not self.complete:
            line += "; not finished, the next pass goes on"
        return line


class _Busy(Exception):
    """A step stayed busy through its retries; the pass stops and the next one goes on."""


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _is_full(exc: BaseException) -> bool:
    return "full" in str(exc).lower()


def _is_read_only(exc: BaseException) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == SQLITE_READONLY or "readonly" in str(exc).lower()


def _needs_a_person(path: Path, exc: sqlite3.Error) -> str:
    """The ``failed`` line for an error retrying cannot get past, else ''."""
    if _is_read_only(exc):
        return f"{path}: cannot write, read-only for this user ({exc})"
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB) or "malformed" in str(exc):
        return f"{path}: {exc} (the file is damaged; pmon leaves it as it is)"
    return ""


class _Rows:
    """Rows of one table older than a cutoff, found through a time index, deleted by id."""

    def __init__(self, table: str, column: str = "timestamp", scale: int = 1) -> None:
        self.table = table
        self._scale = scale
        self._select = f"SELECT id FROM {table} WHERE {column} < ? ORDER BY {column} LIMIT ?"
        self._oldest = f"SELECT min({column}) FROM {table}"
        self.delete_sql = f"DELETE FROM {table} WHERE id = ?"

    def reset(self) -> None:
        """Start again from the oldest (a new cutoff)."""

    def oldest(self, conn: sqlite3.Connection) -> float | None:
        """The oldest row's time in epoch seconds, or None when empty."""
        found = conn.execute(self._oldest).fetchone()[0]
        return None if found is None else found / self._scale

    def batch(self, conn: sqlite3.Connection, cutoff: float, limit: int) -> list[tuple]:
        """Up to ``limit`` keys of rows older than ``cutoff`` (epoch seconds), oldest first."""
        return conn.execute(self._select, (cutoff * self._scale, limit)).fetchall()


class _SeriesRows(_Rows):
    """Metric points or rollups older than a cutoff, series by series through the (series_id, time) key.

    Why per series: ``metric_points`` has no time index of its own (it would
    add a quarter to its size), and one index seek a series finds the oldest
    rows of each.
    """

    def __init__(self, conn: sqlite3.Connection, table: str, key: str, column: str,
                 below_id: int | None = None, not_after_ms: int | None = None) -> None:
        super().__init__(table, column, 1000)
        extra = "" if below_id is None else f" AND id < {int(below_id)}"
        self._select = (f"SELECT {key} FROM {table} WHERE series_id = ? AND {column} < ?{extra} "
                        f"ORDER BY {column} LIMIT ?")
        self._oldest = (f"SELECT min((SELECT {column} FROM {table} WHERE series_id = s.id{extra} "
                        f"ORDER BY {column} LIMIT 1)) FROM metric_series s")
        self._with_series = key != "id"
        self.delete_sql = (f"DELETE FROM {table} WHERE series_id = ? AND {key} = ?" if self._with_series
                           else f"DELETE FROM {table} WHERE id = ?")
        self._series = [sid for (sid,) in conn.execute("SELECT id FROM metric_series ORDER BY id")]
        self._next = 0
        self._not_after_ms = not_after_ms

    def reset(self) -> None:
        self._next = 0

    def batch(self, conn: sqlite3.Connection, cutoff: float, limit: int) -> list[tuple]:
        cutoff_ms = int(cutoff * 1000)
        if self._not_after_ms is not None:
            cutoff_ms = min(cutoff_ms, self._not_after_ms)
        found: list[tuple] = []
        while self._next < len(self._series) and len(found) < limit:
            series_id = self._series[self._next]
            want = limit - len(found)
            keys = conn.execute(self._select, (series_id, cutoff_ms, want)).fetchall()
            if self._with_series:
                found.extend((series_id, key) for (key,) in keys)
            else:
                found.extend(keys)
            if len(keys) < want:
                self._next += 1
        return found


class Pruner:
    """Retention passes over one database file; ``run`` is the daemon's loop, ``prune`` one pass."""

    def __init__(self, path: str | os.PathLike[str], retention: RetentionConfig | None = None, *,
                 busy_timeout_ms: int = 2000, max_step_rows: int = MAX_STEP_ROWS) -> None:
        self.path = Path(path)
        self.retention = retention or RetentionConfig()
        self.busy_timeout_ms = busy_timeout_ms
        """How long one step waits for another process's write lock before backing off."""
        self.max_step_rows = max_step_rows
        self.last_report: PruneReport | None = None
        """The report of the latest pass ``run`` made."""

    def run(self, stop: threading.Event) -> None:
        """Prune every ``prune_interval`` seconds until ``stop`` is set (a thread's target); never raises."""
        while not stop.is_set():
            try:
                self.last_report = self.prune(stop=stop)
            except Exception:  # a bad file or a bug must not end the daemon's thread
                log.exception("pmon: retention pass on %s failed", self.path)
            stop.wait(self.retention.prune_interval)

    def prune(self, now: float | None = None, older_than: float | None = None,
              stop: threading.Event | None = None) -> PruneReport:
        """One pass: roll up, delete what is due, enforce the size cap, checkpoint.

        ``older_than`` (seconds) replaces ``days`` for raw rows. Raises only
        ``StoreError`` for a path that is not a pmon database.
        """
        started = time.perf_counter()
        stop = stop or threading.Event()
        now = time.time() if now is None else now
        report = PruneReport()
        try:
            conn = open_writer(self.path, self.busy_timeout_ms)
        except StoreError as exc:
            if not _is_busy(exc):
                raise
            report.busy += 1
            report.errors.append(str(exc))
            report.complete = False
            report.duration_s = time.perf_counter() - started
            return report
        try:
            steps = WriteSteps(conn, self.retention.max_lock_ms, max_rows=self.max_step_rows, stop=stop,
                               checkpoint_every_s=0.5)
            try:
                self._pass(conn, steps, report, now, older_than)
            except _Busy:
                report.complete = False
            except sqlite3.Error as exc:
                report.failed = _needs_a_person(self.path, exc)
                report.errors.append(report.failed or f"{type(exc).__name__}: {exc}")
                report.complete = False
            if stop.is_set():
                report.complete = False
            self._checkpoint(conn, report)
            cap = self.retention.max_db_mb
            try:
                report.used_mb = used_bytes(conn) / MB
                report.over_cap = cap > 0 and report.used_mb > cap
            except sqlite3.Error as exc:
                report.errors.append(f"{type(exc).__name__}: {exc}")
            if cap > 0 and not report.headroom_released:
                _ensure_headroom(self.path, _headroom_bytes(cap))
            holds = steps.holds_ms
            report.steps = len(holds)
            report.max_step_rows = steps.max_step_rows
            report.max_hold_ms = max(holds, default=0.0)
            report.median_hold_ms = statistics.median(holds) if holds else 0.0
            report.checkpoint_ms += steps.checkpoint_ms
        finally:
            conn.close()
        report.duration_s = time.perf_counter() - started
        return report

    def _pass(self, conn: sqlite3.Connection, steps: WriteSteps, report: PruneReport, now: float,
              older_than: float | None) -> None:
        retention = self.retention
        rolled_up = False
        try:
            result = roll_up(conn, now, steps=steps)
            report.rolled_up, rolled_up = result.points, result.complete
        except sqlite3.Error as exc:  # busy, or a full disk: deleting only what is rolled up is still safe
            if _needs_a_person(self.path, exc):
                raise  # no step of the pass would get further
            report.busy += _is_busy(exc)
            report.errors.append(f"roll-up: {exc}")
            report.complete = False
        watermark = rollup_watermark(conn)
        raw_cutoff = now - (older_than if older_than is not None else retention.days * 86400)
        due: list[tuple[_Rows, float]] = [(source, raw_cutoff) for source in self._raw_sources(conn, watermark)]
        minute, hour = self._rollup_sources(conn)
        due += [(minute, now - retention.minute_rollup_days * 86400), (hour, now - retention.rollup_days * 86400)]
        for source, cutoff in due:
            self._delete_older(steps, source, cutoff, report)
        if retention.max_db_mb > 0:
            self._enforce_cap(conn, steps, report, now, watermark, rollups_too=rolled_up)

    def _raw_sources(self, conn: sqlite3.Connection, watermark: tuple[int, int] | None) -> list[_Rows]:
        sources: list[_Rows] = []
        if watermark is not None:  # without rollups no point may go
            covered, last_id = watermark
            sources.append(_SeriesRows(conn, "metric_points", "id", "ts_ms", below_id=last_id,
                                       not_after_ms=covered))
        sources += [_Rows("plugin_logs"), _Rows("plugin_events"), _Rows("performance_snapshots")]
        # Resolved alerts and ended silences age like events (open alerts have no resolved_at: never selected).
        sources += [_Rows("alerts", "resolved_at"), _Rows("alert_silences", "until")]
        return sources

    @staticmethod
    def _rollup_sources(conn: sqlite3.Connection) -> tuple[_Rows, _Rows]:
        return (_SeriesRows(conn, "metric_rollups_1m", "bucket_ms", "bucket_ms"),
                _SeriesRows(conn, "metric_rollups_1h", "bucket_ms", "bucket_ms"))

    def _delete_older(self, steps: WriteSteps, source: _Rows, cutoff: float, report: PruneReport) -> None:
        """Delete every row of ``source`` older than ``cutoff``, a step at a time."""
        source.reset()
        while not steps.stop.is_set():
            keys = source.batch(steps.conn, cutoff, steps.size)
            if not keys:
                return
            report.deleted[source.table] += self._step(steps, source, keys, report)

    def _step(self, steps: WriteSteps, source: _Rows, keys: Sequence[tuple], report: PruneReport) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            return conn.executemany(source.delete_sql, keys).rowcount

        for attempt in range(BUSY_RETRIES + 1):
            try:
                return steps.run(delete)
            except sqlite3.OperationalError as exc:
                if _is_full(exc) and self._make_room(steps.conn, report):
                    continue
                if not _is_busy(exc):
                    raise
                report.busy += 1
                report.errors.append(f"{source.table}: {exc}")
                if attempt == BUSY_RETRIES or steps.stop.wait(BUSY_BACKOFF_S * 2 ** attempt):
                    break
        raise _Busy()

    def _enforce_cap(self, conn: sqlite3.Connection, steps: WriteSteps, report: PruneReport, now: float,
                     watermark: tuple[int, int] | None, rollups_too: bool) -> None:
        """Oldest first, every raw table alike, then minute rollups, then hour rollups, to 90 % of the cap.

        Rollups go only when the roll-up is complete: otherwise raw points wait
        for it, and the next pass deletes them rather than the history.
        """
        cap = self.retention.max_db_mb * MB
        if used_bytes(conn) <= cap:
            return
        target = CAP_TARGET * cap
        minute, hour = self._rollup_sources(conn)
        for sources in (self._raw_sources(conn, watermark), [minute], [hour]):
            if sources[0] in (minute, hour) and not rollups_too:
                return
            oldest = [found for source in sources if (found := source.oldest(conn)) is not None]
            if not oldest:
                continue
            cutoff = min(oldest)
            for _ in range(CAP_ROUNDS):
                used = used_bytes(conn)
                if used <= target or cutoff >= now or steps.stop.is_set():
                    break
                # Rows are spread over time about evenly: cut the share of the remaining span that is over.
                share = min(1.0, 1.1 * (used - target) / used)
                cutoff = min(now, cutoff + max(60.0, (now - cutoff) * share))
                for source in sources:
                    self._delete_older(steps, source, cutoff, report)
            if used_bytes(conn) <= target:
                return

    def _make_room(self, conn: sqlite3.Connection, report: PruneReport) -> bool:
        """The disk is full: give up the ballast, once a pass, and move the WAL into the file while there is room.

        Pages the WAL holds beyond the end of the database file need that room
        to be checkpointed; once they are, the WAL is written again from its
        start, so the deletes that follow need no new space.
        """
        if report.headroom_released or not _release_headroom(self.path):
            return False
        report.headroom_released = True
        report.errors.append(f"disk full: released {self.path}{HEADROOM_SUFFIX}")
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            pass
        return True

    def _checkpoint(self, conn: sqlite3.Connection, report: PruneReport) -> None:
        """Empty the WAL if nobody is using it; never waits (a TRUNCATE checkpoint would block writers while it did).

        On a full disk the WAL keeps its size: it is reused from its start, room
        that new writes need no more of the disk for.
        """
        started = time.perf_counter()
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if report.headroom_released:
                return
            conn.execute("PRAGMA busy_timeout = 0")
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            report.checkpointed = not busy
        except sqlite3.Error:
            report.checkpointed = False
        finally:
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            except sqlite3.Error:
                pass
        report.checkpoint_ms += (time.perf_counter() - started) * 1000


def prune(path: str | os.PathLike[str], retention: RetentionConfig | None = None, now: float | None = None,
          older_than: float | None = None, stop: threading.Event | None = None) -> PruneReport:
    """One retention pass over ``path`` (`pmon prune`, and the daemon every ``prune_interval``)."""
    return Pruner(path, retention).prune(now=now, older_than=older_than, stop=stop)


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the pages holding data: the file size minus its free pages."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * conn.execute("PRAGMA page_size").fetchone()[0]


def _headroom_bytes(cap_mb: float) -> int:
    """5 % of the cap, at least what a WAL holds between two automatic checkpoints (1000 pages) twice over."""
    return int(min(64.0, max(8.0, 0.05 * cap_mb)) * MB)


def _ensure_headroom(path: Path, size: int) -> None:
    """Put the ballast file back when it is missing and the disk has plenty of room for it."""
    ballast = Path(f"{path}{HEADROOM_SUFFIX}")
    try:
        if ballast.exists() and ballast.stat().st_size >= size:
            return
        if shutil.disk_usage(ballast.parent).free < 4 * size:  # never be the one that fills the disk
            return
        with open(ballast, "wb") as handle:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(handle.fileno(), 0, size)
            else:
                handle.write(b"\0" * size)
    except OSError:
        pass


def _release_headroom(path: Path) -> bool:
    """Delete the ballast file; True when there was one."""
    try:
        os.unlink(f"{path}{HEADROOM_SUFFIX}")
    except OSError:
        return False
    return True

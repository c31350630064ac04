"""Minute and hour rollups of the metric points, kept up to date incrementally.

Long ranges are drawn from ``metric_rollups_1m`` / ``metric_rollups_1h``
instead of millions of raw points, and a metric's history outlives the pruning
of its raw points. ``roll_up`` counts every point exactly once in each table,
however often it runs and whenever points arrive, through two watermarks kept
in ``pmon_state``:

* ``rollup_covered_ms`` (minute-aligned) and ``rollup_last_id``: the rollups
  hold exactly the points with ``ts_ms < covered`` and ``id <= last_id``.

A run reads ``top = max(id)`` once, then

1. the late pass folds in points with ``id`` in (last_id, top] and ``ts_ms <
   covered`` (recorded after their minute was rolled up, e.g. backfilled with
   an old timestamp) and moves ``last_id`` to ``top``;
2. the time pass folds in points with ``ts_ms`` in [covered, close) and
   ``id <= top``, where ``close`` is the start of the previous minute (a
   minute of grace for stragglers), and moves ``covered`` to ``close``.

Every write transaction merges a slice of the deltas and moves the
watermarks in the same commit, so a crash or a stop between two commits
leaves the invariant true; it also re-reads the watermarks first and gives
up when another process moved them (two roll-ups never count a point twice).
Row ids only grow: retention never deletes the row with the highest id.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

COVERED_KEY = "rollup_covered_ms"
LAST_ID_KEY = "rollup_last_id"

FIRST_STEP_ROWS = 500
"""Rows in the first write step of a run, before any hold time has been measured."""
MIN_STEP_ROWS = 20
MAX_STEP_ROWS = 5_000
"""Hard cap on rows written or deleted in one transaction, whatever the measured speed."""
REST_FACTOR = 2.0
"""After a step the write lock is left free for this many times the step's hold time."""
AIM = 0.3
"""Steps are sized to hold the lock this share of ``max_lock_ms``: on a busy host one can take three times as long."""
LOCK_POLL_S = 0.001
"""How often a step asks for the write lock while another process holds it."""
READ_ROWS = 200_000
"""Raw points the time pass aims to read (and hold in memory) at a time."""


class RollupRace(Exception):
    """Another process moved the rollup watermarks since this run read them."""


class WriteSteps:
    """Short write transactions, each sized from the hold times measured so far, with a rest after each.

    Why: other processes record through the same database; a step that holds
    the write lock for at most ``max_lock_ms`` and then leaves it free for
    ``REST_FACTOR`` times as long keeps their commits flowing.
    """

    def __init__(self, conn: sqlite3.Connection, max_lock_ms: float = 50.0, *, max_rows: int = MAX_STEP_ROWS,
                 first_rows: int = FIRST_STEP_ROWS, rest_factor: float = REST_FACTOR,
                 stop: threading.Event | None = None, checkpoint_every_s: float | None = None) -> None:
        self.conn = conn
        self.max_lock_ms = max_lock_ms
        self.max_rows = max(1, max_rows)
        self.size = max(1, min(first_rows, self.max_rows))
        """Rows the next step should write."""
        self.rest_factor = rest_factor
        self.stop = stop or threading.Event()
        """Set it to end waits (and the callers' loops) promptly."""
        self.holds_ms: list[float] = []
        """How long each committed step held the write lock."""
        self.max_step_rows = 0
        """The most rows one committed step wrote."""
        self.checkpoint_ms = 0.0
        """Time spent in passive checkpoints between steps (writers are not blocked by them)."""
        self._rest_until = 0.0
        self._patience_ms = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        self._checkpoint_every_s = checkpoint_every_s
        self._checkpointed_at = time.monotonic()
        if checkpoint_every_s is not None:
            # Checkpoint between steps instead of inside COMMIT, so a step's hold time is only its own work.
            conn.execute("PRAGMA wal_autocheckpoint = 0")

    def run(self, write: Callable[[sqlite3.Connection], int]) -> int:
        """Rest if the last step asks for it, then ``write`` inside BEGIN IMMEDIATE ... COMMIT; its row count.

        Errors (SQLITE_BUSY after the busy timeout included) roll back and propagate.
        """
        wait = self._rest_until - time.monotonic()
        if wait > 0:
            self.stop.wait(wait)
        conn = self.conn
        self._begin()
        started = time.perf_counter()
        try:
            rows = write(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
        held = (time.perf_counter() - started) * 1000
        self.holds_ms.append(held)
        self.max_step_rows = max(self.max_step_rows, rows)
        if rows > 0:
            per_row = held / rows
            fits = int(AIM * self.max_lock_ms / per_row) if per_row > 0 else self.max_rows
            self.size = min(self.max_rows, max(MIN_STEP_ROWS, min(2 * self.size, fits)))
        self._rest_until = time.monotonic() + self.rest_factor * held / 1000
        self._checkpoint()
        return rows

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, asking every millisecond for up to the connection's busy timeout.

        Why not SQLite's own busy handler: it sleeps longer and longer (up to
        100 ms a try), while a recorder committing back to back frees the lock
        for a few milliseconds at a time, so a step could wait for seconds.
        """
        conn = self.conn
        deadline = time.monotonic() + self._patience_ms / 1000
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    text = str(exc)
                    if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline \
                            or self.stop.is_set():
                        raise
                time.sleep(LOCK_POLL_S)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._patience_ms)}")

    def _checkpoint(self) -> None:
        if self._checkpoint_every_s is None or time.monotonic() - self._checkpointed_at < self._checkpoint_every_s:
            return
        started = time.perf_counter()
        try:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            pass
        self.checkpoint_ms += (time.perf_counter() - started) * 1000
        self._checkpointed_at = time.monotonic()


@dataclass
class RollupResult:
    """What one ``roll_up`` run folded in."""

    points: int = 0
    """Points folded into both rollup tables by this run (late ones included)."""
    late_points: int = 0
    """Of those, points recorded after their minute had already been rolled up."""
    rows_written: int = 0
    """Minute and hour rollup rows inserted or merged."""
    steps: int = 0
    """Write transactions committed."""
    covered_ms: int | None = None
    """The watermark afterwards: points older than this (and with ``id <= last_id``) are rolled up."""
    last_id: int | None = None
    complete: bool = True
    """False when stopped, or when another process was rolling up at the same time."""


def rollup_watermark(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """(covered_ms, last_id), or None before the first roll-up and on a version-1 database."""
    try:
        found = dict(conn.execute("SELECT key, value FROM pmon_state WHERE key IN (?, ?)", (COVERED_KEY, LAST_ID_KEY)))
    except sqlite3.OperationalError:  # no pmon_state: a v1 file read by a read-only connection
        return None
    if COVERED_KEY not in found or LAST_ID_KEY not in found:
        return None
    return int(found[COVERED_KEY]), int(found[LAST_ID_KEY])


Aggregate = list  # [count, sum, min, max, last_ts_ms, last]
Groups = dict[tuple[int, int], Aggregate]  # (bucket_ms, series_id) -> Aggregate


def fold(rows: Iterable[tuple[int, int, float]], width_ms: int, into: Groups | None = None) -> Groups:
    """Aggregate (series_id, ts_ms, value) rows per (bucket, series); ``last`` is the value at the greatest
    (ts_ms, value), so the result does not depend on the order rows come in."""
    groups: Groups = {} if into is None else into
    get = groups.get
    for series_id, ts, value in rows:
        key = (ts - ts % width_ms, series_id)
        agg = get(key)
        if agg is None:
            groups[key] = [1, value, value, value, ts, value]
            continue
        agg[0] += 1
        agg[1] += value
        if value < agg[2]:
            agg[2] = value
        if value > agg[3]:
            agg[3] = value
        if ts > agg[4] or (ts == agg[4] and value > agg[5]):
            agg[4] = ts
            agg[5] = value
    return groups


def _hours(minutes: Iterable[tuple[tuple[int, int], Aggregate]]) -> Groups:
    hours: Groups = {}
    for (bucket, series_id), (count, total, low, high, last_ts, last) in minutes:
        key = (bucket - bucket % HOUR_MS, series_id)
        agg = hours.get(key)
        if agg is None:
            hours[key] = [count, total, low, high, last_ts, last]
            continue
        agg[0] += count
        agg[1] += total
        agg[2] = min(agg[2], low)
        agg[3] = max(agg[3], high)
        if (last_ts, last) > (agg[4], agg[5]):
            agg[4], agg[5] = last_ts, last
    return hours


_MERGE = """INSERT INTO {table} (series_id, bucket_ms, count, sum, min, max, last, last_ts_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series_id, bucket_ms) DO UPDATE SET
    count = count + excluded.count,
    sum = sum + excluded.sum,
    min = min(min, excluded.min),
    max = max(max, excluded.max),
    last = CASE WHEN (excluded.last_ts_ms, excluded.last) > (last_ts_ms, last) THEN excluded.last ELSE last END,
    last_ts_ms = max(last_ts_ms, excluded.last_ts_ms)"""
MERGE_1M = _MERGE.format(table="metric_rollups_1m")
MERGE_1H = _MERGE.format(table="metric_rollups_1h")


def _merge(conn: sqlite3.Connection, minutes: list[tuple[tuple[int, int], Aggregate]]) -> int:
    """Merge minute deltas into both tables; the rows written."""
    hours = _hours(minutes)
    conn.executemany(MERGE_1M, [(s, b, n, total, lo, hi, last, ts) for (b, s), (n, total, lo, hi, ts, last) in minutes])
    conn.executemany(MERGE_1H, [(s, b, n, total, lo, hi, last, ts)
                                for (b, s), (n, total, lo, hi, ts, last) in hours.items()])
    return len(minutes) + len(hours)


def _save(conn: sqlite3.Connection, expected: tuple[int, int] | None, covered: int, last_id: int) -> None:
    """Check nobody else moved the watermarks, then move them; inside the step's transaction."""
    if rollup_watermark(conn) != expected:
        raise RollupRace("another roll-up moved the watermarks")
    conn.executemany("INSERT INTO pmon_state (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     [(COVERED_KEY, covered), (LAST_ID_KEY, last_id)])


_TIME_PASS = ("SELECT p.series_id, p.ts_ms, p.value FROM metric_series s CROSS JOIN metric_points p "
              "ON p.series_id = s.id AND p.ts_ms >= ? AND p.ts_ms < ? AND +p.id <= ?")
_LATE_PASS = ("SELECT id, series_id, ts_ms, value FROM metric_points WHERE id > ? AND id <= ? AND ts_ms < ? "
              "ORDER BY id LIMIT ?")
_FIRST_AT = ("SELECT min((SELECT ts_ms FROM metric_points WHERE series_id = s.id AND ts_ms >= ? "
             "ORDER BY ts_ms LIMIT 1)) FROM metric_series s")


def _first_at_or_after(conn: sqlite3.Connection, ts_ms: int) -> int | None:
    """The earliest point time at or after ``ts_ms``: one index seek a series."""
    return conn.execute(_FIRST_AT, (ts_ms,)).fetchone()[0]


def roll_up(conn: sqlite3.Connection, now: float, *, max_lock_ms: float = 50.0, stop: threading.Event | None = None,
            steps: WriteSteps | None = None) -> RollupResult:
    """Fold every point not yet rolled up into the minute and hour rollups; safe to run any time, any number of times.

    ``conn`` is a write connection (``open_writer``). Each commit holds the
    write lock about ``max_lock_ms`` at most (pass ``steps`` to share the
    pacing with other work). SQLite errors such as SQLITE_BUSY propagate;
    what was committed before them stays correct.
    """
    steps = steps or WriteSteps(conn, max_lock_ms, stop=stop)
    result = RollupResult()
    before = len(steps.holds_ms)
    try:
        _roll_up(conn, now, steps, result)
    except RollupRace:
        result.complete = False
    result.steps = len(steps.holds_ms) - before
    return result


def _roll_up(conn: sqlite3.Connection, now: float, steps: WriteSteps, result: RollupResult) -> None:
    stop = steps.stop
    top = conn.execute("SELECT max(id) FROM metric_points").fetchone()[0]
    saved = rollup_watermark(conn)
    if saved is not None:
        result.covered_ms, result.last_id = saved
    if top is None:
        return
    if saved is None:  # first run: nothing is older than the oldest point's minute, so nothing is late
        oldest = _first_at_or_after(conn, -(2 ** 62))
        if oldest is None:
            return
        covered = oldest - oldest % MINUTE_MS
        _move(steps, None, covered, top)
        saved = (covered, top)
    covered, last_id = saved

    while last_id < top:  # the late pass, in id order
        if stop.is_set():
            result.complete = False
            return
        limit = max(1, steps.size // 2)
        rows = conn.execute(_LATE_PASS, (last_id, top, covered, limit)).fetchall()
        reached = rows[-1][0] if len(rows) == limit else top
        minutes = sorted(fold(((s, t, v) for _, s, t, v in rows), MINUTE_MS).items())
        expected = saved

        def late_step(c: sqlite3.Connection) -> int:
            _save(c, expected, covered, reached)
            return _merge(c, minutes)

        result.rows_written += steps.run(late_step)
        saved = (covered, reached)
        last_id = reached
        result.points += len(rows)
        result.late_points += len(rows)

    close = (int(now * 1000) // MINUTE_MS - 1) * MINUTE_MS
    span = HOUR_MS
    while covered < close:  # the time pass, a window at a time, committed a slice of minutes at a time
        if stop.is_set():
            break
        end = min(close, covered + span)
        rows = conn.execute(_TIME_PASS, (covered, end, top)).fetchall()
        if not rows:
            following = _first_at_or_after(conn, end)
            covered = close if following is None else min(close, max(end, following - following % MINUTE_MS))
            span = min(DAY_MS, span * 4)
            continue
        span = max(MINUTE_MS, min(DAY_MS, 8 * span, span * READ_ROWS // len(rows) // MINUTE_MS * MINUTE_MS))
        minutes = sorted(fold(rows, MINUTE_MS).items())
        start = 0
        while start < len(minutes):
            if stop.is_set():
                break
            cut = _slice_end(minutes, start, max(1, steps.size // 2))
            upto = end if cut == len(minutes) else minutes[cut][0][0]
            piece, expected = minutes[start:cut], saved

            def time_step(c: sqlite3.Connection) -> int:
                _save(c, expected, upto, top)
                return _merge(c, piece)

            result.rows_written += steps.run(time_step)
            saved = (upto, top)
            result.points += sum(agg[0] for _, agg in piece)
            start = cut
        if start < len(minutes):
            break
        covered = end
    if stop.is_set():
        result.complete = False
    if saved[0] < covered:  # empty windows skipped since the last commit
        _move(steps, saved, covered, top)
        saved = (covered, top)
    result.covered_ms, result.last_id = saved


def _move(steps: WriteSteps, expected: tuple[int, int] | None, covered: int, last_id: int) -> None:
    """A step that only moves the watermarks (the first run, or past a stretch without points)."""

    def write(conn: sqlite3.Connection) -> int:
        _save(conn, expected, covered, last_id)
        return 0

    steps.run(write)


def _slice_end(minutes: list[tuple[tuple[int, int], Aggregate]], start: int, budget: int) -> int:
    """Index after the last whole minute that keeps the slice within ``budget`` groups (at least one minute)."""
    first_bucket = minutes[start][0][0]
    index = start
    while index < len(minutes) and minutes[index][0][0] == first_bucket:
        index += 1
    while index < len(minutes) and index - start < budget:
        bucket = minutes[index][0][0]
        following = index
        while following < len(minutes) and minutes[following][0][0] == bucket:
            following += 1
        if following - start > budget:
            break
        index = following
    return index

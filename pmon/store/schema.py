"""The SQLite schema, its version, and how connections are opened.

The seed's four tables keep their names and columns. Logs, events and snapshots
are real tables; ``plugin_metrics`` is a view over ``metric_points``, a compact
table that stores a small series id instead of repeating the plugin and metric
names in every row and in its index (~60 bytes a point instead of ~140). Its
covering index (series, time, value) answers series and latest-value queries
without touching the table, so the writer keeps no latest-values table.
Timestamps are Unix epoch seconds (UTC) in every seed table and view; the
``*_utc`` views show them as text for people reading the file with sqlite3.

Version 2 adds minute and hour rollups of the metric points (what long ranges
are drawn from, and what remains of a metric once its raw points are pruned),
``pmon_state`` for the rollup watermarks, and a time index on snapshots so
retention finds old ones without a full scan. ``metric_points`` gets no time
index (it would add ~15 B to a ~56 B point): pruning walks the (series, time)
index one series at a time.

Version 3 adds alerting: ``alerts`` holds one row per alert episode (from its
first breach to its resolution, with its ack), and a partial unique index
allows at most one open (pending or firing) row per rule × plugin, so two
evaluators racing on one file cannot open the same alert twice;
``alert_silences`` holds the silences. Ids are AUTOINCREMENT: an id a user has
seen (``pmon alerts ack ID``) never comes back as another alert.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

SCHEMA_VERSION = 3


class StoreError(Exception):
    """The database cannot be opened or used; the message names the path."""


SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS plugins (
    id TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'active'
);

CREATE TABLE IF NOT EXISTS metric_series (
    id INTEGER PRIMARY KEY,
    plugin_id TEXT NOT NULL,
    metric_type TEXT NOT NULL,
    UNIQUE (plugin_id, metric_type)
);

CREATE TABLE IF NOT EXISTS metric_points (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    metadata TEXT
);
CREATE INDEX IF NOT EXISTS metric_points_series_time ON metric_points (series_id, ts_ms, value);

CREATE VIEW IF NOT EXISTS plugin_metrics AS
    SELECT p.id AS id, s.plugin_id AS plugin_id, s.metric_type AS metric_type, p.value AS value,
           p.ts_ms / 1000.0 AS timestamp, p.metadata AS metadata, NULL AS created_at
    FROM metric_points p JOIN metric_series s ON s.id = p.series_id;

CREATE TABLE IF NOT EXISTS plugin_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin_id TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    timestamp DATETIME NOT NULL,
    context TEXT,
    traceback TEXT,
    created_at DATETIME DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);
CREATE INDEX IF NOT EXISTS plugin_logs_plugin ON plugin_logs (plugin_id, id);
CREATE INDEX IF NOT EXISTS plugin_logs_level ON plugin_logs (level, id);
CREATE INDEX IF NOT EXISTS plugin_logs_plugin_level ON plugin_logs (plugin_id, level, id);
CREATE INDEX IF NOT EXISTS plugin_logs_time ON plugin_logs (timestamp);

CREATE TABLE IF NOT EXISTS plugin_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    description TEXT NOT NULL,
    timestamp DATETIME NOT NULL,
    severity TEXT NOT NULL,
    data TEXT,
    created_at DATETIME DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    category TEXT NOT NULL DEFAULT 'system'
);
CREATE INDEX IF NOT EXISTS plugin_events_plugin ON plugin_events (plugin_id, id);
CREATE INDEX IF NOT EXISTS plugin_events_severity ON plugin_events (severity, id);
CREATE INDEX IF NOT EXISTS plugin_events_plugin_severity ON plugin_events (plugin_id, severity, id);
CREATE INDEX IF NOT EXISTS plugin_events_time ON plugin_events (timestamp);

CREATE TABLE IF NOT EXISTS performance_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin_id TEXT NOT NULL,
    timestamp DATETIME NOT NULL,
    cpu_usage REAL NOT NULL,
    memory_usage REAL NOT NULL,
    response_time REAL NOT NULL,
    error_rate REAL NOT NULL,
    request_count INTEGER NOT NULL,
    throughput REAL NOT NULL,
    disk_io TEXT NOT NULL,
    network_io TEXT NOT NULL,
    custom_metrics TEXT,
    created_at DATETIME DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);
CREATE INDEX IF NOT EXISTS performance_snapshots_plugin ON performance_snapshots (plugin_id, id);

CREATE VIEW IF NOT EXISTS plugin_metrics_utc AS
    SELECT id, plugin_id, metric_type, value, strftime('%Y-%m-%d %H:%M:%f', timestamp, 'unixepoch') AS time_utc, metadata
    FROM plugin_metrics;
CREATE VIEW IF NOT EXISTS plugin_logs_utc AS
    SELECT id, plugin_id, level, strftime('%Y-%m-%d %H:%M:%f', timestamp, 'unixepoch') AS time_utc, message, context, traceback
    FROM plugin_logs;
CREATE VIEW IF NOT EXISTS plugin_events_utc AS
    SELECT id, plugin_id, event_type, category, severity, strftime('%Y-%m-%d %H:%M:%f', timestamp, 'unixepoch') AS time_utc,
           description, data
    FROM plugin_events;
CREATE VIEW IF NOT EXISTS performance_snapshots_utc AS
    SELECT id, plugin_id, strftime('%Y-%m-%d %H:%M:%f', timestamp, 'unixepoch') AS time_utc, cpu_usage, memory_usage,
           response_time, error_rate, request_count, throughput, disk_io, network_io, custom_metrics
    FROM performance_snapshots;
"""

ROLLUP_COLUMNS = """(
    series_id INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    last REAL NOT NULL,
    last_ts_ms INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket_ms)
) WITHOUT ROWID"""

SCHEMA_V2 = f"""
CREATE TABLE IF NOT EXISTS metric_rollups_1m {ROLLUP_COLUMNS};
CREATE TABLE IF NOT EXISTS metric_rollups_1h {ROLLUP_COLUMNS};
CREATE TABLE IF NOT EXISTS pmon_state (
    key TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS performance_snapshots_time ON performance_snapshots (timestamp);
"""

SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    plugin_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    value REAL,
    threshold REAL NOT NULL,
    severity TEXT NOT NULL,
    started_at REAL NOT NULL,
    fired_at REAL,
    resolved_at REAL,
    acked_at REAL,
    acked_by TEXT,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (rule, plugin_id) WHERE state IN ('pending', 'firing');
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, id);
CREATE TABLE IF NOT EXISTS alert_silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    plugin TEXT NOT NULL DEFAULT '*',
    until REAL NOT NULL,
    created_at REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_silences_until ON alert_silences (until);
"""

# Index i upgrades a version-i database to version i+1.
MIGRATIONS: list[str] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3]


def _error_code(exc: BaseException) -> int:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def _describe(path: Path, exc: BaseException) -> StoreError:
    code = _error_code(exc)
    if code == sqlite3.SQLITE_NOTADB:
        return StoreError(f"{path}: not an SQLite database; pmon will not overwrite it")
    if code == sqlite3.SQLITE_CORRUPT:
        return StoreError(f"{path}: {exc} (the file is damaged or truncated); pmon will not overwrite it")
    return StoreError(f"{path}: {exc}")


def _check_path(path: Path) -> None:
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, expected a pmon database file")
    if path.exists() and path.stat().st_size and path.stat().st_size < 100:
        raise StoreError(f"{path}: file is too short to be an SQLite database; pmon will not overwrite it")


def _check_before_writing(file: Path) -> None:
    """Refuse, before any read-write connection opens it, a file pmon must not write.

    Closing a read-write connection to a file SQLite refuses (not a database, or
    shorter than its header's page count with no WAL holding the rest) deletes the
    ``-wal`` and ``-shm`` beside it; to a newer pmon's file, it checkpoints that
    pmon's WAL and removes it. A read-only connection meets the same faults and
    changes nothing. SQLite's own check weighs the header's page count against the
    file *and* a valid WAL, so a file that a checkpoint is growing (page 1, with
    the new count, is written before the pages past the end) is not taken for a
    truncated one. The header is not read with ``open()``: closing any descriptor
    of the file would drop the POSIX locks this process's connections hold on it.
    """
    try:
        if file.stat().st_size == 0:
            return
        conn = _connect_reader(file, 0, "mode=ro")
    except OSError:
        return  # missing (the read-write open creates it) or unreadable (that open says so)
    except sqlite3.DatabaseError as exc:
        if _error_code(exc) in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            raise _describe(file, exc) from None
        return  # busy, or a folder this user cannot write: the read-write open meets it and says so
    try:
        schema_version(conn, file)
    except sqlite3.Error:
        pass  # the read-write open meets it and says so
    finally:
        conn.close()


def _tune(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = OFF")


def schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The file's pmon schema version; StoreError for a newer pmon's file or another program's database.

    Only reads, so a file refused here is left exactly as it was.
    """
    # One statement, so one snapshot: read apart, another process's schema could commit between the two reads
    # (user_version 0, then its tables) and a pmon file being created would pass for another program's.
    version, has_tables = conn.execute(
        "SELECT user_version, EXISTS (SELECT 1 FROM sqlite_master) FROM pragma_user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version} is newer than this pmon ({SCHEMA_VERSION}); upgrade pmon")
    if version == 0 and has_tables:
        raise StoreError(f"{path}: an SQLite database of another program (no pmon schema); "
                         "pmon will not add its tables to it")
    return version


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION in one IMMEDIATE transaction (safe when processes race)."""
    if schema_version(conn, path) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn, path)
        for step in MIGRATIONS[version:]:
            for statement in step.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def open_writer(path: str | os.PathLike[str], busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A read-write connection in WAL mode with the schema in place.

    Creates the file (and its folder) when missing; refuses, with the path in
    the message, anything that is not a pmon database. Never deletes anything.
    """
    file = Path(path)
    _check_path(file)
    _check_before_writing(file)
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            return _open_writer(file, busy_timeout_ms)
        except _Contended:
            # Two processes creating one file at once: SQLite answers the loser "locked" at once, without
            # its busy handler (a lock upgrade that would deadlock). Waiting and trying again is the cure.
            if time.monotonic() + pause > deadline:
                raise StoreError(f"{file}: database is locked (another process holds it for longer than "
                                 f"{busy_timeout_ms} ms)") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


class _Contended(Exception):
    """Opening lost a race for the file's lock."""


def _open_writer(file: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(file, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise _describe(file, exc) from None
    try:
        _tune(conn, busy_timeout_ms)
        schema_version(conn, file)  # before WAL mode: a file refused is not converted first
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{file}: could not switch to WAL mode (got {mode})")
        migrate(conn, file)
        _check_writable(conn, file, busy_timeout_ms)
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise _Contended() from None
        raise _describe(file, exc) from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _describe(file, exc) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _check_writable(conn: sqlite3.Connection, file: Path, busy_timeout_ms: int) -> None:
    """Find out now, not at the first commit, that this user may only read the file.

    A statement that writes (and changes nothing), since ``BEGIN IMMEDIATE`` on a
    read-only file quietly begins a read transaction. SQLite refuses a write on a
    read-only file before it asks for the lock, so the probe does not wait (busy
    timeout 0): "busy" means the file is writable and another connection writes.
    """
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("UPDATE pmon_state SET value = value WHERE 0")
    except sqlite3.OperationalError as exc:
        if _is_read_only(exc):
            raise StoreError(f"{file}: cannot write, read-only for this user ({exc})") from None
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")


def _is_read_only(exc: sqlite3.Error) -> bool:
    return _error_code(exc) == sqlite3.SQLITE_READONLY or "readonly" in str(exc)


def _connect_reader(file: Path, busy_timeout_ms: int, flags: str) -> sqlite3.Connection:
    """A read-only connection (``flags`` in its URI, the path percent-quoted) that has read the header."""
    conn = sqlite3.connect(f"{file.resolve().as_uri()}?{flags}", uri=True, timeout=busy_timeout_ms / 1000,
                           isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA user_version").fetchone()  # the first read: what is wrong with the file shows here
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(path: str | os.PathLike[str], busy_timeout_ms: int = 2000) -> sqlite3.Connection:
    """A read-only connection: it can never take the write lock, so it never slows writers."""
    file = Path(path)
    if not file.exists():
        raise StoreError(f"{file}: no database here yet (record something, or run `pmon demo`)")
    _check_path(file)
    try:
        conn = _connect_reader(file, busy_timeout_ms, "mode=ro")
    except sqlite3.OperationalError as exc:
        if not _is_read_only(exc) or os.path.exists(f"{file}-wal") or os.access(file.parent, os.W_OK):
            raise _describe(file, exc) from None
        # A WAL database whose owner stopped cleanly (no -wal, no -shm) in a folder this user cannot write:
        # SQLite cannot create the -shm that a WAL read needs. With no -wal, every committed row is in the
        # main file, and immutable=1 reads it without the -shm (and without locks: a reader that must see
        # later writes reopens once a -wal appears).
        try:
            conn = _connect_reader(file, busy_timeout_ms, "mode=ro&immutable=1")
        except sqlite3.Error as exc:
            raise _describe(file, exc) from None
    except sqlite3.Error as exc:
        raise _describe(file, exc) from None
    try:
        version = schema_version(conn, file)
    except (StoreError, sqlite3.Error) as exc:
        conn.close()
        raise exc if isinstance(exc, StoreError) else _describe(file, exc) from None
    if version == 0:
        conn.close()
        raise StoreError(f"{file}: not a pmon database (no schema yet)")
    return conn

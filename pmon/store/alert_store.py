"""Alerts, acks and silences in the database: what `pmon alerts`, the console and a restarted evaluator read.

The ``alerts`` table is the evaluator's memory across restarts and the
history users list; it is written here, in short ``BEGIN IMMEDIATE``
transactions, not by the batched writer (an alert's row changes in place,
and the caller needs its id before recording the event). Readers work on a
version-2 file opened read-only before any v3 writer upgraded it: they find no
alerts there instead of failing.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable

from pmon.analysis.alerting import Alert, AlertState, Silence, Transition
from pmon.store.schema import StoreError

DEFAULT_LIMIT = 200
STATE_FILTERS = ("open", *(s.value for s in AlertState if s is not AlertState.INACTIVE))
"""What ``alerts(state=...)`` accepts; ``open`` is pending and firing together."""


class AlertError(StoreError):
    """An alert or silence id the store does not have, or an argument it cannot store; one line for the user."""


_COLUMNS = ("id, rule, plugin_id, metric, state, value, threshold, severity, started_at, fired_at, resolved_at, "
            "acked_at, acked_by, reason")
_OPEN = "state IN ('pending', 'firing')"  # the alerts_open index's condition: keep them alike
_SILENCE_COLUMNS = "id, rule, plugin, until, created_at, reason"


def _alert(row: tuple) -> Alert:
    value = math.nan if row[5] is None else row[5]
    return Alert(row[0], row[1], row[2], row[3], AlertState(row[4]), value, *row[6:13], row[13] or "")


def _silence(row: tuple) -> Silence:
    return Silence(*row)


def _has_alert_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("PRAGMA user_version").fetchone()[0] >= 3


def open_alerts(conn: sqlite3.Connection) -> list[Alert]:
    """Every pending or firing alert: what ``AlertEvaluator.load_state`` continues from."""
    if not _has_alert_tables(conn):
        return []
    return [_alert(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE {_OPEN} ORDER BY id")]


def alerts(conn: sqlite3.Connection, state: str | None = None, limit: int = DEFAULT_LIMIT) -> list[Alert]:
    """Alerts newest first, optionally of one state (``open``: pending and firing), for `pmon alerts`."""
    if state is not None and state not in STATE_FILTERS:
        raise AlertError(f"state must be one of {', '.join(STATE_FILTERS)}, got {state!r}")
    if not _has_alert_tables(conn):
        return []
    where, params = "", ()
    if state == "open":
        where = f"WHERE {_OPEN}"
    elif state is not None:
        where, params = "WHERE state = ?", (state,)
    rows = conn.execute(f"SELECT {_COLUMNS} FROM alerts {where} ORDER BY id DESC LIMIT ?", (*params, int(limit)))
    return [_alert(r) for r in rows]


def alert(conn: sqlite3.Connection, alert_id: int) -> Alert:
    """One alert by id; ``AlertError`` when there is none."""
    row = None
    if _has_alert_tables(conn):
        row = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    if row is None:
        raise AlertError(f"alert {alert_id}: no such alert (`pmon alerts` lists them)")
    return _alert(row)


def firing_count(conn: sqlite3.Connection) -> int:
    """How many alerts are firing now (silenced and acked ones included): the console header's count."""
    if not _has_alert_tables(conn):
        return 0
    return conn.execute("SELECT count(*) FROM alerts WHERE state = 'firing'").fetchone()[0]


def _save(conn: sqlite3.Connection, change: Transition) -> int | None:
    row = conn.execute(f"SELECT id, state FROM alerts WHERE rule = ? AND plugin_id = ? AND {_OPEN}",
                       (change.rule, change.plugin_id)).fetchone()
    value = change.value if math.isfinite(change.value) else None
    if change.state is AlertState.INACTIVE:
        if row is not None and row[1] == AlertState.PENDING:
            conn.execute("DELETE FROM alerts WHERE id = ?", (row[0],))
        return None
    if change.state is AlertState.RESOLVED:
        if row is None or row[1] != AlertState.FIRING:
            return None
        conn.execute("UPDATE alerts SET state = 'resolved', value = ?, resolved_at = ?, reason = ? WHERE id = ?",
                     (value, change.at, change.reason, row[0]))
        return row[0]
    if row is not None:
        if change.state is AlertState.FIRING and row[1] == AlertState.PENDING:
            conn.execute("UPDATE alerts SET state = 'firing', value = ?, fired_at = ? WHERE id = ?",
                         (value, change.at, row[0]))
            return row[0]
        return None  # already in that state or further: another evaluator got there first
    fired_at = change.at if change.state is AlertState.FIRING else None
    cursor = conn.execute(
        "INSERT INTO alerts (rule, plugin_id, metric, state, value, threshold, severity, started_at, fired_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (change.rule, change.plugin_id, change.metric, change.state.value, value, change.threshold,
         change.severity, change.since, fired_at))
    return cursor.lastrowid


def save_transitions(conn: sqlite3.Connection, transitions: Iterable[Transition]) -> list[int | None]:
    """Apply the evaluator's transitions in one short write transaction.

    Returns, for each transition, the id of the alert it changed, or None
    where it changed nothing: a pending alert leaving (its row is deleted),
    or a state the store already had because another evaluator on the same
    file got there first. Record an event only for transitions with an id
    (and ``notify``), so two evaluators never announce one alert twice.
    """
    changes = list(transitions)
    if not changes:
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        ids = [_save(conn, change) for change in changes]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return ids


def ack(conn: sqlite3.Connection, alert_id: int, now: float, who: str) -> Alert:
    """Mark an open alert acknowledged: shown in lists; it still resolves by its value.

    Acking again keeps the first ack. A resolved alert cannot be acked (there is nothing left to own).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = alert(conn, alert_id)
        if found.state is AlertState.RESOLVED:
            raise AlertError(f"alert {alert_id}: already resolved; only pending and firing alerts can be acked")
        conn.execute("UPDATE alerts SET acked_at = ?, acked_by = ? WHERE id = ? AND acked_at IS NULL",
                     (now, who, alert_id))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return alert(conn, alert_id)


def silence(conn: sqlite3.Connection, rule: str, until: float, plugin: str = "*", reason: str = "",
            now: float | None = None) -> Silence:
    """Silence a rule (on plugins matching the ``plugin`` glob) until ``until``.

    The store does not know the rules: the caller checks that ``rule`` is one
    of the configured names. ``now`` (default: the clock) is when it starts.
    """
    created = time.time() if now is None else now
    if not (math.isfinite(until) and until > created):
        raise AlertError(f"silence of {rule}: it must end in the future, got until={until!r}")
    if not rule or not plugin:
        raise AlertError("silence: rule and plugin must not be empty")
    cursor = conn.execute("INSERT INTO alert_silences (rule, plugin, until, created_at, reason) "
                          "VALUES (?, ?, ?, ?, ?)", (rule, plugin, until, created, reason))
    return Silence(cursor.lastrowid or 0, rule, plugin, until, created, reason)


def unsilence(conn: sqlite3.Connection, silence_id: int, now: float) -> Silence:
    """End a silence now (its row stays, as history)."""
    conn.execute("UPDATE alert_silences SET until = min(until, ?) WHERE id = ?", (now, silence_id))
    row = conn.execute(f"SELECT {_SILENCE_COLUMNS} FROM alert_silences WHERE id = ?", (silence_id,)).fetchone()
    if row is None:
        raise AlertError(f"silence {silence_id}: no such silence")
    return _silence(row)


def active_silences(conn: sqlite3.Connection, now: float) -> list[Silence]:
    """The silences in force at ``now``, ending soonest first: what ``AlertEvaluator.evaluate`` takes."""
    if not _has_alert_tables(conn):
        return []
    rows = conn.execute(f"SELECT {_SILENCE_COLUMNS} FROM alert_silences WHERE until > ? AND created_at <= ? "
                        "ORDER BY until, id", (now, now))
    return [_silence(r) for r in rows]


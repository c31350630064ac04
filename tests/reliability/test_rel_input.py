"""Hostile filter text everywhere a user filters: the store, the CLI, the HTTP API and the console.

Every filter is a literal match (text: contains, ASCII letters in either case; plugin: equals), never SQL and
never a wildcard: ``' OR 1=1 --`` finds nothing rather than everything, ``%`` finds only a percent sign,
a NUL finds only text holding a NUL, and a 100,000-character filter is an empty answer, not an SQL error.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmon import Monitor
from pmon.cli import main
from pmon.cli_tail import events_command, logs_command
from pmon.store import queries, snapshot_queries
from pmon.store.schema import open_reader

pytestmark = pytest.mark.reliability

for _command in (logs_command, events_command):
    if _command.name not in main.commands:
        main.add_command(_command)

PLUGINS = ("pa1", "p_1", "pA1")
MESSAGES = {
    "pa1": ["request ok", "CPU at 100% now", "quote ' and \" both", "nul \x00 inside"],
    "p_1": ["snake_case name", "back\\slash path", "ends with a dash --"],
    "pA1": ["' OR 1=1 -- but only as text", "UPPER Case"],
}
"""Log messages (and, with " event" added, event descriptions) per plugin."""
LONG = "x" * 100_000
HOSTILE = ["' OR 1=1 --", "1=1", "%", "_", "\\", '"', "'", "\x00", "%%", "_1", "p%", "p_1", "'; DROP TABLE plugin_logs; --",
           "\u202e", "upper case", "É", LONG]
NOT_IN_ARGV = {"\x00"}
"""A command line cannot carry a NUL (execve ends each argument at one)."""


def shown(value: str) -> str:
    """A short test id for a filter value."""
    return repr(value) if len(value) <= 20 else f"{value[:8]!r}*{len(value):,}"


def contains(text: str, needle: str) -> bool:
    """The promise: a literal substring, ASCII letters compared without case (as SQLite's LIKE did)."""
    fold = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
    return needle.translate(fold) in text.translate(fold)


def expected_messages(needle: str) -> set[str]:
    return {message for messages in MESSAGES.values() for message in messages if contains(message, needle)}


def expected_descriptions(needle: str) -> set[str]:
    return {m + " event" for messages in MESSAGES.values() for m in messages if contains(m + " event", needle)}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "pmon.db"
    monitor = Monitor(path, flush_interval=0.05, sample_interval=0)
    for plugin, messages in MESSAGES.items():
        monitor.record_metric(plugin, "response_time", 10.0)
        monitor.record_metric(plugin, "custom.a_b", 1.0)
        for message in messages:
            monitor.record_log(plugin, "error", message)
            monitor.record_event(plugin, "crash", message + " event", "high")
        monitor.create_snapshot(plugin, {"cpu_usage": 1.0, "response_time": 10.0})
    assert monitor.flush()
    monitor.stop_monitoring()
    return path


@pytest.fixture
def reader(db: Path) -> Iterator[sqlite3.Connection]:
    conn = open_reader(db)
    yield conn
    conn.close()


def assert_store_unharmed(db: Path) -> None:
    conn = open_reader(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM plugin_logs").fetchone()[0] == sum(map(len, MESSAGES.values()))
    finally:
        conn.close()


@pytest.mark.parametrize("needle", HOSTILE, ids=shown)
def test_store_text_and_plugin_filters_are_literal(reader: sqlite3.Connection, needle: str) -> None:
    logs = {log.message for log in queries.logs(reader, text=needle, limit=1000)}
    assert logs == expected_messages(needle)
    events = {event.description for event in queries.events(reader, text=needle, limit=1000)}
    assert events == expected_descriptions(needle)
    assert queries.logs(reader, plugin_id=needle) == [] or needle in PLUGINS
    snapshots = snapshot_queries.snapshot_page(reader, plugin_contains=needle)
    assert {s.plugin_id for s in snapshots} == {p for p in PLUGINS if contains(p, needle)}


def test_a_nul_finds_only_text_holding_one_and_text_after_it(reader: sqlite3.Connection) -> None:
    """SQLite's LIKE stops at a NUL: a filter of one NUL matched every row, and 'inside' was never found."""
    assert [log.message for log in queries.logs(reader, text="\x00")] == ["nul \x00 inside"]
    assert [log.message for log in queries.logs(reader, text="\x00 ins")] == ["nul \x00 inside"]
    assert queries.logs(reader, text="nul \x00 zzz") == []


def run_cli(db: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", str(db), *args], env={"PMON_CONFIG": None})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("needle", [h for h in HOSTILE if h not in NOT_IN_ARGV], ids=shown)
def test_cli_grep_and_plugin_filters_are_literal(db: Path, needle: str) -> None:
    code, out = run_cli(db, "logs", "--json", "--grep", needle)
    assert code == 0 and {row["message"] for row in json_lines(out)} == expected_messages(needle)
    code, out = run_cli(db, "events", "--json", "--grep", needle)
    assert code == 0
    assert {row["description"] for row in json_lines(out)} == expected_descriptions(needle)
    only = {needle} & set(PLUGINS)
    for args in (["logs", "--json"], ["events", "--json"], ["export", "--table", "logs", "--format", "ndjson"],
                 ["export", "--table", "metrics", "--format", "ndjson"]):
        code, out = run_cli(db, *args, "--plugin", needle)
        assert code == 0 and {row["plugin_id"] for row in json_lines(out)} == only, args
    for args in (["snapshots", "list", "--json"], ["analytics", "trends", "--json"], ["analytics", "errors", "--json"],
                 ["analytics", "detect", "--json"]):
        code, out = run_cli(db, *args, "--plugin", needle)
        assert code == 0, (args, out)
        rows = json.loads(out)
        found = {p for row in rows for p in ([row["plugin_id"]] if "plugin_id" in row else row.get("plugins", []))}
        assert found <= only, args
        if only and args[1] in ("list", "trends", "errors"):
            assert found == only, args
    code, out = run_cli(db, "analytics", "performance", "--json", "--plugin", needle)
    assert code == 0
    stats = json.loads(out)["plugins"]
    assert [s["plugin_id"] for s in stats] == [needle]  # the filter echoed, with figures only for a real plugin
    assert stats[0]["requests"] == (1 if needle in PLUGINS else 0)
    assert_store_unharmed(db)


def test_a_real_pmon_process_takes_hostile_filters_as_text(db: Path) -> None:
    for needle in ("' OR 1=1 --", "%", LONG):
        done = subprocess.run([sys.executable, "-m", "pmon", "--db", str(db), "logs", "--json", "--grep", needle],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert {json.loads(line)["message"] for line in done.stdout.splitlines()} == expected_messages(needle)
    assert_store_unharmed(db)


def test_http_filters_and_plugin_ids_are_literal(db: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
    from api_helpers import running_api

    with running_api(db) as api:
        for needle in [*HOSTILE[:-1], "y" * 6000]:
            q = urllib.parse.quote(needle, safe="")
            reply = api.get(f"/plugins/pa1/logs?q={q}&limit=1000")
            assert reply.status == 200, (needle, reply.body)
            assert {item["message"] for item in reply.body["items"]} == {
                m for m in MESSAGES["pa1"] if contains(m, needle)}
            reply = api.get(f"/plugins/pa1/events?q={q}&limit=1000")
            assert reply.status == 200
            assert {item["description"] for item in reply.body["items"]} == {
                m + " event" for m in MESSAGES["pa1"] if contains(m + " event", needle)}
            reply = api.get(f"/plugins/pa1/metrics?metric_type={q}")
            assert reply.status in (200, 400) and (reply.status == 400 or reply.body["items"] == [])
            for path in (f"/plugins/{q}/logs", f"/plugins/{q}/events", f"/plugins/{q}/metrics",
                         f"/plugins/{q}/snapshots"):
                reply = api.get(path)
                assert reply.status in (200, 400, 404), (path, reply.status)
                owned = {item.get("plugin_id", needle) for item in reply.body.get("items", [])}
                assert reply.status != 200 or needle in PLUGINS or owned <= {needle}, path
                if reply.status == 200 and needle not in PLUGINS:
                    assert reply.body["items"] == [], path
            assert api.get(f"/plugins/{q}/summary").status in (400, 404) or needle in PLUGINS
            reply = api.get(f"/analytics/trends?plugin={q}")
            assert reply.status in (200, 400)
            if reply.status == 200:
                assert {row["plugin_id"] for row in reply.body["trends"]} <= {needle}
            reply = api.get(f"/analytics/performance?plugin={q}")
            assert reply.status in (200, 400)
            if reply.status == 200:
                assert all(row["requests"] == (1 if needle in PLUGINS else 0) for row in reply.body["plugins"])
        assert {item["message"] for item in api.get("/plugins/p_1/logs").body["items"]} == set(MESSAGES["p_1"])
    assert_store_unharmed(db)


async def test_console_filters_are_literal(db: Path) -> None:
    from textual.widgets import Input

    from pmon.tui.app import PmonApp
    from pmon.tui.tabs.events_tab import EventsTab
    from pmon.tui.tabs.logs_tab import LogsTab
    from pmon.tui.tabs.overview_tab import OverviewTab
    from pmon.tui.tabs.snapshots_tab import SnapshotsTab

    app = PmonApp(db, refresh_interval=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        async def settle(condition) -> None:  # noqa: ANN001
            for _ in range(200):
                if condition():
                    break
                await pilot.pause(0.05)
            await pilot.pause(0.3)

        async def apply(tab: object, needle: str) -> None:
            await pilot.press("slash")
            field = tab.query_one(Input)  # type: ignore[attr-defined]
            field.value = needle  # typed or pasted: the same text reaches the filter
            await pilot.press("enter")

        overview = app.query_one(OverviewTab)
        await settle(lambda: overview.table.row_count == len(PLUGINS))
        for needle in ("%", "_", "' OR 1=1 --", "p_", LONG):
            await apply(overview, needle)
            await pilot.pause(0.2)
            assert overview.table.row_count == len([p for p in PLUGINS if contains(p, needle)]), needle

        await pilot.press("3")
        logs = app.query_one(LogsTab)
        await settle(lambda: logs.loaded and logs.table.row_count > 0)
        for needle in ("%", "_", "' OR 1=1 --", "\\", '"', LONG, "\x00"):
            await apply(logs, needle)
            await settle(lambda: logs.loaded and logs.text == needle.strip())
            shown = {record.message for record in logs.table._records.values()}
            assert shown == expected_messages(needle.strip()), needle

        await pilot.press("4")
        events = app.query_one(EventsTab)
        await settle(lambda: events.table.row_count > 0)
        for needle in ("%", "' OR 1=1 --", LONG):
            await apply(events, needle)
            await settle(lambda: events.loaded and events.text == needle)
            shown = {record.description for record in events.table._records.values()}
            assert shown == expected_descriptions(needle), needle

        await pilot.press("5")
        snapshots = app.query_one(SnapshotsTab)
        await settle(lambda: snapshots.table.row_count > 0)
        for needle in ("%", "_", "' OR 1=1 --", LONG):
            await apply(snapshots, needle)
            await settle(lambda: snapshots.plugin_text == needle)
            await pilot.pause(0.5)
            assert snapshots.table.row_count == len([p for p in PLUGINS if contains(p, needle)]), needle
        assert app.is_running
    assert_store_unharmed(db)

"""Error grouping: one failure with varying numbers, addresses and library frames is one group; others are not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pmon import Monitor
from pmon.analysis.errors import error_groups, fingerprint, normalise_message, parse_traceback
from pmon.store.schema import open_reader

T0 = 1_700_000_000.0


def traceback(kind: str = "KeyError", message: str = "'user_17'", own: str = "load_user", line: int = 12,
              library: str = "/usr/lib/python3.11/json/decoder.py") -> str:
    return (
        "Traceback (most recent call last):\n"
        f'  File "/srv/app/plugins/accounts.py", line {line}, in handle\n'
        "    user = self.load(uid)\n"
        f'  File "/srv/app/plugins/accounts.py", line {line + 30}, in {own}\n'
        "    return json.loads(raw)\n"
        f'  File "{library}", line 337, in decode\n'
        "    obj, end = self.raw_decode(s)\n"
        '  File "/srv/app/.venv/lib/python3.11/site-packages/pmon/monitor.py", line 300, in record_log\n'
        "    pass\n"
        f"{kind}: {message}\n"
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    db = tmp_path / "pmon.db"
    monitor = Monitor(db, flush_interval=0.05)
    # One failure three times: other ids, addresses, IPs, line numbers and stdlib frames.
    monitor.record_log("accounts", "error", "lookup 17 failed at 0x7f3a2b10 from 10.0.0.1", traceback=traceback(),
                       timestamp=T0 + 1)
    monitor.record_log("accounts", "critical", "lookup 4242 failed at 0x55d0c0de from 10.0.0.99",
                       traceback=traceback(message="'user_4242'", line=80), timestamp=T0 + 5)
    monitor.record_log("accounts", "error", "lookup 9 failed at 0xdeadbeef from 192.168.0.7",
                       traceback=traceback(library="/opt/python/lib/python3.12/json/decoder.py"), timestamp=T0 + 3)
    # The same message from another exception type, and through another function of the plugin.
    monitor.record_log("accounts", "error", "lookup 17 failed at 0x7f3a2b10 from 10.0.0.1",
                       traceback=traceback(kind="ValueError"), timestamp=T0 + 2)
    monitor.record_log("accounts", "error", "lookup 17 failed at 0x7f3a2b10 from 10.0.0.1",
                       traceback=traceback(own="load_admin"), timestamp=T0 + 2)
    # No traceback: grouped by message; another plugin joins the group.
    monitor.record_log("billing", "error", "TimeoutError: charge 991 took 30.5 s", timestamp=T0 + 4)
    monitor.record_log("accounts", "error", "TimeoutError: charge 12 took 2 s", timestamp=T0 + 6)
    monitor.record_log("accounts", "warning", "lookup 1 failed at 0x1 from 10.0.0.1", timestamp=T0 + 1)  # not an error
    monitor.record_log("accounts", "error", "lookup 5 failed at 0x1 from 10.0.0.1", traceback=traceback(),
                       timestamp=T0 + 500)  # outside the range
    monitor.stop_monitoring()
    return db


def test_the_same_failure_with_other_numbers_addresses_and_stdlib_frames_is_one_group(path: Path) -> None:
    groups = error_groups(open_reader(path), T0, T0 + 100)
    top = groups[0]
    assert (top.count, top.exception_type, top.first_seen, top.last_seen) == (3, "KeyError", T0 + 1, T0 + 5)
    assert top.message == "lookup <n> failed at <hex> from <ip>"
    assert top.frames == ("accounts.py:handle", "accounts.py:load_user")
    assert top.levels == ("critical", "error") and top.plugins == ("accounts",)
    assert top.example_message.startswith("lookup 4242") and "user_4242" in (top.example_traceback or "")


def test_other_exception_types_and_other_own_frames_are_other_groups(path: Path) -> None:
    groups = error_groups(open_reader(path), T0, T0 + 100)
    assert sorted((g.exception_type, g.frames[-1] if g.frames else None, g.count) for g in groups) == [
        ("KeyError", "accounts.py:load_admin", 1), ("KeyError", "accounts.py:load_user", 3),
        ("TimeoutError", None, 2), ("ValueError", "accounts.py:load_user", 1)]


def test_a_failure_in_several_plugins_is_one_group_listing_them_unless_split_by_plugin(path: Path) -> None:
    conn = open_reader(path)
    timeout = next(g for g in error_groups(conn, T0, T0 + 100) if g.exception_type == "TimeoutError")
    assert timeout.plugins == ("accounts", "billing") and timeout.message == "TimeoutError: charge <n> took <n> s"
    split = [g for g in error_groups(conn, T0, T0 + 100, by_plugin=True) if g.exception_type == "TimeoutError"]
    assert sorted(g.plugins for g in split) == [("accounts",), ("billing",)]
    only = error_groups(conn, T0, T0 + 100, plugin_id="billing")
    assert [(g.plugins, g.count) for g in only] == [(("billing",), 1)]


def test_groups_are_sorted_by_count_or_by_last_seen_and_limited(path: Path) -> None:
    conn = open_reader(path)
    assert [g.count for g in error_groups(conn, T0, T0 + 100)] == [3, 2, 1, 1]
    newest = error_groups(conn, T0, T0 + 100, order="last_seen", limit=2)
    assert [g.last_seen for g in newest] == [T0 + 6, T0 + 5]


def test_the_fingerprint_of_a_log_is_its_groups(path: Path) -> None:
    top = error_groups(open_reader(path), T0, T0 + 100)[0]
    assert fingerprint(top.example_message, top.example_traceback, "accounts") == top.fingerprint
    assert fingerprint("lookup 1 failed at 0x2 from 1.2.3.4", traceback(line=1), "accounts") == top.fingerprint
    assert fingerprint("lookup 1 failed", traceback(kind="OSError"), "accounts") != \
        fingerprint("lookup 1 failed", traceback(), "accounts")


def test_normalising_replaces_ids_uuids_quoted_values_and_paths_with_numbers() -> None:
    text = ("user 'bob' job 550e8400-e29b-41d4-a716-446655440000 file /tmp/run_42/out.log "
            'req deadbeefcafe1234 "quoted 7" took 12.5ms')
    assert normalise_message(text) == "user '<str>' job <uuid> file /tmp/run_<n>/out.log req <id> \"<str>\" took <n>ms"


def test_an_installed_plugins_frames_count_as_its_own() -> None:
    tb = traceback(library="/srv/app/.venv/lib/python3.11/site-packages/accounts/core.py")
    assert parse_traceback(tb, "", "accounts")[1][-1] == "core.py:decode"
    assert parse_traceback(tb, "", "other")[1][-1] == "accounts.py:load_user"


def test_a_traceback_of_blank_lines_is_parsed_in_linear_time() -> None:
    """``^\\s*File`` ran over every following blank line from each line start: 64 KiB of newlines took 7 s."""
    started = time.perf_counter()
    assert parse_traceback("\n" * 200_000 + " \t\n" * 100_000, "boom") == (None, ())
    assert time.perf_counter() - started < 2.0

"""Hostile values through every way in: each is refused with a ValueError / 400 / exit 2 naming the argument,
or stored and read back exactly (or with the documented, visible change); the writer never dies, a bad row
never costs other rows, and memory stays bounded.

Sizes: the 100,000 distinct plugin ids run as 20,000 in CI and as 100,000 with PMON_RELIABILITY_FULL=1;
the store the console commands are timed on holds 20,000 / 100,000 plugins likewise.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from reliability_helpers import REPO, size
from sqlite_rows import rows as read

from pmon import Monitor, validate
from pmon.cli import main
from pmon.cli_record import record

sys.path.insert(0, str(REPO / "tests" / "api"))
from api_helpers import running_api  # noqa: E402

pytestmark = pytest.mark.reliability

if "record" not in main.commands:
    main.add_command(record)

TEN_MB = 10 * 1024 * 1024
LIMIT = 65_536  # the default max_text_bytes
PMON = str(Path(sys.executable).with_name("pmon"))


def cli(db: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(main, ["--db", str(db), "record", *args], input=input, catch_exceptions=False)


def healthy(monitor: Monitor) -> None:
    """The writer is alive, nothing failed, nothing was dropped."""
    status = monitor.status()
    assert status["writer_running"] and status["write_errors"] == 0 and status["dropped"] == 0, status


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "pmon.db"


@pytest.fixture
def monitor(db: Path):
    # a long flush_interval: every row of a test lands in one batch, so a bad one would poison the rest
    m = Monitor(db, flush_interval=30, sample_interval=0)
    yield m
    m.stop_monitoring()


# -- numbers -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 10**400, -(10**5000), float("1e309")],
                         ids=["nan", "inf", "-inf", "10**400", "-10**5000", "1e309"])
def test_numbers_a_float_cannot_hold_are_refused_naming_the_argument(monitor: Monitor, db: Path, bad) -> None:
    monitor.record_log("p", "info", "before")
    calls = {
        "value": lambda: monitor.record_metric("p", "cpu_usage", bad),
        "snapshot_data['cpu_usage']": lambda: monitor.create_snapshot("p", {"cpu_usage": bad}),
        "snapshot_data['request_count']": lambda: monitor.create_snapshot("p", {"request_count": bad}),
        "timestamp": lambda: monitor.record_log("p", "info", "x", timestamp=bad),
    }
    for argument, call in calls.items():
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{argument}: ") and len(message) < 300, message
        assert "finite" in message or "too large" in message or "outside" in message, message
    monitor.record_log("p", "info", "after")
    assert monitor.flush()
    assert read(db, "SELECT message FROM plugin_logs ORDER BY id") == [("before",), ("after",)]
    healthy(monitor)


def test_integers_at_and_past_64_bits_are_stored_as_the_nearest_float(monitor: Monitor, db: Path) -> None:
    values = [2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1, 10**300, 2**53 + 1]
    for value in values:
        monitor.record_metric("p", "throughput", value)
    assert monitor.flush()
    stored = read(db, "SELECT value, typeof(value) FROM plugin_metrics ORDER BY id")
    assert stored == [(float(value), "real") for value in values]  # a REAL column: 64-bit floats, 53-bit mantissa
    healthy(monitor)


def test_negative_zero_reads_back_as_zero_and_keeps_its_sign_in_json(monitor: Monitor, db: Path) -> None:
    monitor.record_metric("p", "throughput", -0.0, metadata={"z": -0.0})
    assert monitor.flush()
    [(value, metadata)] = read(db, "SELECT value, metadata FROM plugin_metrics")
    assert value == 0.0 and math.copysign(1.0, value) == 1.0  # SQLite writes an integral REAL as an integer
    assert math.copysign(1.0, json.loads(metadata)["z"]) == -1.0


def test_a_snapshot_request_count_is_a_64_bit_integer_or_a_clear_error(monitor: Monitor, db: Path) -> None:
    # 2**63 used to reach the writer, whose OverflowError killed its thread: this row and every later one lost
    monitor.record_log("p", "info", "same batch, before")
    monitor.create_snapshot("p", {"request_count": 2**63 - 1})
    monitor.create_snapshot("p", {"request_count": -(2**63)})
    for bad in (2**63, 2**64, -(2**63) - 1, 1e19):
        with pytest.raises(ValueError, match=r"^snapshot_data\['request_count'\]: .* outside -2\*\*63\.\.2\*\*63-1"):
            monitor.create_snapshot("p", {"request_count": bad})
    monitor.record_log("p", "info", "same batch, after")
    assert monitor.flush(timeout=10)
    assert read(db, "SELECT request_count FROM performance_snapshots ORDER BY id") == [(2**63 - 1,), (-(2**63),)]
    assert len(read(db, "SELECT id FROM plugin_logs")) == 2
    healthy(monitor)


def test_numbers_inside_json_are_kept_exactly_or_as_named_strings(monitor: Monitor, db: Path) -> None:
    huge = 10**5000  # past Python's 4,300-digit str() limit: json.dumps cannot write it
    context = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "big": 2**64, "neg": -(2**63) - 1,
               "huge": huge, "list": [math.nan, 2**70]}
    monitor.record_log("p", "info", "numbers", context=context)
    assert monitor.flush()
    [(text,)] = read(db, "SELECT context FROM plugin_logs")
    stored = json.loads(text)
    assert stored == {"nan": "nan", "inf": "inf", "-inf": "-inf", "big": 2**64, "neg": -(2**63) - 1,
                      "huge": hex(huge), "list": ["nan", 2**70]}
    assert int(stored["huge"], 16) == huge


# -- text --------------------------------------------------------------------------------------------------------

def test_empty_and_nul_bearing_text_reads_back_exactly(monitor: Monitor, db: Path) -> None:
    nul = "a\x00b\x00"
    monitor.record_log("p", "info", "", context={})
    monitor.record_log("p", "info", nul, context={"k\x00": nul}, traceback=nul)
    monitor.record_event("p", "t\x00", nul, "info", data={"v": nul})
    monitor.record_event("p", "x", "", "info")
    assert monitor.flush()
    assert read(db, "SELECT message, context, traceback FROM plugin_logs ORDER BY id") == [
        ("", "{}", None), (nul, json.dumps({"k\x00": nul}, ensure_ascii=False), nul)]
    events = read(db, "SELECT event_type, description, data FROM plugin_events ORDER BY id")
    assert events[0][:2] == ("t\x00", nul) and json.loads(events[0][2]) == {"v": nul}
    assert events[1][1] == ""
    healthy(monitor)


def test_lone_surrogates_anywhere_become_u_fffd_and_cost_no_other_row(monitor: Monitor, db: Path) -> None:
    lone = "x\ud800y\udfffz"
    monitor.record_log("p", "info", "clean before")
    monitor.record_log("p", "info", lone, context={lone: lone}, traceback=lone)
    monitor.record_event("p", "t\udc80", lone, "info", data={"k": [lone]})
    monitor.record_metric("p", "cpu_usage", 1.0, metadata={lone: 1})
    # a snapshot's dicts are not strings of the row: their lone surrogates used to kill the writer thread
    monitor.create_snapshot("p", {"custom_metrics": {lone: lone}, "disk_io": {"d": "\ud83d"}})
    monitor.record_log("p", "info", "clean after")
    assert monitor.flush(timeout=10)
    fixed = "x\ufffdy\ufffdz"
    assert read(db, "SELECT message, context, traceback FROM plugin_logs ORDER BY id") == [
        ("clean before", None, None), (fixed, json.dumps({fixed: fixed}, ensure_ascii=False), fixed),
        ("clean after", None, None)]
    [(event_type, description, data)] = read(db, "SELECT event_type, description, data FROM plugin_events")
    assert (event_type, description, json.loads(data)) == ("t\ufffd", fixed, {"k": [fixed]})
    assert json.loads(read(db, "SELECT metadata FROM plugin_metrics")[0][0]) == {fixed: 1}
    [(custom, disk)] = read(db, "SELECT custom_metrics, disk_io FROM performance_snapshots")
    assert json.loads(custom) == {fixed: fixed} and json.loads(disk) == {"d": "\ufffd"}
    healthy(monitor)


def test_ten_megabyte_text_is_cut_with_a_visible_marker(monitor: Monitor, db: Path) -> None:
    big = "é" * (TEN_MB // 2)  # 10 MiB of UTF-8
    monitor.record_log("p", "error", big, context={"blob": big, "keep": 1}, traceback=big)
    monitor.record_event("p", "crash", big, "critical", data={"blob": big})
    monitor.record_metric("p", "cpu_usage", 1.0, metadata={"blob": big})
    monitor.create_snapshot("p", {"custom_metrics": {"blob": big}})
    assert monitor.flush(timeout=30)
    [(message, context, traceback)] = read(db, "SELECT message, context, traceback FROM plugin_logs")
    for text in (message, traceback):
        kept, _, marker = text.partition("\n…[pmon: truncated ")
        assert kept == "é" * (LIMIT // 2) and marker == f"{TEN_MB - LIMIT} bytes]"
    stored_json = [context, *(row[0] for row in read(db, "SELECT data FROM plugin_events")),
                   *(row[0] for row in read(db, "SELECT metadata FROM plugin_metrics")),
                   *(row[0] for row in read(db, "SELECT custom_metrics FROM performance_snapshots"))]
    for text in stored_json:
        replaced = json.loads(text)  # still a JSON object, visibly cut, holding its beginning
        assert set(replaced) == {"pmon_truncated", "head"}, text[:200]
        assert replaced["pmon_truncated"].startswith("[pmon: truncated ")
        assert replaced["head"].startswith('{"blob": "éé')
        assert len(text.encode()) <= LIMIT
    healthy(monitor)


def test_text_and_keys_of_odd_types_are_stored_as_text(monitor: Monitor, db: Path) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        def __str__(self) -> str:
            raise RuntimeError("no str")

    context = {7: "int", 2.5: "float", None: "none", False: "bool", (1, "a"): "tuple", "v": Hostile(),
               "s": {1, 2}.__class__.__name__}
    monitor.record_log("p", "info", 10**5000, context=context)  # an int message past the str() limit
    with pytest.raises(ValueError, match=r"^message: str\(\) of the Hostile raised RuntimeError"):
        monitor.record_log("p", "info", Hostile())
    with pytest.raises(ValueError, match=r"^plugin_id: \['p'\] is not allowed"):
        monitor.record_log(["p"], "info", "x")  # unhashable: a ValueError, not a TypeError
    with pytest.raises(ValueError, match=r"^value: 'x{79}… is not a number"):
        monitor.record_metric("p", "cpu_usage", "x" * TEN_MB)  # the error quotes 80 characters, not 10 MB
    assert monitor.flush()
    [(message, stored)] = read(db, "SELECT message, context FROM plugin_logs")
    assert message == hex(10**5000)  # exact, and int(message, 16) gives it back
    assert json.loads(stored) == {"7": "int", "2.5": "float", "null": "none", "false": "bool", "(1, 'a')": "tuple",
                                  "v": "<Hostile whose repr() raised RuntimeError>", "s": "set"}


# -- pmon record and the HTTP API ---------------------------------------------------------------------------------

def test_pmon_record_refuses_or_stores_the_same_values(db: Path, tmp_path: Path) -> None:
    for value in ("nan", "inf", "-inf", "1e309"):
        result = cli(db, "metric", "p", "cpu_usage", value)
        assert result.exit_code == 2 and result.stderr.startswith("pmon: value: ") and "finite" in result.stderr
    result = cli(db, "snapshot", "p", input=json.dumps({"request_count": 2**64}))
    assert result.exit_code == 2 and result.stderr.startswith("pmon: snapshot_data['request_count']: ")
    assert cli(db, "metric", "p", "throughput", str(2**64)).exit_code == 0
    assert cli(db, "log", "p", "info", "", "--context", '{"n": NaN, "big": 18446744073709551616}').exit_code == 0
    big = tmp_path / "traceback.txt"
    big.write_text("T" * TEN_MB)
    assert cli(db, "log", "p", "error", "big", "--traceback-file", str(big)).exit_code == 0
    assert read(db, "SELECT value FROM plugin_metrics") == [(2.0**64,)]
    (empty, context, _), (_, _, traceback) = read(db, "SELECT message, context, traceback FROM plugin_logs ORDER BY id")
    assert empty == "" and json.loads(context) == {"n": "nan", "big": 2**64}
    assert traceback.endswith(f"[pmon: truncated {TEN_MB - LIMIT} bytes]")
    # undecodable bytes in argv arrive as lone surrogates (surrogateescape): stored as U+FFFD, exit 0
    done = subprocess.run([PMON.encode(), b"--db", str(db).encode(), b"record", b"log", b"p", b"info", b"a\xffb"],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert read(db, "SELECT message FROM plugin_logs ORDER BY id DESC LIMIT 1") == [("a\ufffdb",)]


def test_http_ingest_refuses_or_stores_the_same_values(tmp_path: Path) -> None:
    with running_api(tmp_path / "api.db") as api:
        for raw in (b'{"metric_type": "cpu_usage", "value": NaN}', b'{"metric_type": "cpu_usage", "value": Infinity}',
                    b'{"metric_type": "cpu_usage", "value": 1e400}'):
            reply = api.post("/plugins/web/metrics", raw=raw)
            assert reply.status == 400 and reply.body["field"] in ("body", "value"), reply.body
            assert "NaN" in reply.body["error"] or "finite" in reply.body["error"], reply.body
        reply = api.post("/plugins/web/snapshots", {"request_count": 2**64})
        assert reply.status == 400 and "request_count" in reply.body["error"], reply.body
        lone_and_nul = b'{"level": "info", "message": "a\\ud800\\u0000b", "context": {"\\udfff": "\\u0000"}}'
        assert api.post("/plugins/web/logs?wait=1", raw=lone_and_nul).status == 201
        assert api.post("/plugins/web/metrics?wait=1", {"metric_type": "throughput", "value": 2**64}).status == 201
        assert api.post("/plugins/web/logs", {"level": "info", "message": "x" * TEN_MB}).status == 413
        assert read(api.db, "SELECT message, context FROM plugin_logs") == [("a\ufffd\x00b", '{"\ufffd": "\\u0000"}')]
        assert read(api.db, "SELECT value FROM plugin_metrics WHERE metric_type = 'throughput'") == [(2.0**64,)]
        healthy(api.monitor)
        assert api.get("/status").body["api"]["responses_5xx"] == 0


# -- memory and many plugins ---------------------------------------------------------------------------------------

def _child(code: str, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line (peak RSS read from /proc, not ru_maxrss)."""
    prelude = textwrap.dedent("""
        import json, sys
        def peak_mb():
            with open("/proc/self/status") as fh:
                return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    """)
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ten_megabyte_values_keep_memory_bounded(tmp_path: Path) -> None:
    # 200 logs of 10 MiB message + traceback + context each would be 6 GiB kept in the caches and the queue
    report = _child(f"""
        from pmon import Monitor
        m = Monitor({str(tmp_path / "mem.db")!r}, flush_interval=0.2, sample_interval=0)
        big = "x" * {TEN_MB}
        m.record_log("p", "info", "warm up"); m.flush()
        before = peak_mb()
        for i in range(200):
            m.record_log("p", "error", big, context={{"blob": big}}, traceback=big)
        ok = m.flush(60)
        print(json.dumps({{"ok": ok, "before": before, "after": peak_mb(), "status": m.status()}}))
    """)
    assert report["ok"] and report["status"]["rows_written"]["logs"] == 201
    assert report["after"] - report["before"] < 150, report  # 200 x 3 x 64 KiB kept: ~40 MB, plus working space


def test_a_runaway_plugin_id_generator_hits_a_documented_cap(tmp_path: Path) -> None:
    ids = size(20_000, 100_000)
    cap = validate.MAX_PLUGIN_IDS
    report = _child(f"""
        import logging, time
        from pmon import Monitor, validate
        warnings = []
        class Collect(logging.Handler):
            def emit(self, record):
                warnings.append(record.getMessage())
        logging.getLogger("pmon.monitor").addHandler(Collect())
        m = Monitor({str(tmp_path / "ids.db")!r}, flush_interval=0.2, sample_interval=0)
        m.record_metric("host", "cpu_usage", 1); m.flush()
        start = peak_mb()
        for i in range({cap} - 1):
            m.record_metric(f"req-{{i}}", "cpu_usage", 1.0)
        m.flush()
        at_cap = peak_mb()
        started = time.perf_counter()
        for i in range({cap} - 1, {ids}):
            m.record_metric(f"req-{{i}}", "cpu_usage", 1.0)
            m.record_log(f"req-{{i}}", "info", "refused too")
        refused_ns = (time.perf_counter() - started) / max(1, 2 * ({ids} - {cap} + 1)) * 1e9
        m.record_metric("host", "cpu_usage", 2)  # a known id still records
        m.track(f"req-{ids}")(lambda: None)()    # so does a tracked call's function; its rows are dropped
        ok = m.flush(60)
        print(json.dumps({{"ok": ok, "start": start, "at_cap": at_cap, "end": peak_mb(), "refused_ns": refused_ns,
                          "status": m.status(), "warnings": warnings}}))
    """)
    status = report["status"]
    refused = 2 * (ids - cap + 1) + 1  # the tracked call's response time too
    assert report["ok"] and status["plugins_seen"] == cap and status["plugins_max"] == cap
    assert status["plugin_overflow_rows"] == refused and status["plugin_overflow_last"] == f"req-{ids}"
    assert status["rows_written"]["metrics"] == cap + 1 and status["write_errors"] == 0 and status["dropped"] == 0
    assert len(report["warnings"]) == 1 and "10,000 distinct plugin ids" in report["warnings"][0]
    assert report["end"] - report["at_cap"] < 10, report  # nothing is kept per refused id
    assert report["at_cap"] - report["start"] < 60, report  # 10,000 plugins' ids, series and cached rows
    assert report["refused_ns"] < 50_000, report
    assert read(tmp_path / "ids.db", "SELECT count(*) FROM plugins") == [(cap,)]


def test_console_commands_answer_with_many_plugins_in_the_store(tmp_path: Path) -> None:
    # the cap is per monitor: many processes (cron `pmon record`, restarts) can still fill a store with plugins
    db = tmp_path / "many.db"
    plugins = size(20_000, 100_000)
    _child(f"""
        from pmon import Monitor
        for start in range(0, {plugins}, 10_000):
            m = Monitor({str(db)!r}, flush_interval=0.5, sample_interval=0)
            for i in range(start, min({plugins}, start + 10_000)):
                m.record_metric(f"req-{{i:06d}}", "cpu_usage", i % 100)
            assert m.stop_monitoring()
        print("{{}}")
    """)
    (tmp_path / "pmon.toml").write_text("")
    env = {**os.environ, "PMON_CONFIG": str(tmp_path / "pmon.toml")}
    env.pop("PMON_DB", None)
    timings = {}
    for command in (["plugins", "--json"], ["status", "--json"], ["status"]):
        started = time.perf_counter()
        done = subprocess.run([PMON, "--db", str(db), *command], capture_output=True, text=True, timeout=120,
                              env=env, cwd=tmp_path)
        timings[" ".join(command)] = time.perf_counter() - started
        assert done.returncode == 0, done.stderr
        if command == ["plugins", "--json"]:
            assert len(json.loads(done.stdout)) == plugins
    assert max(timings.values()) < 30, timings  # here: ~2 s each at 100,000 plugins

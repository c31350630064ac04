"""A database pmon cannot use: one clear line naming the path from every entry point, and the file left as it was.

Damaged, truncated, empty, foreign and newer files, a folder where the file
should be, and files or folders the user may not write (run as ``nobody``:
root ignores permissions). Commands run as real processes on real files; the
recording API runs in this process and must never raise into its host.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_helpers import other_user, run_as
from test_rel_config import run_many

from pmon.monitor import Monitor
from pmon.store.schema import SCHEMA_VERSION

pytestmark = pytest.mark.reliability

ROWS = 3000
COMMANDS = {
    "status": ["status"],
    "logs": ["logs", "--limit", "100000"],
    "export": ["export", "--table", "logs", "--format", "csv"],
    "prune": ["prune", "--older-than", "1s"],
    "collect": ["collect", "--once"],
    "console": [],
}

@pytest.fixture(scope="module")
def pmon_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pmon database: logs and metrics, checkpointed into one file."""
    path = tmp_path_factory.mktemp("source") / "pmon.db"
    monitor = Monitor(path, flush_interval=0.05)
    for i in range(ROWS):
        monitor.record_log(plugin_id="billing", level="info", message=f"{'x' * 200} {i}")
        monitor.record_metric(plugin_id="billing", metric_type="cpu_usage", value=float(i))
    monitor.stop_monitoring()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _damaged(offset: Callable[[int], int], length: int) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        start = offset(len(data))
        noise = random.Random(8).randbytes(length)
        return data[:start] + noise + data[start + length:]
    return damage


BROKEN: dict[str, Callable[[bytes], bytes | None]] = {
    "random bytes over the header": _damaged(lambda size: 0, 100),
    "truncated to a third": lambda data: data[:len(data) // 3 // 4096 * 4096],
    "a text file": lambda data: b"these are my notes, not a database\n" * 30,
    "a folder": lambda data: None,
}
"""Files no SQLite connection can use: every entry point refuses them, nothing is written."""


def make(path: Path, source: Path, variant: str) -> None:
    """The variant at ``path``, with a ``-wal`` and ``-shm`` beside it that must survive."""
    if variant == "a folder":
        path.mkdir()
        return
    if variant == "a newer pmon's database":  # its daemon running: the version change is still in its -wal
        shutil.copy(source, path)
        commit_into_wal(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        return
    if variant == "a newer pmon's database, rollback journal":
        shutil.copy(source, path)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
        return
    if variant == "another program's database":
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
        conn.close()
        return
    path.write_bytes(BROKEN[variant](source.read_bytes()))
    Path(f"{path}-wal").write_bytes(b"not a wal, but not pmon's to delete")
    Path(f"{path}-shm").write_bytes(b"\0" * 32768)


def commit_into_wal(db: Path, statement: str) -> None:
    """Commit ``statement`` and leave it in the -wal beside ``db`` (with its -shm), as while the owner's process runs."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(statement)
    for suffix in ("-wal", "-shm"):
        shutil.copy(f"{db}{suffix}", f"{db.parent}/copy{suffix}")
    conn.close()  # the last connection: it checkpoints and removes both, so the copies go back
    for suffix in ("-wal", "-shm"):
        os.replace(f"{db.parent}/copy{suffix}", f"{db}{suffix}")


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file in ``folder`` with a hash of its bytes ('folder' for folders; a -shm only 'there': it is the
    WAL's shared-memory index, which SQLite's readers write too)."""
    found = {}
    for entry in sorted(folder.iterdir()):
        found[entry.name] = ("folder" if entry.is_dir() else "there" if entry.name.endswith("-shm")
                             else hashlib.sha256(entry.read_bytes()).hexdigest())
    return found


def run_commands(db: Path, names: list[str], cwd: Path) -> dict[str, tuple[object, str]]:
    """Each command on ``db``, all in one process (see ``run_many``): exit code and stderr by name."""
    results = run_many([["--db", str(db), *COMMANDS[name]] for name in names], cwd)
    return {name: (result.returncode, result.stderr) for name, result in zip(names, results)}


def assert_one_line(name: str, result: tuple[object, str], db: Path, *expected: str) -> None:
    code, stderr = result
    shown = f"{name}: exit {code}\n{stderr[-3000:]}"
    assert code == 2 and "Traceback" not in stderr, shown
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pmon: {db}"), shown
    assert any(text in lines[0] for text in expected), shown


def record_without_raising(db: Path) -> dict:
    """Record into ``db`` from this process as a host would: never an exception; the trouble is in status()."""
    monitor = Monitor(db, flush_interval=0.05)
    try:
        monitor.record_metric(plugin_id="billing", metric_type="cpu_usage", value=1.0)
        monitor.record_log(plugin_id="billing", level="error", message="still here")
        assert monitor.flush(timeout=0.3) is False
        return monitor.status()
    finally:
        monitor.stop_monitoring(timeout=0.2)


@pytest.mark.parametrize("variant", [*BROKEN, "a newer pmon's database", "a newer pmon's database, rollback journal",
                                     "another program's database"])
def test_every_entry_point_refuses_a_file_it_cannot_use_and_leaves_it_alone(tmp_path: Path, pmon_db: Path,
                                                                             variant: str) -> None:
    db = tmp_path / "pmon.db"
    make(db, pmon_db, variant)
    before = fingerprint(tmp_path)
    expected = {"random bytes over the header": ("not an SQLite database; pmon will not overwrite it",),
                "truncated to a third": ("malformed (the file is damaged or truncated); pmon will not overwrite it",),
                "a text file": ("not an SQLite database; pmon will not overwrite it",),
                "a folder": ("is a directory",),
                "a newer pmon's database": (f"schema version {SCHEMA_VERSION + 1} is newer",),
                "a newer pmon's database, rollback journal": (f"schema version {SCHEMA_VERSION + 1} is newer",),
                "another program's database": ("an SQLite database of another program (no pmon schema); "
                                               "pmon will not add its tables to it",)}[variant]
    results = run_commands(db, list(COMMANDS), tmp_path)
    for name, result in results.items():
        assert_one_line(name, result, db, *expected)

    assert fingerprint(tmp_path) == before, "a command changed or deleted a file it refused"

    status = record_without_raising(db)
    assert status["write_errors"] >= 1 and status["rows_written"] == {k: 0 for k in status["rows_written"]}
    assert any(text in status["last_error"] for text in expected), status["last_error"]
    assert fingerprint(tmp_path) == before, "the recording API changed or deleted a file it refused"


def test_a_file_damaged_in_its_middle_reads_up_to_the_damage_then_says_so(tmp_path: Path, pmon_db: Path) -> None:
    """SQLite finds the damage only when a query reaches the bad pages: that command says so, in one line."""
    db = tmp_path / "pmon.db"
    db.write_bytes(_damaged(lambda size: size // 2 // 4096 * 4096, 8192)(pmon_db.read_bytes()))
    main_file = hashlib.sha256(db.read_bytes()).hexdigest()
    results = run_commands(db, ["status", "logs", "export"], tmp_path)
    assert results["status"][0] == 0, results["status"]  # the counts and plugins do not reach the damage
    for name in ("logs", "export"):
        assert_one_line(name, results[name], db, "database disk image is malformed (the file is damaged")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == main_file, "a reader wrote to the file"
    result = run_commands(db, ["prune"], tmp_path)["prune"]
    assert_one_line("prune", result, db, "the file is damaged; pmon leaves it as it is")
    assert db.exists()


def test_an_empty_file_is_an_empty_database(tmp_path: Path) -> None:
    """Zero bytes hold nothing to lose: readers say there is no schema yet, and recording creates it."""
    db = tmp_path / "pmon.db"
    db.touch()
    results = run_commands(db, ["status", "logs", "export", "prune"], tmp_path)
    for name, result in results.items():
        assert_one_line(name, result, db, "not a pmon database (no schema yet)")
    assert db.stat().st_size == 0, "a reader or prune initialised the file"
    monitor = Monitor(db, flush_interval=0.05)
    monitor.record_metric(plugin_id="billing", metric_type="cpu_usage", value=1.0)
    assert monitor.flush(timeout=5.0)
    monitor.stop_monitoring()
    assert run_commands(db, ["status"], tmp_path)["status"][0] == 0


# -- files and folders this user may not write ------------------------------------------------------------------

@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder under /tmp that ``nobody`` can reach (pytest's tmp_path lives in a folder only root may enter)."""
    folder = Path(tempfile.mkdtemp(prefix="pmon-rel-files-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


NOBODY_PROBE = """
import contextlib, io, json, sys, traceback
from pathlib import Path
from pmon.cli import main
from pmon.monitor import Monitor
from pmon.tui.reader import ConsoleReader
db = sys.argv[1]
out = {}
for name, args in json.loads(sys.argv[2]).items():
    err, std = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        try:
            main(["--db", db, *args], prog_name="pmon")
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc()
            code = "raised"
    out[name] = [code, err.getvalue(), std.getvalue()[-2000:]]
reader = ConsoleReader(Path(db))
try:
    with reader._lock:
        conn = reader._connection()
        out["console reader"] = [0, "", str(conn.execute("SELECT count(*) FROM plugin_logs").fetchone()[0])]
except Exception as exc:
    out["console reader"] = [2, f"{type(exc).__name__}: {exc}", ""]
monitor = Monitor(db, flush_interval=0.05)
try:
    monitor.record_metric(plugin_id="billing", metric_type="cpu_usage", value=1.0)
    flushed = monitor.flush(timeout=0.3)
    out["monitor"] = [flushed, monitor.status()]
except BaseException as exc:
    out["monitor"] = ["raised", repr(exc)]
finally:
    monitor.stop_monitoring(timeout=0.2)
print(json.dumps(out))
"""


def as_nobody(db: Path, names: list[str]) -> dict:
    user = other_user()
    if user is None:
        pytest.skip("no unprivileged user to run as, and root may write any file")
    commands = {name: COMMANDS[name] for name in names}
    done = run_as(user, f"import sys; sys.argv = ['probe', {str(db)!r}, {json.dumps(commands)!r}]\n{NOBODY_PROBE}",
                  timeout=120, env={"PMON_CONFIG": "", "PMON_DB": ""}, cwd="/tmp")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def read_only_copy(folder: Path, source: Path, *, with_wal: bool) -> Path:
    """``source`` copied to ``folder/pmon.db`` owned by root, 0644; with ``with_wal`` a live -wal and -shm beside it
    (as while the owner's daemon runs), holding one more log."""
    db = folder / "pmon.db"
    shutil.copy(source, db)
    if with_wal:
        commit_into_wal(db, "INSERT INTO plugin_logs (plugin_id, level, message, timestamp) VALUES ('billing', "
                            "'info', 'only in the wal', 1)")
    for path in folder.iterdir():
        path.chmod(0o644)
    return db


def assert_monitor_kept_going(result: list, db: Path) -> None:
    flushed, status = result
    assert flushed is False, result
    assert status["write_errors"] >= 1 and status["queue_depth"] >= 1 and status["db_path"] == str(db), status
    assert "readonly" in status["last_error"] or "read-only" in status["last_error"], status


def test_a_folder_the_user_cannot_write_with_the_owner_writing(shared_dir: Path, pmon_db: Path) -> None:
    """The owner's daemon runs (-wal and -shm exist): another user reads everything, the WAL's rows included."""
    folder = shared_dir / "data"
    folder.mkdir()
    db = read_only_copy(folder, pmon_db, with_wal=True)
    folder.chmod(0o755)
    before = fingerprint(folder)
    out = as_nobody(db, ["status", "logs", "prune", "collect"])
    assert out["status"][0] == 0 and f"logs {ROWS + 1:,}" in out["status"][2], out["status"]
    assert out["logs"][0] == 0 and "only in the wal" in out["logs"][2], out["logs"]
    assert out["console reader"] == [0, "", str(ROWS + 1)]
    assert_one_line("prune", tuple(out["prune"][:2]), db, "read-only", "readonly")
    assert_one_line("collect", tuple(out["collect"][:2]), db, "cannot write, read-only for this user")
    assert_monitor_kept_going(out["monitor"], db)
    assert fingerprint(folder) == before


def test_a_read_only_file_in_a_folder_the_user_can_write(shared_dir: Path, pmon_db: Path) -> None:
    """SQLite makes the -shm it needs to read; writing is refused with the path (`pmon collect` at once: open_writer
    tries a write transaction), recording buffers and counts."""
    folder = shared_dir / "data"
    folder.mkdir()
    db = read_only_copy(folder, pmon_db, with_wal=False)
    folder.chmod(0o777)
    main_file = hashlib.sha256(db.read_bytes()).hexdigest()
    out = as_nobody(db, ["status", "logs", "prune", "collect"])
    assert out["status"][0] == 0 and f"logs {ROWS:,}" in out["status"][2], out["status"]
    assert out["logs"][0] == 0, out["logs"]
    assert out["console reader"] == [0, "", str(ROWS)]
    assert_one_line("prune", tuple(out["prune"][:2]), db, "read-only for this user")
    assert_one_line("collect", tuple(out["collect"][:2]), db, "cannot write, read-only for this user")
    assert_monitor_kept_going(out["monitor"], db)
    assert "cannot write, read-only for this user" in out["monitor"][1]["last_error"], out["monitor"]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == main_file


def test_a_folder_the_user_cannot_write_after_the_owner_stopped(shared_dir: Path, pmon_db: Path) -> None:
    """No -wal or -shm (the owner's last connection removed them): writes are refused with the path, recording
    buffers and counts; readers fall back to an immutable read of the main file, which holds every commit."""
    folder = shared_dir / "data ?#%25"  # the immutable read's URI quotes the path
    folder.mkdir()
    db = read_only_copy(folder, pmon_db, with_wal=False)
    folder.chmod(0o755)
    before = fingerprint(folder)
    out = as_nobody(db, ["status", "prune", "collect"])
    assert_one_line("prune", tuple(out["prune"][:2]), db, "read-only", "readonly")
    assert_one_line("collect", tuple(out["collect"][:2]), db, "Permission denied", "readonly")
    assert_monitor_kept_going(out["monitor"], db)
    assert fingerprint(folder) == before
    code, stderr, stdout = out["status"]
    assert code == 0 and f"logs {ROWS:,}" in stdout, out["status"]
    assert out["console reader"] == [0, "", str(ROWS)]

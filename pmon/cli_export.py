"""`pmon export`: one table to JSON, NDJSON or CSV, streamed in constant memory.

Rows are read in id order a batch at a time (``pmon.store.export_queries``) and
written as they arrive, so a table of any size exports with flat memory.
Timestamps are ISO 8601 UTC with milliseconds (``2026-11-26T06:30:01.123Z``)
in every format. Columns that hold JSON text (metadata, context, data, disk_io,
network_io, custom_metrics) are nested values in JSON/NDJSON and the stored
JSON text in CSV.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import click

from pmon import timespec
from pmon.store.export_queries import EXPORT_TABLES, ExportTable, iter_export_rows

EXPORT_FORMATS = ("json", "ndjson", "csv")


class _IsoUtc:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ``; remembers the last second (rows come in time runs)."""

    def __init__(self) -> None:
        self._second: int | None = None
        self._prefix = ""

    def __call__(self, ts: Any) -> Any:
        if not isinstance(ts, (int, float)) or isinstance(ts, bool):
            return ts  # NULL, or a value that is not a time: passed through unchanged
        try:
            second, milli = divmod(round(ts * 1000), 1000)
            if second != self._second:
                self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
                self._second = second
        except (OverflowError, OSError, ValueError):
            return ts
        return f"{self._prefix}.{milli:03d}Z"


def iso_utc(ts: Any) -> Any:
    """One epoch-seconds timestamp as ISO 8601 UTC with milliseconds (``2026-11-26T06:30:01.123Z``)."""
    return _IsoUtc()(ts)


def _decode_json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _row_converter(spec: ExportTable, decode_json: bool) -> Callable[[tuple[Any, ...]], list[Any]]:
    ts_index = spec.columns.index("timestamp")
    json_indexes = [spec.columns.index(c) for c in spec.json_columns] if decode_json else []
    to_iso = _IsoUtc()

    def convert(row: tuple[Any, ...]) -> list[Any]:
        out = list(row)
        out[ts_index] = to_iso(out[ts_index])
        for i in json_indexes:
            out[i] = _decode_json(out[i])
        return out

    return convert


def write_export(rows: Iterable[tuple[Any, ...]], spec: ExportTable, fmt: str, out: IO[str]) -> int:
    """Write ``rows`` of ``spec`` to ``out`` in ``fmt`` as they come; returns how many were written."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(EXPORT_FORMATS)})")
    convert = _row_converter(spec, decode_json=fmt != "csv")
    columns = spec.columns
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(convert(row))
            count += 1
    elif fmt == "ndjson":
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        for row in rows:
            out.write(dumps(dict(zip(columns, convert(row)))) + "\n")
            count += 1
    else:
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        out.write("[")
        for row in rows:
            out.write(("\n" if count == 0 else ",\n") + dumps(dict(zip(columns, convert(row)))))
            count += 1
        out.write("\n]\n" if count else "]\n")
    return count


def _time_bound(text: str | None, option: str, now: float) -> float | None:
    import pmon.cli

    if text is None:
        return None
    try:
        return timespec.moment(text, now)
    except ValueError as exc:
        raise pmon.cli.UsageProblem(f"{option}: {exc}") from None


def _quiet_broken_pipe() -> None:
    """The reader went away (``| head``): point stdout at /dev/null so the final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


@click.command("export")
@click.option("--table", "table", required=True, type=click.Choice(list(EXPORT_TABLES)),
              help="Which table: metrics, logs, events or snapshots.")
@click.option("--format", "fmt", required=True, type=click.Choice(list(EXPORT_FORMATS)),
              help="json (one array), ndjson (one object a line) or csv (with a header row).")
@click.option("--since", default=None, metavar="WHEN",
              help="Only rows at or after: a duration ago (30m, 2h, 7d) or an ISO time (default: the first).")
@click.option("--until", default=None, metavar="WHEN", help="Only rows before this time (default: no end).")
@click.option("--plugin", "plugin", default=None, metavar="ID", help="Only this plugin's rows.")
@click.option("-o", "--output", "output", default=None, metavar="FILE",
              help="Write to FILE (replaced atomically when the export is complete) instead of stdout.")
def export_command(table: str, fmt: str, since: str | None, until: str | None, plugin: str | None,
                   output: str | None) -> None:
    """Export one table as JSON, NDJSON or CSV, streamed in constant memory.

    Rows come in id order; timestamps are ISO 8601 UTC (2026-11-26T06:30:01.123Z)
    in every format. JSON columns (metadata, context, data, disk_io, ...) are
    nested values in json/ndjson and JSON text in csv. Filters: --since (inclusive),
    --until (exclusive), --plugin.

    \b
    Example:
      pmon export --table metrics --format csv --since 24h -o metrics.csv
      pmon export --table logs --format ndjson --plugin billing | head
      pmon export --table events --format json --since 2026-11-26T00:00Z --until 2026-11-27T00:00Z
    """
    import pmon.cli
    from pmon.store.schema import StoreError, open_reader

    now = time.time()
    start = _time_bound(since, "--since", now)
    end = _time_bound(until, "--until", now)
    if start is not None and end is not None and start >= end:
        raise pmon.cli.UsageProblem(f"--since ({since}) must be before --until ({until})")
    db_path = click.get_current_context().find_object(pmon.cli.Context).db_path
    try:
        conn = open_reader(db_path)
    except StoreError as exc:
        raise pmon.cli.UsageProblem(str(exc)) from None
    spec = EXPORT_TABLES[table]
    rows = iter_export_rows(conn, table, since=start, until=end, plugin_id=plugin)
    try:
        if output is None or output == "-":
            try:
                write_export(rows, spec, fmt, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:
                _quiet_broken_pipe()
        else:
            _write_file_atomically(Path(output), lambda out: write_export(rows, spec, fmt, out))
    finally:
        rows.close()
        conn.close()


def _write_file_atomically(path: Path, write: Callable[[IO[str]], Any]) -> None:
    import pmon.cli

    target = path.expanduser()
    try:
        fd, temp_name = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".",
                                         prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise pmon.cli.UsageProblem(f"{path}: cannot write here ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="", buffering=1 << 20) as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o644 & ~_umask())
        os.replace(temp_name, target)
    except BaseException as exc:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise pmon.cli.UsageProblem(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

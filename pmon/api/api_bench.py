"""`pmon bench --api`: the HTTP API's figures, measured on a real daemon with a loopback load generator.

The daemon runs as in production (``pmon collect --foreground --api
127.0.0.1:0`` in a subprocess, sampling two plugins and the system every
second); the load comes from a separate spawned process, so the client never
shares the server's GIL. Each figure stands beside a baseline measured in the
same run:

- batch ingest (1,000 records a request), counted as records *committed* to
  the SQLite file: three times the writer's buffer per repeat, the last
  request with ``?wait=1``, the rows counted in the store afterwards; a 503
  (buffer full) is sent again after its Retry-After, as a client should. The
  baseline is in-process ``Monitor.record_metric`` + ``flush()`` of as many
  records: the ceiling any transport sits under;
- single-record POSTs over keep-alive connections, and the latency of an
  open-loop load (requests scheduled at fixed times; latency counts from the
  scheduled time, so a stalled server cannot hide its stall by delaying the
  next send: no coordinated omission); the baseline is the same load against
  a bare aiohttp handler in its own process;
- the daemon's sampling schedule over the whole loaded span, read back from
  what it recorded (tick starts: the ``system`` plugin's ``cpu_usage``
  timestamps; durations: ``pmon.sample_ms``), against an idle window of the
  same daemon.

The phases run in that order (open loop, single POSTs, batches), so the
latency figure is the steady 1,000 req/s one, not the daemon digesting the
batches' backlog. Every response status is checked and every accepted record
counted in the file; a figure whose load met errors says so in its name and
is not met.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmon.bench import BenchResult

PREFIX = "/api/advanced-monitoring"
SINGLE_BODY = b'{"metric_type":"cpu_usage","value":1.0}'
SLEEPER = "import time\nwhile True: time.sleep(3600)"
LISTENING = re.compile(r"API listening on http://([^\s:]+|\[[^\]]+\]):(\d+)")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
LATE_FRACTION = 0.1
"""A tick is late when it starts more than this fraction of the interval after one interval."""


# -- the lean client -------------------------------------------------------------------------------------------


def http_request(method: str, path: str, host: str, port: int, body: bytes | None = None) -> bytes:
    """One HTTP/1.1 request, encoded once and sent as many times as the load needs."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode("ascii") + b"\r\n" + (body or b"")


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams, sending pre-encoded requests.

    Why not aiohttp's client: measured here it spends ~90 µs of CPU a request
    (building headers, cookie jar, connector bookkeeping) against ~32 µs for
    this one; on a 2-core machine the client and the server share the cores,
    so the heavier client caps the single-POST figure itself (it ran at 97 % of
    a core while the server was the one meant to be measured). This one
    writes the request's bytes, reads the status line and headers up to
    ``\\r\\n\\r\\n``, then ``Content-Length`` bytes (or the chunks); nothing else.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.head = b""
        """The last response's status line and headers, lowercase."""

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send ``raw``; the status and body. Status 0 when the connection failed (it reopens next time)."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            self.head = lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                body = await self.reader.readexactly(int(lower[at + 17:lower.index(b"\r\n", at + 2)]))
            elif b"\r\ntransfer-encoding: chunked" in lower:
                body = await self._chunks()
            else:
                body = b""
            if b"\r\nconnection: close" in lower:
                self.close()
            return status, body
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            return 0, b""

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size + 2))
            parts[-1] = parts[-1][:-2]

    def retry_after(self, default: float = 1.0) -> float:
        """Seconds the last response's ``Retry-After`` asked for (``default`` without one)."""
        at = self.head.find(b"\r\nretry-after:")
        if at < 0:
            return default
        try:
            return float(self.head[at + 14:self.head.index(b"\r\n", at + 2)])
        except ValueError:
            return default

    def close(self) -> None:
        """Hang up (the next request reconnects)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Tally:
    """Statuses seen by a load, and the first unexpected one's body."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    first_error: str = ""

    def check(self, status: int, body: bytes, expected: tuple[int, ...]) -> None:
        self.statuses[status] += 1
        if status not in expected:
            self.errors += 1
            if not self.first_error:
                self.first_error = f"{status or 'connection failed'}: {body[:200].decode(errors='replace')}"

    def as_dict(self) -> dict[str, Any]:
        return {"statuses": dict(self.statuses), "errors": self.errors, "first_error": self.first_error}


# -- the loads (each runs in the load generator's process) -------------------------------------------------------


async def _closed_loop(host: str, port: int, requests: list[bytes], total: int, connections: int,
                       expected: tuple[int, ...]) -> dict[str, Any]:
    """``total`` requests (cycling through ``requests``) over ``connections`` connections, each sending the next
    as soon as its previous answer arrived."""
    tally, sent = Tally(), iter(range(total))
    pool = [Connection(host, port) for _ in range(connections)]
    await asyncio.gather(*(c.request(http_request("GET", f"{PREFIX}/status", host, port)) for c in pool))

    async def worker(conn: Connection) -> None:
        for i in sent:
            status, body = await conn.request(requests[i % len(requests)])
            tally.check(status, body, expected)

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in pool))
    seconds = time.perf_counter() - started
    for c in pool:
        c.close()
    return {"seconds": seconds, "requests": total, **tally.as_dict()}


async def _batch_load(host: str, port: int, body: bytes, requests: int, connections: int,
                      retry_seconds: float | None = None) -> dict[str, Any]:
    """``requests`` batch POSTs (202 once queued), then one ``?wait=1`` (201 once everything is committed).

    A 503 (the writer's buffer is full: nothing was taken) is the server's
    back-pressure, not an error: the request is sent again after
    ``retry_seconds`` (None: after the response's Retry-After) and the time
    it cost stays in the figure.
    """
    tally, refused, sent = Tally(), 0, iter(range(requests))
    pool = [Connection(host, port) for _ in range(connections)]
    await asyncio.gather(*(c.request(http_request("GET", f"{PREFIX}/status", host, port)) for c in pool))

    async def send(conn: Connection, raw: bytes, expected: int) -> None:
        nonlocal refused
        status, answer = await conn.request(raw)
        while status == 503:
            refused += 1
            await asyncio.sleep(conn.retry_after() if retry_seconds is None else retry_seconds)
            status, answer = await conn.request(raw)
        tally.check(status, answer, (expected,))

    async def worker(conn: Connection) -> None:
        queued = http_request("POST", f"{PREFIX}/batch", host, port, body)
        for _ in sent:
            await send(conn, queued, 202)

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in pool))
    await send(pool[0], http_request("POST", f"{PREFIX}/batch?wait=1", host, port, body), 201)
    seconds = time.perf_counter() - started
    for c in pool:
        c.close()
    return {"seconds": seconds, "requests": requests + 1, "refused_503": refused, **tally.as_dict()}


async def _open_loop(host: str, port: int, rate: float, seconds: float, connections: int, plugin_id: str,
                     get_every: int) -> dict[str, Any]:
    """Requests scheduled every ``1 / rate`` s whatever the answers do; latency from the scheduled time.

    Every ``get_every``-th request is a GET (a plugin's latest metrics, or the
    status), the rest single-metric POSTs. A request whose time has come
    waits for a free connection, and that wait counts in its latency.
    """
    loop = asyncio.get_running_loop()
    post = http_request("POST", f"{PREFIX}/plugins/{plugin_id}/metrics", host, port, SINGLE_BODY)
    gets = [http_request("GET", f"{PREFIX}/plugins/{plugin_id}/metrics?limit=10", host, port),
            http_request("GET", f"{PREFIX}/status", host, port)]
    total = int(rate * seconds)
    pool = [Connection(host, port) for _ in range(connections)]
    await asyncio.gather(*(c.request(gets[1]) for c in pool))
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    lags: list[float] = []
    tally = Tally()

    async def worker(conn: Connection) -> None:
        while (item := await due.get()) is not None:
            i, scheduled = item
            lags.append(loop.time() - scheduled)
            if i % get_every == get_every - 1:
                status, body = await conn.request(gets[(i // get_every) % 2])
                tally.check(status, body, (200,))
            else:
                status, body = await conn.request(post)
                tally.check(status, body, (202,))
            latencies.append((loop.time() - scheduled) * 1000)

    workers = [asyncio.create_task(worker(c)) for c in pool]
    start = loop.time() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((i, scheduled))
    for _ in pool:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = loop.time() - start
    for c in pool:
        c.close()
    latencies.sort()
    lags.sort()
    return {"requests": total, "seconds": elapsed, "p50_ms": _quantile(latencies, 0.50),
            "p99_ms": _quantile(latencies, 0.99), "max_ms": latencies[-1] if latencies else 0.0,
            "dispatch_lag_p99_ms": _quantile(lags, 0.99) * 1000, **tally.as_dict()}


def _quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def load_job(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one load in this (the generator's) process: ``closed``, ``batch`` or ``open``."""
    loads: dict[str, Callable[..., Any]] = {"closed": _closed_loop, "batch": _batch_load, "open": _open_loop}
    return asyncio.run(loads[kind](**params))


def inprocess_job(db: str, records: int, plugins: int, chunk: int) -> dict[str, Any]:
    """The baseline for batch ingest: ``Monitor.record_metric`` in chunks, waiting for room like the API's 503,
    then ``flush()``; records committed per second, counted in the file."""
    from pmon.config import Config
    from pmon.monitor import Monitor

    monitor = Monitor(db, config=Config())
    monitor.start_monitoring(sample=False)
    ids = [f"inproc-{k}" for k in range(plugins)]
    record = monitor.record_metric
    record("warmup", "cpu_usage", 1.5)
    monitor.flush()
    started = time.perf_counter()
    for first in range(0, records, chunk):
        while monitor.buffer_room() < chunk:
            time.sleep(0.001)
        for i in range(first, min(records, first + chunk)):
            record(ids[i % plugins], "cpu_usage", 1.5)
    committed = monitor.flush()
    seconds = time.perf_counter() - started
    dropped = monitor.status()["dropped"]
    monitor.stop_monitoring()
    stored = count_points(Path(db), "inproc-%")
    return {"seconds": seconds, "records": records, "stored": stored, "committed": committed, "dropped": dropped}


# -- the bare aiohttp baseline server ----------------------------------------------------------------------------


def serve_bare(ports: Any) -> None:
    """A bare aiohttp server answering the same routes with no checks, store or middleware (runs until killed)."""
    from aiohttp import web

    async def post(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.json_response({"accepted": 1}, status=202)

    async def get(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def main() -> None:
        app = web.Application()
        app.router.add_post(PREFIX + "/plugins/{plugin_id}/metrics", post)
        app.router.add_get("/{tail:.*}", get)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock, backlog=1024).start()
        ports.put(sock.getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the daemon under test ---------------------------------------------------------------------------------------


class DaemonProcess:
    """``pmon collect --foreground --api 127.0.0.1:0`` in a subprocess; its stderr drained by a thread."""

    def __init__(self, tmp: Path, interval: float) -> None:
        self.db = tmp / "api-bench.db"
        self.sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER, "pmon-api-bench-sleeper"])
        config = tmp / "pmon.toml"
        config.write_text(f"[collector]\nsample_interval = {interval}\nsnapshot_interval = 60.0\n\n"
                          f"[plugins.sleeper]\npid = {self.sleeper.pid}\n\n"
                          '[plugins.matched]\ncmdline = "pmon-api-bench-sleeper"\n')
        env = {k: v for k, v in os.environ.items() if k not in ("PMON_API_TOKEN", "PMON_CONFIG", "PMON_DB")}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pmon", "--db", str(self.db), "--config", str(config), "collect",
                 "--foreground", "--api", "127.0.0.1:0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
                text=True)
        except BaseException:
            self.sleeper.kill()
            self.sleeper.wait()
            raise
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.host, self.port = "127.0.0.1", 0
        self._drain = threading.Thread(target=self._read, name="pmon-api-bench-stderr", daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            found = LISTENING.search(line)
            if found and not self._listening.is_set():
                self.host, self.port = found.group(1).strip("[]"), int(found.group(2))
                self._listening.set()
        self._listening.set()

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the daemon logged its API address; RuntimeError with its stderr otherwise."""
        if not self._listening.wait(timeout) or not self.port:
            self.stop()
            raise RuntimeError("the daemon did not start its API:\n" + "\n".join(self.lines[-20:]))

    def stop(self) -> int:
        """SIGTERM, wait, and the exit code (the sleeper goes too)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._drain.join(2.0)
        if self.sleeper.poll() is None:
            self.sleeper.terminate()
        self.sleeper.wait(5)
        return code

    def problems(self) -> list[str]:
        """ERROR / WARNING / traceback lines the daemon logged."""
        return [line for line in self.lines if " ERROR " in line or " WARNING " in line or "Traceback" in line]


def count_points(db: Path, plugin_like: str) -> int:
    """Metric points of the plugins matching a LIKE pattern, committed in the file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM metric_points WHERE series_id IN "
                            "(SELECT id FROM metric_series WHERE plugin_id LIKE ?)", (plugin_like,)).fetchone()[0]
    finally:
        conn.close()


@dataclass(frozen=True)
class Ticks:
    """The daemon's sampling ticks as it recorded them."""

    starts: list[float]
    """Wall time each tick began: the timestamp of its ``system`` ``cpu_usage`` point."""
    durations: list[tuple[float, float]]
    """(wall time the tick ended, its duration in ms): its ``pmon`` ``pmon.sample_ms`` point."""


def tick_points(db: Path) -> Ticks:
    """Every tick the daemon recorded in ``db``."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    query = ("SELECT p.ts_ms, p.value FROM metric_points p JOIN metric_series s ON s.id = p.series_id "
             "WHERE s.plugin_id = ? AND s.metric_type = ? ORDER BY p.ts_ms")
    try:
        starts = [ts / 1000 for ts, _ in conn.execute(query, ("system", "cpu_usage"))]
        durations = [(ts / 1000, ms) for ts, ms in conn.execute(query, ("pmon", "pmon.sample_ms"))]
    finally:
        conn.close()
    return Ticks(starts, durations)


@dataclass(frozen=True)
class Schedule:
    """How the ticks inside one window kept their schedule."""

    ticks: int
    worst_gap_ms: float
    """Longest time between two consecutive tick starts."""
    late: int
    """Ticks that started more than LATE_FRACTION of the interval late, without skipping one."""
    skipped: int
    """Ticks missing from the grid (a gap of ~2 intervals skipped one)."""
    median_tick_ms: float
    max_tick_ms: float


def schedule(ticks: Ticks, window: tuple[float, float], interval: float) -> Schedule:
    """Gaps between consecutive tick starts inside ``window``, and how long those ticks took."""
    start, end = window
    inside = [ts for ts in ticks.starts if start <= ts <= end]
    gaps = [b - a for a, b in zip(inside, inside[1:])]
    durations = [ms for ts, ms in ticks.durations if start <= ts <= end]
    skipped = sum(max(0, round(gap / interval) - 1) for gap in gaps)
    late = sum(1 for gap in gaps if gap > interval * (1 + LATE_FRACTION) and round(gap / interval) <= 1)
    return Schedule(len(inside), max(gaps, default=0.0) * 1000, late, skipped,
                    statistics.median(durations) if durations else 0.0, max(durations, default=0.0))


# -- the run -----------------------------------------------------------------------------------------------------


def _batch_body(plugin_prefix: str, records: int, plugins: int) -> bytes:
    items = [{"plugin_id": f"{plugin_prefix}{i % plugins}", "metric_type": "cpu_usage", "value": 1.5}
             for i in range(records)]
    return json.dumps({"metrics": items}, separators=(",", ":")).encode()


def _named(name: str, errors: int) -> str:
    return f"{name} [{errors} ERRORS]" if errors else name


@dataclass(frozen=True)
class Plan:
    """What `pmon bench --api` sends; the defaults keep a run near a minute and a half."""

    repeats: int = 5
    batch_requests: int = 300
    """Batches per repeat: 300 × 1,000 records is three times the writer's buffer ([monitor] max_buffer), so the
    figure is the sustained rate through the writer, not a burst the buffer absorbs."""
    batch_records: int = 1000
    batch_connections: int = 4
    batch_retry: float | None = None
    """Seconds before a 503'd batch is sent again; None: what the server's Retry-After says, as a client should."""
    single_requests: int = 10_000
    single_connections: int = 8
    open_rate: float = 1000.0
    open_seconds: float = 4.0
    open_connections: int = 16
    idle_seconds: float = 8.0
    interval: float = 1.0
    """The daemon's ``[collector] sample_interval``."""
    plugins: int = 10
    """Plugins the records of a batch are spread over."""


Runs = list[dict[str, Any]]
Load = Callable[..., dict[str, Any]]


def run_api_bench(repeats: int = 5, progress: Callable[[str], None] | None = None,
                  **plan: Any) -> list[BenchResult]:
    """`pmon bench --api`: the rows of the table (medians of ``repeats``); ``plan`` overrides Plan's counts."""
    import importlib.util

    if importlib.util.find_spec("aiohttp") is None:
        raise RuntimeError("pmon bench --api needs aiohttp: pip install 'pmon[api]'")
    p = Plan(repeats=repeats, **plan)
    say = progress or (lambda _: None)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="pmon-bench-api-") as tmp_name, \
            ProcessPoolExecutor(max_workers=1, mp_context=spawn) as generator:
        tmp = Path(tmp_name)

        def load(kind: str, **params: Any) -> dict[str, Any]:
            return generator.submit(load_job, kind, params).result()

        say("starting `pmon collect --foreground --api 127.0.0.1:0` and the load generator")
        daemon = DaemonProcess(tmp, p.interval)
        try:
            daemon.wait_listening()
            host, port = daemon.host, daemon.port
            _warm_up(load, host, port)
            say(f"idle window: {p.idle_seconds:g} s of sampling every {p.interval:g} s with no load")
            time.sleep(max(0.0, 2 * p.interval - 0.5))  # the first ticks start the schedule
            idle = (time.time(), time.time() + p.idle_seconds)
            time.sleep(p.idle_seconds)
            windows: dict[str, tuple[float, float]] = {}
            started = time.time()
            say(f"daemon: {p.repeats} × {p.open_seconds:g} s open loop at {p.open_rate:g} req/s "
                f"({p.open_connections} connections, 1 GET in 20)")
            runs = {"open": _open_phase(load, host, port, p, "bench-o")}
            windows["open loop"] = (started, started := time.time())
            _say_open(say, runs["open"])
            say(f"daemon: {p.repeats} × {p.single_requests:,} single-record POSTs on {p.single_connections} "
                "keep-alive connections")
            runs["single"] = _single_phase(load, host, port, p, "bench-s", daemon.db)
            windows["single POSTs"] = (started, started := time.time())
            _say_closed(say, runs["single"], "requests", "req/s")
            say(f"daemon: {p.repeats} × {p.batch_requests} batches of {p.batch_records:,} records on "
                f"{p.batch_connections} connections, the last with ?wait=1")
            runs["batch"] = _batch_phase(load, host, port, p, daemon.db)
            windows["batches"] = (started, time.time())
            _say_closed(say, runs["batch"], "records", "records/s committed")
        finally:
            code = daemon.stop()
        if code != 0:
            raise RuntimeError(f"the daemon exited {code} on SIGTERM (expected 0):\n" + "\n".join(daemon.lines[-20:]))
        problems = daemon.problems()
        if problems:
            say(f"the daemon logged {len(problems)} warnings / errors, first: {problems[0]}")
        ticks = tick_points(daemon.db)
        at_rest = schedule(ticks, idle, p.interval)
        busy = schedule(ticks, (windows["open loop"][0], windows["batches"][1]), p.interval)
        for name, window in [("idle", idle), *windows.items()]:
            f = schedule(ticks, window, p.interval)
            say(f"sampling during {name}: {f.ticks} ticks, worst gap between starts {f.worst_gap_ms:,.0f} ms, "
                f"{f.late} late, {f.skipped} skipped; tick duration median {f.median_tick_ms:.1f} ms, "
                f"max {f.max_tick_ms:.1f} ms")

        say("baselines: a bare aiohttp handler in its own process (same loads), in-process record_metric")
        bare = _bare_runs(spawn, load, p)
        _say_open(say, bare["open"])
        _say_closed(say, bare["single"], "requests", "req/s")
        inproc = [generator.submit(inprocess_job, str(tmp / f"inproc-{r}.db"), p.batch_requests * p.batch_records,
                                   p.plugins, p.batch_records).result() for r in range(p.repeats)]
    return _rows(runs, bare, inproc, at_rest, busy, p)


def _warm_up(load: Load, host: str, port: int) -> None:
    post = http_request("POST", f"{PREFIX}/plugins/bench-warmup/metrics", host, port, SINGLE_BODY)
    load("closed", host=host, port=port, requests=[post], total=200, connections=2, expected=(202,))


def _open_phase(load: Load, host: str, port: int, p: Plan, plugin: str) -> Runs:
    return [load("open", host=host, port=port, rate=p.open_rate, seconds=p.open_seconds,
                 connections=p.open_connections, plugin_id=f"{plugin}{r}", get_every=20) for r in range(p.repeats)]


def _single_phase(load: Load, host: str, port: int, p: Plan, plugin: str, db: Path | None) -> Runs:
    """Closed-loop single POSTs; with ``db``, a ``?wait=1`` after each repeat and its rows counted in the file."""
    runs = []
    for r in range(p.repeats):
        post = http_request("POST", f"{PREFIX}/plugins/{plugin}{r}/metrics", host, port, SINGLE_BODY)
        figures = load("closed", host=host, port=port, requests=[post], total=p.single_requests,
                       connections=p.single_connections, expected=(202,))
        if db is not None:
            wait = http_request("POST", f"{PREFIX}/plugins/{plugin}{r}/metrics?wait=1", host, port, SINGLE_BODY)
            load("closed", host=host, port=port, requests=[wait], total=1, connections=1, expected=(201,))
            _expect(figures, count_points(db, f"{plugin}{r}"), p.single_requests + 1)
        runs.append(figures)
    return runs


def _batch_phase(load: Load, host: str, port: int, p: Plan, db: Path) -> Runs:
    runs = []
    for r in range(p.repeats):
        body = _batch_body(f"bench-b{r}-", p.batch_records, p.plugins)
        figures = load("batch", host=host, port=port, body=body, requests=p.batch_requests,
                       connections=p.batch_connections, retry_seconds=p.batch_retry)
        figures["records"] = (p.batch_requests + 1) * p.batch_records
        _expect(figures, count_points(db, f"bench-b{r}-%"), figures["records"])
        runs.append(figures)
    return runs


def _expect(figures: dict[str, Any], stored: int, sent: int) -> None:
    """Every record answered 202 / 201 must be in the file: a missing one is an error."""
    figures["stored"] = stored
    if stored != sent:
        figures["errors"] += 1
        figures["first_error"] = figures["first_error"] or f"{stored:,} records in the store, {sent:,} sent"


def _say_open(say: Callable[[str], None], runs: Runs) -> None:
    for f in runs:
        say(f"  p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms, max {f['max_ms']:.1f} ms (waiting for a free "
            f"connection, p99: {f['dispatch_lag_p99_ms']:.2f} ms){_errors(f)}")


def _say_closed(say: Callable[[str], None], runs: Runs, counted: str, unit: str) -> None:
    for f in runs:
        refused = f" ({f['refused_503']} × 503 sent again)" if "refused_503" in f else ""
        say(f"  {f[counted] / f['seconds']:,.0f} {unit}{refused}{_errors(f)}")


def _errors(figures: dict[str, Any]) -> str:
    return f"; {figures['errors']} ERRORS, first: {figures['first_error']}" if figures["errors"] else ""


def _bare_runs(spawn: Any, load: Load, p: Plan) -> dict[str, Runs]:
    ports = spawn.Queue()
    server = spawn.Process(target=serve_bare, args=(ports,), name="pmon-bench-bare-aiohttp", daemon=True)
    server.start()
    try:
        port = ports.get(timeout=START_TIMEOUT)
        _warm_up(load, "127.0.0.1", port)
        return {"open": _open_phase(load, "127.0.0.1", port, p, "bare"),
                "single": _single_phase(load, "127.0.0.1", port, p, "bare", None)}
    finally:
        server.terminate()
        server.join(5)
        ports.close()


def _rows(runs: dict[str, Runs], bare: dict[str, Runs], inproc: Runs, at_rest: Schedule, busy: Schedule,
          p: Plan) -> list[BenchResult]:
    med = statistics.median

    def errors(kind: str, source: dict[str, Runs] = runs) -> int:
        return sum(f["errors"] for f in source[kind])

    batch_rate = med(f["records"] / f["seconds"] for f in runs["batch"])
    bad_inproc = sum(1 for f in inproc if f["stored"] != f["records"] or f["dropped"] or not f["committed"])
    inproc_rate = med(f["records"] / f["seconds"] for f in inproc)
    single_rate = med(f["requests"] / f["seconds"] for f in runs["single"])
    bare_single = med(f["requests"] / f["seconds"] for f in bare["single"])
    open_errors = errors("open") + errors("open", bare)
    p50, p99 = med(f["p50_ms"] for f in runs["open"]), med(f["p99_ms"] for f in runs["open"])
    worst = max(f["max_ms"] for f in runs["open"])
    b50, b99 = med(f["p50_ms"] for f in bare["open"]), med(f["p99_ms"] for f in bare["open"])
    bworst = max(f["max_ms"] for f in bare["open"])
    load = f"open loop {p.open_rate:,.0f} req/s"
    late_limit = p.interval * (1 + LATE_FRACTION) * 1000
    batch_errors = errors("batch") + bad_inproc
    single_errors = errors("single") + errors("single", bare)
    return [
        BenchResult(_named(f"API batch ingest ({p.batch_records:,}/request), committed", batch_errors), batch_rate,
                    "records/s", inproc_rate, "in-process Monitor.record_metric + flush(), committed",
                    "≥ 100,000 records/s", batch_rate >= 100_000 and not batch_errors),
        BenchResult(_named(f"API single-record POSTs, {p.single_connections} keep-alive conns", single_errors),
                    single_rate, "req/s", bare_single, "a bare aiohttp handler (json.loads, 202), same load",
                    "≥ 3,000 req/s", single_rate >= 3000 and not single_errors),
        BenchResult(_named(f"API latency p99, {load}", open_errors), p99, "ms", b99,
                    "a bare aiohttp handler, same schedule", "≤ 20 ms", p99 <= 20 and not open_errors),
        BenchResult(_named(f"API latency p50, {load}", open_errors), p50, "ms", b50,
                    "a bare aiohttp handler, same schedule", "informational", not open_errors),
        BenchResult(_named(f"API latency max (all repeats), {load}", open_errors), worst, "ms", bworst,
                    "a bare aiohttp handler, same schedule", "informational", not open_errors),
        BenchResult("sampling under API load: worst gap between tick starts", busy.worst_gap_ms, "ms",
                    at_rest.worst_gap_ms, f"the same daemon idle ({at_rest.ticks} ticks)",
                    f"≤ {late_limit:,.0f} ms", busy.ticks > 1 and busy.worst_gap_ms <= late_limit),
        BenchResult("sampling under API load: late or skipped ticks", busy.late + busy.skipped, "ticks",
                    at_rest.late + at_rest.skipped, "the same daemon idle", "0",
                    busy.ticks > 1 and busy.late + busy.skipped == 0),
        BenchResult("sampling under API load: longest tick", busy.max_tick_ms, "ms", at_rest.max_tick_ms,
                    "the same daemon idle", "informational", True),
    ]

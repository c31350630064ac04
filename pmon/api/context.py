"""What every route needs: the daemon's monitor, store readers off the event loop, settings and counters."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from pmon.api.listen import Listen
from pmon.config import ApiConfig
from pmon.monitor import Monitor
from pmon.store.schema import StoreError, open_reader

T = TypeVar("T")

READ_THREADS = 2
"""Store reads run on these threads, so a slow query never stalls ingestion or the stream."""


@dataclass
class ApiCounters:
    """What the API has done since it started (``/status`` and ``/metrics`` show them)."""

    requests: int = 0
    responses_4xx: int = 0
    responses_5xx: int = 0
    refused_connections: int = 0
    timed_out_connections: int = 0
    rejected_full: int = 0
    """Records refused with 503 because the writer's buffer was full (nothing was taken)."""
    records_accepted: int = 0
    open_connections: int = 0
    stream_clients: int = 0

    def as_dict(self) -> dict[str, int]:
        """A plain dict for JSON and the exposition."""
        return dict(self.__dict__)


class StoreReaders:
    """Read-only connections, one per worker thread, used through ``await read(fn, *args)``."""

    def __init__(self, db_path: Path, threads: int = READ_THREADS) -> None:
        self.db_path = db_path
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pmon-api-read")
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_reader(self.db_path)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _call(self, fn: Callable[..., T], args: tuple) -> T:
        conn = self._connection()
        try:
            return fn(conn, *args)
        finally:
            if conn.in_transaction:  # a query that opened a snapshot must not pin the WAL
                conn.rollback()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on a reader thread; StoreError / sqlite3.Error propagate (routes answer 503)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work that needs no connection (a flush, an exposition) on a reader thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Stop the threads and close their connections."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for conn in self._opened:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._opened.clear()


@dataclass
class ApiContext:
    """Shared by the routes of one server."""

    monitor: Monitor
    db_path: Path
    settings: ApiConfig
    listen: Listen
    token: str | None
    """The bearer token; None only on loopback without one configured."""
    readers: StoreReaders
    daemon_status: Callable[[], dict[str, Any]] = dict
    """The daemon's own figures for ``/status`` (pid, plugins configured, ticks)."""
    counters: ApiCounters = field(default_factory=ApiCounters)
    started_at: float = field(default_factory=time.time)
    stream: Any = None
    """The live stream hub (``pmon.api.stream``), set when the app starts."""


CONTEXT = web.AppKey("pmon_context", ApiContext)

STORE_ERRORS = (sqlite3.Error, StoreError)
"""What a read may raise when the store is busy, missing or broken: the routes answer 503."""

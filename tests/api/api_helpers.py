"""A real API server on an ephemeral 127.0.0.1 port over a real store, and a small urllib client."""

from __future__ import annotations

import gzip
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmon.api.listen import parse_listen
from pmon.api.server import ApiServer
from pmon.config import ApiConfig
from pmon.monitor import Monitor
from pmon.store.schema import open_reader

PREFIX = "/api/advanced-monitoring"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class Api:
    server: ApiServer
    monitor: Monitor
    db: Path
    token: str | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None, auth: bool = True) -> Reply:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"}
        if self.token and auth:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return _reply(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            return _reply(exc.code, dict(exc.headers), exc.read())

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", PREFIX + path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", PREFIX + path, body, **kwargs)

    def reader(self) -> Any:
        return open_reader(self.db)

    def raw_exchange(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send bytes on a fresh socket and read until the server closes it (or the timeout)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except (TimeoutError, ConnectionResetError):
                pass
            return b"".join(chunks)


def _reply(status: int, headers: dict[str, str], raw: bytes) -> Reply:
    decoded = gzip.decompress(raw) if headers.get("Content-Encoding") == "gzip" else raw
    try:
        body = json.loads(decoded) if decoded else None
    except ValueError:
        body = decoded
    return Reply(status, headers, body, raw)


@contextmanager
def running_api(db: Path, *, listen: str = "127.0.0.1:0", token: str | None = None,
                monitor_settings: dict[str, Any] | None = None, **settings: Any) -> Iterator[Api]:
    """A monitor recording into ``db`` and an API server on it; both stopped afterwards."""
    monitor = Monitor(db, flush_interval=0.05, **(monitor_settings or {}))
    monitor.start_monitoring(sample=False)
    server = ApiServer(monitor, db, ApiConfig(**settings), parse_listen(listen), token)
    server.start()
    try:
        yield Api(server, monitor, db, token)
    finally:
        server.stop()
        monitor.stop_monitoring()

"""The API server's thread: its own asyncio loop, the listening socket, a connection cap and deadlines.

The daemon samples on plain threads; the API gets one more thread with an
event loop, so a flood of requests costs the sampler a share of the GIL,
never its schedule. The socket is bound in ``start()`` on the caller's thread,
so "address in use" is the caller's clear error, not a log line.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from pmon.api.context import ApiContext, StoreReaders
from pmon.api.listen import Listen
from pmon.api.responses import error_response
from pmon.config import ApiConfig
from pmon.monitor import Monitor
from pmon.store.schema import StoreError, open_writer

log = logging.getLogger("pmon.api")

BACKLOG = 1024
SWEEP_SECONDS = 1.0
REFUSAL_LINGER_SECONDS = 2.0
"""How long a refused connection may stay open for its client to read the 503."""
MAX_LINGERING = 4096
"""Refused connections lingering at once, at most (each is a socket and a few hundred bytes)."""
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Retry-After: 1\r\nContent-Length: 79\r\n\r\n"
            b'{"error":"too many connections (api.max_connections); retry later","status":503}')


class ApiStartError(Exception):
    """The API cannot start (address in use, bad token setup); the message is one line for the user."""


class _Refuse(asyncio.Protocol):
    """Answers 503 and hangs up: a connection over the cap costs one write and a short linger, not a handler.

    Why linger: an HTTP client sends its request at once; closing a socket
    with that request unread makes the kernel send a reset, which throws away
    the 503 before the client reads it (1,000 clients against a cap of 512:
    488 saw "connection reset" and no Retry-After). So the refusal shuts its
    side, reads and drops what the client sends, and closes when the client
    does, or after ``REFUSAL_LINGER_SECONDS``. At most ``MAX_LINGERING``
    refusals linger; past that a connection is closed at once.
    """

    lingering = 0

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(_REFUSAL)  # type: ignore[attr-defined]
        if _Refuse.lingering >= MAX_LINGERING or not transport.can_write_eof():  # type: ignore[attr-defined]
            transport.close()
            return
        _Refuse.lingering += 1
        transport.write_eof()  # type: ignore[attr-defined]
        self.timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # the request of a connection already refused

    def eof_received(self) -> bool | None:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            _Refuse.lingering -= 1


class _Counted(asyncio.Protocol):
    """Wraps aiohttp's handler to count open connections exactly and time them out.

    Why a wrapper: aiohttp has no connection cap and no deadline for a
    request's headers (a client trickling one byte a second would hold its
    connection for ever).
    """

    __slots__ = ("inner", "gate", "opened_at")

    def __init__(self, inner: Any, gate: _Gate) -> None:
        self.inner = inner
        self.gate = gate
        self.opened_at = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.closed(self)
        self.inner.connection_lost(exc)


class _JsonErrors(web.RequestHandler):
    """aiohttp's own answers, before any route (a bad chunk, a header over 8 KiB), in the API's JSON error shape.

    Without this they are text/plain, name the versions of Python and aiohttp
    in ``Server``, and log a traceback for every malformed request a client
    cares to send.
    """

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            log.error("API request %s %s failed", request.method, request.path, exc_info=exc)
            words = "internal error; the daemon's log has the details"
        else:
            log.debug("unparseable request from %s: %s", request.remote, exc)
            # the first line names the fault; what follows echoes the client's bytes
            words = (message or str(exc or "bad request")).strip().split("\n", 1)[0].split(":", 1)[0]
        if request.writer.output_size > 0:
            raise ConnectionError("the response has begun; no room for an error")
        response = error_response(status, words)
        response.headers["Server"] = "pmon"
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """A body that does not decompress fails again when aiohttp drains it after the 400: the client's fault."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, (web.RequestPayloadError, ConnectionError)):
            log.debug("dropped a connection whose body could not be read: %s", exc)
        else:
            super().log_exception(*args, **kwargs)


class _Gate:
    """Open connections, their deadlines, and which of them are inside a request right now."""

    def __init__(self, ctx: ApiContext) -> None:
        self.server: web.Server | None = None
        """aiohttp's request dispatcher, once the runner is set up."""
        self.handler_options: dict[str, Any] = {}
        """Keyword arguments of each connection's handler (those the runner was given)."""
        self.ctx = ctx
        self.open: dict[Any, _Counted] = {}
        self.busy: dict[Any, int] = {}
        """Handlers inside a route (a WebSocket stays busy while it streams)."""
        self.last_done: dict[Any, float] = {}

    def factory(self) -> asyncio.Protocol:
        counters = self.ctx.counters
        if len(self.open) >= self.ctx.settings.max_connections:
            counters.refused_connections += 1
            return _Refuse()
        assert self.server is not None
        inner = _JsonErrors(self.server, loop=asyncio.get_running_loop(), **self.handler_options)
        wrapped = _Counted(inner, self)
        self.open[inner] = wrapped
        counters.open_connections = len(self.open)
        return wrapped

    def closed(self, wrapped: _Counted) -> None:
        self.open.pop(wrapped.inner, None)
        self.busy.pop(wrapped.inner, None)
        self.last_done.pop(wrapped.inner, None)
        self.ctx.counters.open_connections = len(self.open)

    def enter(self, handler: Any) -> None:
        self.busy[handler] = self.busy.get(handler, 0) + 1

    def leave(self, handler: Any) -> None:
        left = self.busy.get(handler, 0) - 1
        if left > 0:
            self.busy[handler] = left
        else:
            self.busy.pop(handler, None)
            self.last_done[handler] = time.monotonic()

    def sweep(self) -> None:
        """Close connections idle, or sending a request, for longer than ``request_timeout``."""
        limit = self.ctx.settings.request_timeout
        now = time.monotonic()
        for inner, wrapped in list(self.open.items()):
            if inner in self.busy:
                continue
            if now - self.last_done.get(inner, wrapped.opened_at) > limit:
                self.ctx.counters.timed_out_connections += 1
                inner.force_close()


GATE = web.AppKey("pmon_gate", _Gate)


@web.middleware
async def busy_middleware(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Marks the connection as inside a request, so the idle sweep leaves it alone."""
    gate = request.app[GATE]
    protocol = request.protocol
    gate.enter(protocol)
    try:
        return await handler(request)
    finally:
        gate.leave(protocol)


class ApiServer:
    """Serves the API on its own thread until ``stop()``."""

    def __init__(self, monitor: Monitor, db_path: Path, settings: ApiConfig, listen: Listen, token: str | None,
                 daemon_status: Callable[[], dict[str, Any]] = dict) -> None:
        self.ctx = ApiContext(monitor=monitor, db_path=Path(db_path), settings=settings, listen=listen, token=token,
                              readers=StoreReaders(Path(db_path)), daemon_status=daemon_status)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.port: int = listen.port
        """The bound port (the real one when ``listen`` asked for 0)."""

    @property
    def url(self) -> str:
        """Base URL for a client on this machine."""
        return self.ctx.listen.url()

    def start(self, timeout: float = 10.0) -> None:
        """Bind, start the thread, and return once requests are served; ApiStartError otherwise."""
        try:
            open_writer(self.ctx.db_path).close()  # the schema exists before the first read
        except StoreError as exc:
            raise ApiStartError(str(exc)) from None
        self._sock = _bind(self.ctx.listen)
        self.port = self._sock.getsockname()[1]
        self.ctx.listen = Listen(self.ctx.listen.host, self.port)
        self._thread = threading.Thread(target=self._run, name="pmon-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None:
            self.stop()
            raise ApiStartError(f"the API did not start: {self._failure or 'timed out'}")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(), or logged when it happens later
            self._failure = exc
            if self._ready.is_set():
                log.exception("the API server stopped unexpectedly")
            self._ready.set()

    async def _serve(self) -> None:
        from pmon.api.app import build_app  # the routes load with the loop, not with the daemon

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        settings = self.ctx.settings
        app = build_app(self.ctx)
        gate = _Gate(self.ctx)
        app[GATE] = gate
        gate.handler_options = {"access_log": None, "keepalive_timeout": settings.request_timeout}
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, **gate.handler_options)
        await runner.setup()
        assert runner.server is not None and self._sock is not None
        gate.server = runner.server
        server = await self._loop.create_server(gate.factory, sock=self._sock, backlog=BACKLOG)
        sweeper = asyncio.create_task(self._sweep(gate))
        log.info("API listening on %s", self.url)
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            sweeper.cancel()
            server.close()
            await runner.cleanup()
            await server.wait_closed()
            self.ctx.readers.close()

    async def _sweep(self, gate: _Gate) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                gate.sweep()
            except Exception:  # the sweep must outlive any odd connection state
                log.exception("connection sweep failed")

    def stop(self, timeout: float = 3.0) -> None:
        """Stop accepting, close connections and streams, and join the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop closed in between
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()


def _bind(listen: Listen) -> socket.socket:
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ApiStartError(f"[api] listen: cannot resolve {listen.host!r}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and listen.wildcard:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ApiStartError(f"[api] listen: cannot listen on {listen.host}:{listen.port}: "
                            f"{exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock

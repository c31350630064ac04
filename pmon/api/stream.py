"""``GET /api/advanced-monitoring/stream``: a WebSocket pushing new logs and events (metrics on request) as JSON.

Every process that records writes to the same SQLite file, so the stream
follows the store, not the daemon's own monitor: one ``StreamHub`` per server
polls for rows newer than its cursors (on a reader thread, only while someone
listens) and fans them out to each client whose filters match. Each client
has a bounded queue and its own sending task, so a client that stops reading
loses its oldest messages (and is told how many) instead of slowing the
others or growing memory.

Messages, all JSON text:

- ``{"type": "hello", "filters": {...}, "last_ids": {...}}`` first; rows with
  larger ids follow (the stream starts now, not with history);
- ``{"type": "log", ...}``, ``{"type": "event", ...}``, ``{"type": "metric",
  "plugin_id": ..., ...}``: the same objects the GET routes return;
- ``{"type": "subscribed", "filters": {...}, "last_ids": {...}}`` after the
  client sends ``{"subscribe": {...}}``; what follows matches the new filters;
- ``{"type": "dropped", "count": n}`` where ``n`` messages were lost because
  the client read too slowly;
- ``{"type": "error", "error": ..., "field": ...}`` for a message the server
  could not use; the connection stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from pmon.api import shapes
from pmon.api.context import CONTEXT, STORE_ERRORS, ApiCounters, StoreReaders
from pmon.api.params import Params
from pmon.api.responses import ApiError, bad_request, dumps
from pmon.models import LogLevel, Severity
from pmon.store.stream_queries import KINDS, newest_ids, rows_after

log = logging.getLogger("pmon.api")

PATH = "/api/advanced-monitoring/stream"
FILTER_NAMES = ("plugin", "level", "severity", "kinds", "metric_type")
DEFAULT_KINDS = frozenset({"logs", "events"})
"""Metrics only on request: a daemon records many more of them than anyone wants to watch."""

POLL_SECONDS = 0.2
CHUNK_ROWS = 5000
"""Rows of each kind one poll reads at most; a full chunk is followed by another read at once."""
MAX_CLIENTS = 100
QUEUE_MESSAGES = 10_000
QUEUE_CHARS = 4 * 1024 * 1024
"""A client's queue holds at most this many messages and characters; the oldest go first."""
HEARTBEAT_SECONDS = 15.0
"""A ping this often; a client that does not answer within half of it is closed."""
CLOSE_SECONDS = 0.5
"""How long a client gets to answer the close on shutdown before its connection is dropped."""
MAX_CLIENT_MESSAGE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Filters:
    """What one client wants to see; equal filters share one matching pass per poll."""

    kinds: frozenset[str] = DEFAULT_KINDS
    plugins: frozenset[str] | None = None
    """Exact plugin ids; None means every plugin."""
    level: LogLevel | None = None
    """Minimum log level."""
    severity: Severity | None = None
    """Minimum event severity."""
    metric_type: str | None = None

    def wants(self, item: Item) -> bool:
        """Whether ``item`` passes; a level or severity this pmon cannot rank (a newer writer's) always does."""
        if item.kind not in self.kinds or (self.plugins is not None and item.plugin_id not in self.plugins):
            return False
        if item.kind == "metrics":
            return self.metric_type is None or item.metric_type == self.metric_type
        floor = self.level if item.kind == "logs" else self.severity
        return floor is None or item.rank is None or item.rank >= floor.rank

    def as_dict(self) -> dict[str, Any]:
        """The filters as the client would send them back."""
        return {"kinds": [kind for kind in KINDS if kind in self.kinds],
                "plugin": None if self.plugins is None else sorted(self.plugins),
                "level": self.level, "severity": self.severity, "metric_type": self.metric_type}


@dataclass(frozen=True, slots=True)
class Item:
    """One new row, serialised once on a reader thread however many clients receive it."""

    kind: str
    plugin_id: str
    rank: int | None
    metric_type: str | None
    text: str


def parse_filters(values: Mapping[str, Sequence[str]]) -> Filters:
    """Filters from raw values per name (query string or subscribe message); 400 ApiError naming the field."""
    plugins = _split(values.get("plugin", ()))
    kinds = frozenset(_split(values.get("kinds", ()))) or DEFAULT_KINDS
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise bad_request(f"kinds: {', '.join(map(repr, unknown))} is not one of {', '.join(KINDS)}", "kinds")
    level, severity, metric_type = (_single(values, name) for name in ("level", "severity", "metric_type"))
    if metric_type is not None and "metrics" not in kinds:
        raise bad_request("metric_type filters metrics: add metrics to kinds", "metric_type")
    return Filters(kinds=kinds, plugins=frozenset(plugins) if plugins else None,
                   level=_ranked(LogLevel, "level", level), severity=_ranked(Severity, "severity", severity),
                   metric_type=metric_type)


def _split(values: Iterable[str]) -> list[str]:
    """``a,b`` and repeated names alike; blanks ignored."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _single(values: Mapping[str, Sequence[str]], name: str) -> str | None:
    given = [value for value in values.get(name, ()) if value]
    if len(given) > 1:
        raise bad_request(f"{name}: give it once, not {len(given)} times", name)
    return given[0] if given else None


def _ranked(enum: type[LogLevel] | type[Severity], name: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return enum(value.lower())
    except ValueError:
        raise bad_request(f"{name}: {value!r} is not one of {', '.join(member.value for member in enum)}",
                          name) from None


def filters_from_query(request: web.Request) -> Filters:
    """The connection's filters; an unknown name or bad value is a 400 before the upgrade."""
    params = Params(request, FILTER_NAMES)
    return parse_filters({name: params.query.getall(name) for name in FILTER_NAMES if name in params.query})


def filters_from_message(text: str) -> Filters:
    """Filters from ``{"subscribe": {...}}``: the same names as the query string, values a string, list or null."""
    try:
        message = json.loads(text)
    except RecursionError:
        raise bad_request("the message is nested too deeply", "message") from None
    except ValueError as exc:
        raise bad_request(f"the message is not JSON: {exc}", "message") from None
    if not isinstance(message, dict) or set(message) != {"subscribe"} or not isinstance(message["subscribe"], dict):
        raise bad_request('send {"subscribe": {"plugin": ..., "level": ..., "severity": ..., "kinds": ..., '
                          '"metric_type": ...}}', "subscribe")
    values: dict[str, list[str]] = {}
    for name, value in message["subscribe"].items():
        if name not in FILTER_NAMES:
            raise bad_request(f"unknown filter {name!r}; allowed: {', '.join(FILTER_NAMES)}", str(name))
        listed = [] if value is None else [value] if isinstance(value, str) else value
        if not isinstance(listed, list) or not all(isinstance(part, str) for part in listed):
            raise bad_request(f"{name}: expected a string, a list of strings or null", name)
        values[name] = listed
    return parse_filters(values)


def read_items(conn: sqlite3.Connection, cursors: dict[str, int | None], limit: int) -> tuple[list[Item], dict[str, int], bool]:
    """New rows as ready-to-send items, the last id read per kind, and whether any kind filled its chunk.

    Runs on a reader thread: shaping and JSON encoding thousands of rows
    would otherwise hold up every connection on the event loop.
    """
    found = rows_after(conn, cursors, limit)
    items = [Item("logs", entry.plugin_id, _rank(entry.level, LogLevel), None,
                  dumps({"type": "log", **shapes.log(entry)})) for entry in found.logs]
    items += [Item("events", entry.plugin_id, _rank(entry.severity, Severity), None,
                   dumps({"type": "event", **shapes.event(entry)})) for entry in found.events]
    items += [Item("metrics", row.plugin_id, None, row.point.metric_type,
                   dumps({"type": "metric", "plugin_id": row.plugin_id, **shapes.metric(row.point)}))
              for row in found.metrics]
    last_ids = {kind: rows[-1].id for kind, rows in (("logs", found.logs), ("events", found.events)) if rows}
    if found.metrics:
        last_ids["metrics"] = found.metrics[-1].point.id
    return items, last_ids, found.more


def _rank(value: Any, enum: type[LogLevel] | type[Severity]) -> int | None:
    return value.rank if isinstance(value, enum) else None


class StreamClient:
    """One WebSocket: its filters, its bounded queue, and the task that sends from it."""

    def __init__(self, request: web.Request, filters: Filters, max_messages: int, max_chars: int) -> None:
        self.request = request
        self.filters = filters
        self.ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, timeout=CLOSE_SECONDS, compress=False,
                                        max_msg_size=MAX_CLIENT_MESSAGE)
        """Uncompressed: deflating the same rows once per client would cost more than the bandwidth saved."""
        self.active = False
        """Receiving rows (set once the hello is queued)."""
        self.dropped = 0
        """Messages lost since the last ``dropped`` notice."""
        self._queue: deque[str] = deque()
        self._chars = 0
        self._max_messages = max_messages
        self._max_chars = max_chars
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    def push(self, texts: list[str], chars: int) -> None:
        """Queue messages (``chars`` their total length), dropping the oldest beyond the limits; never waits."""
        queue = self._queue
        queue.extend(texts)
        self._chars += chars
        while len(queue) > self._max_messages or (self._chars > self._max_chars and len(queue) > 1):
            self._chars -= len(queue.popleft())
            self.dropped += 1
        self._wake.set()

    def notify(self, payload: dict[str, Any]) -> None:
        """Queue a message of the stream's own (hello, subscribed, error) behind the rows already queued."""
        # an error may echo a lone surrogate from the client's message, which the socket cannot encode: "?" instead
        text = dumps(payload).encode("utf-8", "replace").decode("utf-8")
        self.push([text], len(text))

    def start_sending(self) -> None:
        """Start the task that drains the queue into the socket."""
        self._sender = asyncio.create_task(self._send_queued(), name="pmon-stream-send")

    async def _send_queued(self) -> None:
        ws, queue = self.ws, self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue:
                    if self.dropped:
                        count, self.dropped = self.dropped, 0
                        await ws.send_str(dumps({"type": "dropped", "count": count}))
                        continue  # more may have been dropped while that was sent
                    text = queue.popleft()
                    self._chars -= len(text)
                    await ws.send_str(text)
        except ConnectionError:  # the socket closed under us; the handler finishes the client
            pass
        except Exception:
            log.exception("stream client send failed")
            await ws.close(code=WSCloseCode.INTERNAL_ERROR)

    async def stop_sending(self) -> None:
        """Cancel the sending task (it may be waiting on a client that does not read)."""
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def go_away(self) -> None:
        """Close with 1001 on shutdown; a client that does not answer in time has its connection dropped."""
        await self.stop_sending()
        if not self.ws.prepared:
            return
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        except (TimeoutError, ConnectionError):
            transport = self.request.transport
            if transport is not None:
                transport.abort()


class StreamHub:
    """The server's one poller: follows the store while clients listen and hands each client what it wants."""

    def __init__(self, readers: StoreReaders, counters: ApiCounters, *, max_clients: int = MAX_CLIENTS,
                 queue_messages: int = QUEUE_MESSAGES, queue_chars: int = QUEUE_CHARS) -> None:
        self.readers = readers
        self.counters = counters
        self.max_clients = max_clients
        self.queue_messages = queue_messages
        self.queue_chars = queue_chars
        self.clients: set[StreamClient] = set()
        """Every connected client, active or still connecting."""
        self._cursors: dict[str, int | None] = dict.fromkeys(KINDS)
        """The last id handed out per kind; None for a kind nobody follows."""
        self._poller: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False

    def open(self, request: web.Request, filters: Filters) -> StreamClient:
        """Take a client slot; 503 when the stream is full or the server is stopping."""
        if self._stopping:
            raise ApiError(503, "the server is shutting down", None, {"Retry-After": "1"})
        if len(self.clients) >= self.max_clients:
            raise ApiError(503, f"too many stream clients (at most {self.max_clients}); retry later", None,
                           {"Retry-After": "5"})
        client = StreamClient(request, filters, self.queue_messages, self.queue_chars)
        self.clients.add(client)
        self.counters.stream_clients = len(self.clients)
        return client

    async def close(self, client: StreamClient) -> None:
        """Give the slot back; the poller stops by itself once nobody is left."""
        self.clients.discard(client)
        client.active = False
        self.counters.stream_clients = len(self.clients)
        await client.stop_sending()

    async def follow(self, kinds: Iterable[str]) -> None:
        """Make sure each kind is followed, starting from the newest row now; store errors propagate."""
        missing = [kind for kind in kinds if self._cursors[kind] is None]
        if missing:
            newest = await self.readers.read(newest_ids)
            for kind in missing:
                if self._cursors[kind] is None:  # another client may have started it meanwhile
                    self._cursors[kind] = newest[kind]

    def last_ids(self, filters: Filters) -> dict[str, int | None]:
        """Where the stream stands for these kinds: rows after these ids are still to come."""
        return {kind: self._cursors[kind] for kind in KINDS if kind in filters.kinds}

    def activate(self, client: StreamClient) -> None:
        """Queue the hello and start sending rows; the hello's ``last_ids`` are exactly where this client starts.

        The kinds stay followed between ``follow`` and here: the poller keeps
        every kind a connected client wants, active or still connecting.
        """
        client.notify({"type": "hello", "filters": client.filters.as_dict(), "last_ids": self.last_ids(client.filters)})
        client.active = True
        client.start_sending()
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="pmon-stream-poll")

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping and self.clients:
                wanted = set().union(*(client.filters.kinds for client in self.clients))
                for kind in KINDS:
                    if kind not in wanted:
                        self._cursors[kind] = None  # whoever wants it later starts from that moment
                started = loop.time()
                full = await self._read_once()
                await asyncio.sleep(0 if full else max(0.0, POLL_SECONDS - (loop.time() - started)))
        finally:
            self._poller = None
            if not self._stopping:
                self._cursors = dict.fromkeys(KINDS)

    async def _read_once(self) -> bool:
        try:
            items, last_ids, full = await self.readers.read(read_items, dict(self._cursors), CHUNK_ROWS)
        except STORE_ERRORS as exc:
            if not self._failing:
                log.warning("the live stream cannot read the store (retrying): %s", exc)
            self._failing = True
            return False
        except Exception:  # a bug must not end the stream for everyone; the next poll tries again
            if not self._failing:
                log.exception("the live stream failed to read new rows (retrying)")
            self._failing = True
            return False
        self._failing = False
        for kind, last in last_ids.items():
            current = self._cursors[kind]
            if current is not None:
                self._cursors[kind] = max(current, last)
        self._fan_out(items)
        return full

    def _fan_out(self, items: list[Item]) -> None:
        if not items:
            return
        groups: dict[Filters, list[StreamClient]] = {}
        for client in self.clients:
            if client.active:
                groups.setdefault(client.filters, []).append(client)
        for filters, members in groups.items():
            texts = [item.text for item in items if filters.wants(item)]
            if texts:
                chars = sum(map(len, texts))
                for client in members:
                    client.push(texts, chars)

    async def stop(self) -> None:
        """Refuse new clients, stop polling, and close every socket with 1001 (going away)."""
        self._stopping = True
        poller = self._poller
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        await asyncio.gather(*(client.go_away() for client in list(self.clients)), return_exceptions=True)


async def stream(request: web.Request) -> web.StreamResponse:
    """The live stream: filters from the query string, then ``{"subscribe": {...}}`` messages to change them."""
    ctx = request.app[CONTEXT]
    filters = filters_from_query(request)
    origin = request.headers.get("Origin")
    if origin is not None and origin not in ctx.settings.cors_origins:
        # A browser page may open a WebSocket to any address; only configured origins may read the stream.
        raise ApiError(403, f"origin {origin!r} may not open the stream (add it to [api] cors_origins)", "Origin")
    hub: StreamHub = ctx.stream
    client = hub.open(request, filters)
    try:
        try:
            await hub.follow(filters.kinds)
        except STORE_ERRORS as exc:
            raise ApiError(503, f"the store cannot be read right now: {exc}", None, {"Retry-After": "1"}) from None
        ws = client.ws
        await ws.prepare(request)
        hub.activate(client)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await _subscribe(hub, client, message.data)
            elif message.type is WSMsgType.BINARY:
                client.notify({"type": "error", "error": "send text messages (JSON), not binary",
                               "field": "message"})
        return ws
    finally:
        await hub.close(client)


async def _subscribe(hub: StreamHub, client: StreamClient, text: str) -> None:
    """Replace the client's filters; names left out take their defaults, as on a new connection."""
    try:
        filters = filters_from_message(text)
    except ApiError as exc:
        client.notify({"type": "error", "error": exc.message, "field": exc.field})
        return
    try:
        await hub.follow(filters.kinds)
    except STORE_ERRORS as exc:
        client.notify({"type": "error", "error": f"the store cannot be read right now ({exc}); the filters are "
                                                 "unchanged", "field": None})
        return
    client.filters = filters
    client.notify({"type": "subscribed", "filters": filters.as_dict(), "last_ids": hub.last_ids(filters)})


async def _start(app: web.Application) -> None:
    ctx = app[CONTEXT]
    ctx.stream = StreamHub(ctx.readers, ctx.counters, max_clients=MAX_CLIENTS, queue_messages=QUEUE_MESSAGES,
                           queue_chars=QUEUE_CHARS)


async def _stop(app: web.Application) -> None:
    hub = app[CONTEXT].stream
    if hub is not None:
        await hub.stop()


def add_routes(app: web.Application) -> None:
    """Register the stream and its hub's life: created on startup, sockets closed on shutdown."""
    app.router.add_get(PATH, stream)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    app.on_cleanup.append(_stop)

"""POST routes: one record to a plugin's metrics / logs / events / snapshots, or a batch of many.

Records go through the daemon's Monitor, so they are checked like the Python
API's and written by the same batched writer. The answer is 202 once they
are queued; ``?wait=1`` answers 201 only once they are committed. A full
buffer answers 503 with Retry-After and takes nothing, rather than taking
records it would then drop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from pmon.api import ingest
from pmon.api.context import CONTEXT, ApiContext
from pmon.api.params import Params
from pmon.api.responses import ApiError, json_response, read_json
from pmon.api.routes_read import PREFIX

WAIT_SECONDS = 10.0
ROOM_WAIT_SECONDS = 2.0
"""How long a request waits for the writer to make room before it is refused with 503.

Why wait at all: a burst fills the buffer in a fraction of a second and the
writer drains it about as fast; refusing at once would make every sender idle
for its Retry-After while the disk sits idle too.
"""
ROOM_POLL_SECONDS = 0.005


def _wants_wait(request: web.Request) -> bool:
    return Params(request, ("wait",)).choice("wait", ("0", "1", "true", "false")) in ("1", "true")


async def _take(ctx: ApiContext, records: list[ingest.Record], accepted: dict[str, int] | int,
                wait: bool) -> web.Response:
    if not await _room_for(ctx, len(records)):
        ctx.counters.rejected_full += len(records)
        raise ApiError(503, "the write buffer is full (the disk is slower than the senders); nothing was taken, "
                            "retry later", None, {"Retry-After": "1"})
    try:
        ingest.record_all(records)
    except ValueError as exc:  # the checks above mirror the Monitor's; this is a mismatch between them
        raise ApiError(400, str(exc)) from None
    ctx.counters.records_accepted += len(records)
    body: dict[str, Any] = {"accepted": accepted}
    if wait:
        # the loop's default pool: waiting for a commit must not hold a store reader thread
        stored = await asyncio.get_running_loop().run_in_executor(None, ctx.monitor.flush, WAIT_SECONDS)
        if not stored:
            raise ApiError(503, f"queued, but not committed within {WAIT_SECONDS:g} s (the store is busy or full)",
                           None, {"Retry-After": "1"})
        body["stored"] = True
        return json_response(body, 201)
    return json_response(body, 202)


async def _room_for(ctx: ApiContext, count: int) -> bool:
    """True once the writer's buffer can take ``count`` more rows (within ROOM_WAIT_SECONDS)."""
    if ctx.monitor.buffer_room() >= count:
        return True
    deadline = time.monotonic() + ROOM_WAIT_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(ROOM_POLL_SECONDS)
        if ctx.monitor.buffer_room() >= count:
            return True
    return False


def _single(kind: str) -> Any:
    async def post(request: web.Request) -> web.Response:
        ctx = request.app[CONTEXT]
        wait = _wants_wait(request)
        body = await read_json(request, ctx.settings.request_timeout)
        record = ingest.one(ctx.monitor, kind, request.match_info["plugin_id"], body)
        return await _take(ctx, [record], 1, wait)

    post.__name__ = f"post_{kind}"
    post.__doc__ = f"Record one of a plugin's {kind}."
    return post


async def batch(request: web.Request) -> web.Response:
    """Many metrics, logs, events and snapshots of any plugins in one request, all or nothing."""
    ctx = request.app[CONTEXT]
    wait = _wants_wait(request)
    body = await read_json(request, ctx.settings.request_timeout)
    records, counts = ingest.batch(ctx.monitor, body, ctx.settings.max_batch_records)
    return await _take(ctx, records, counts, wait)


def add_routes(app: web.Application) -> None:
    """Register the POST routes."""
    for kind in ingest.KINDS:
        app.router.add_post(f"{PREFIX}/plugins/{{plugin_id}}/{kind}", _single(kind))
    app.router.add_post(f"{PREFIX}/batch", batch)

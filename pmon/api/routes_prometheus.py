"""``GET /metrics``: the store and pmon's health in Prometheus text format, built on a reader thread."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pmon.api.context import CONTEXT, ApiContext
from pmon.api.params import Params

COLLECTOR = web.AppKey("pmon_prometheus", object)


def _health(ctx: ApiContext) -> dict[str, Any]:
    return {**ctx.monitor.status(), "api": ctx.counters.as_dict()}


async def metrics(request: web.Request) -> web.Response:
    """The exposition; a scrape costs a seek per series and a count of the rows new since the last scrape."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from pmon.api.prometheus import exposition

    ctx = request.app[CONTEXT]
    Params(request, ())
    body = await ctx.readers.run(exposition, request.app[COLLECTOR])
    response = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
    if len(body) >= 1024:
        response.enable_compression()
    return response


async def _start(app: web.Application) -> None:
    from pmon.api.prometheus import StoreCollector

    ctx = app[CONTEXT]
    app[COLLECTOR] = StoreCollector(ctx.db_path, lambda: _health(ctx))


async def _stop(app: web.Application) -> None:
    collector = app.get(COLLECTOR)
    if collector is not None:
        collector.close()  # type: ignore[attr-defined]


def add_routes(app: web.Application) -> None:
    """Register ``/metrics`` and the collector's life."""
    app.router.add_get("/metrics", metrics)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)

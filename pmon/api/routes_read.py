"""GET routes: status, plugins, a plugin's summary, pages of its records, and the analytics."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from pmon.analysis import performance as perf
from pmon.analysis import trends as trend_analysis
from pmon.api import shapes
from pmon.api.context import CONTEXT, STORE_ERRORS, ApiContext
from pmon.api.params import Params
from pmon.api.responses import ApiError, bad_request, json_response
from pmon.models import LogLevel, Severity
from pmon.store import alert_store, api_queries, queries
from pmon.store.plugin_queries import count_events_between, count_logs_between, plugin_summary, series_ids

PREFIX = "/api/advanced-monitoring"
SUMMARY_WINDOW = 3600.0
"""The summary's statistics cover the last hour."""


async def _read(ctx: ApiContext, fn: Any, *args: Any) -> Any:
    try:
        return await ctx.readers.read(fn, *args)
    except STORE_ERRORS as exc:
        raise ApiError(503, f"the store cannot be read right now: {exc}", None, {"Retry-After": "1"}) from None


def _page(items: list[dict[str, Any]], more: bool, cursor: str | None) -> dict[str, Any]:
    return {"items": items, "count": len(items), "next_cursor": cursor if more else None}


async def status(request: web.Request) -> web.Response:
    """The monitor's status: uptime, plugins, caches, queue, rows written, drops, DB size; the daemon's and the API's."""
    ctx = request.app[CONTEXT]
    Params(request, ())
    body = ctx.monitor.status()
    body["daemon"] = ctx.daemon_status()
    body["api"] = {"listen": ctx.listen.url(), "uptime_seconds": round(time.time() - ctx.started_at, 3),
                   "token_required": ctx.token is not None, **ctx.counters.as_dict()}
    return json_response(body)


async def plugins(request: web.Request) -> web.Response:
    """Every plugin with its status and latest values."""
    ctx = request.app[CONTEXT]
    Params(request, ())
    found = await _read(ctx, queries.plugins)
    return json_response({"plugins": [shapes.plugin(p) for p in found], "count": len(found)})


def _summary(conn: Any, plugin_id: str, now: float) -> dict[str, Any] | None:
    found = plugin_summary(conn, plugin_id, series_ids(conn, plugin_id))
    if found is None:
        return None
    since = now - SUMMARY_WINDOW
    stats = perf.performance(conn, since, now, plugin_id)
    mine = next((p for p in stats.plugins if p.plugin_id == plugin_id), None)
    open_alerts = [shapes.alert(a) for a in alert_store.open_alerts(conn) if a.plugin_id == plugin_id]
    counts = {
        "errors_last_hour": count_logs_between(conn, plugin_id, ("error", "critical"), since, now),
        "high_events_last_hour": count_events_between(conn, plugin_id, ("high", "critical"), since, now),
    }
    return {**shapes.plugin(found), "statistics": mine.to_dict() if mine else None, "window_seconds": SUMMARY_WINDOW,
            **counts, "open_alerts": open_alerts}


async def summary(request: web.Request) -> web.Response:
    """One plugin: status, latest values, last hour's statistics and counts, open alerts."""
    ctx = request.app[CONTEXT]
    Params(request, ())
    plugin_id = request.match_info["plugin_id"]
    body = await _read(ctx, _summary, plugin_id, time.time())
    if body is None:
        raise ApiError(404, f"no plugin {plugin_id!r} in the store", "plugin_id")
    return json_response(body)


async def metrics(request: web.Request) -> web.Response:
    """A page of a plugin's metric points, newest first (``metric_type``, ``since``, ``until``, ``limit``, ``cursor``)."""
    ctx = request.app[CONTEXT]
    params = Params(request, ("metric_type", "since", "until", "limit", "cursor"))
    since, until = params.range()
    limit, before = params.limit(), params.pair_cursor()
    page = await _read(ctx, lambda conn: api_queries.metric_page(
        conn, request.match_info["plugin_id"], metric_type=params.text("metric_type"), since=since, until=until,
        before=before, limit=limit))
    last = page.rows[-1] if page.rows else None
    cursor = f"{round(last.timestamp * 1000)}-{last.id}" if last else None
    return json_response(_page([shapes.metric(r) for r in page.rows], page.more, cursor))


async def logs(request: web.Request) -> web.Response:
    """A page of a plugin's logs, newest first (``level`` is the minimum; ``q`` searches the message)."""
    ctx = request.app[CONTEXT]
    params = Params(request, ("level", "q", "since", "until", "limit", "cursor"))
    since, until = params.range()
    level = params.choice("level", [lvl.value for lvl in LogLevel])
    limit, cursor = params.limit(), params.cursor()
    page = await _read(ctx, lambda conn: api_queries.log_page(
        conn, request.match_info["plugin_id"], min_level=level, text=params.text("q"), since=since, until=until,
        before_id=cursor, limit=limit))
    return json_response(_page([shapes.log(e) for e in page.rows], page.more, _last_id(page.rows)))


async def events(request: web.Request) -> web.Response:
    """A page of a plugin's events, newest first (``severity`` is the minimum; ``q`` searches the description)."""
    ctx = request.app[CONTEXT]
    params = Params(request, ("severity", "q", "since", "until", "limit", "cursor"))
    since, until = params.range()
    severity = params.choice("severity", [sev.value for sev in Severity])
    limit, cursor = params.limit(), params.cursor()
    page = await _read(ctx, lambda conn: api_queries.event_page(
        conn, request.match_info["plugin_id"], min_severity=severity, text=params.text("q"), since=since,
        until=until, before_id=cursor, limit=limit))
    return json_response(_page([shapes.event(e) for e in page.rows], page.more, _last_id(page.rows)))


async def snapshots(request: web.Request) -> web.Response:
    """A page of a plugin's snapshots, newest first."""
    ctx = request.app[CONTEXT]
    params = Params(request, ("since", "until", "limit", "cursor"))
    since, until = params.range()
    limit, cursor = params.limit(), params.cursor()
    page = await _read(ctx, lambda conn: api_queries.snapshot_page(
        conn, request.match_info["plugin_id"], since=since, until=until, before_id=cursor, limit=limit))
    return json_response(_page([shapes.snapshot(s) for s in page.rows], page.more, _last_id(page.rows)))


def _last_id(rows: list[Any]) -> str | None:
    return str(rows[-1].id) if rows else None


async def trends(request: web.Request) -> web.Response:
    """Without ``metric``: a summary row per plugin x metric; with ``plugin`` and ``metric``: the bucketed trend."""
    ctx = request.app[CONTEXT]
    params = Params(request, ("plugin", "metric", "since", "until", "points"))
    since, until = params.range(default_seconds=SUMMARY_WINDOW)
    plugin_id, metric = params.text("plugin"), params.text("metric")
    points = params.integer("points", 60, 1, 1000)
    if metric is not None:
        if plugin_id is None:
            raise bad_request("metric needs plugin: a trend is one plugin's metric", "plugin")
        found = await _read(ctx, trend_analysis.trend, plugin_id, metric, since, until, points)
        return json_response(found.to_dict())
    rows = await _read(ctx, trend_analysis.trends, since, until, plugin_id)
    return json_response({"since": since, "until": until, "trends": [row.to_dict() for row in rows]})


async def performance(request: web.Request) -> web.Response:
    """Requests, p50/p95/p99 response time, error rate, throughput and uptime per plugin and overall."""
    ctx = request.app[CONTEXT]
    params = Params(request, ("plugin", "since", "until"))
    since, until = params.range(default_seconds=SUMMARY_WINDOW)
    found = await _read(ctx, perf.performance, since, until, params.text("plugin"))
    return json_response(found.to_dict())


def add_routes(app: web.Application) -> None:
    """Register the GET routes."""
    plugin = f"{PREFIX}/plugins/{{plugin_id}}"
    app.router.add_get(f"{PREFIX}/status", status)
    app.router.add_get(f"{PREFIX}/plugins", plugins)
    app.router.add_get(f"{plugin}/summary", summary)
    app.router.add_get(f"{plugin}/metrics", metrics)
    app.router.add_get(f"{plugin}/logs", logs)
    app.router.add_get(f"{plugin}/events", events)
    app.router.add_get(f"{plugin}/snapshots", snapshots)
    app.router.add_get(f"{PREFIX}/analytics/trends", trends)
    app.router.add_get(f"{PREFIX}/analytics/performance", performance)

"""The aiohttp application: middlewares in order, then every route."""

from __future__ import annotations

from aiohttp import web

from pmon.api import routes_prometheus, routes_read, routes_write, stream
from pmon.api.context import CONTEXT, ApiContext
from pmon.api.security import access_middleware, error_middleware
from pmon.api.server import busy_middleware


def build_app(ctx: ApiContext) -> web.Application:
    """One application per server; ``ctx`` is reachable from every handler as ``request.app[CONTEXT]``."""
    app = web.Application(middlewares=[busy_middleware, error_middleware, access_middleware(ctx)],
                          client_max_size=ctx.settings.max_body_bytes)
    app[CONTEXT] = ctx
    app.on_response_prepare.append(_server_header)
    routes_read.add_routes(app)
    routes_write.add_routes(app)
    routes_prometheus.add_routes(app)
    stream.add_routes(app)
    return app


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Name the product, not the versions of Python and aiohttp a scanner would look up."""
    response.headers["Server"] = "pmon"

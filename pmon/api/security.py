"""Who may talk to the API: bearer token, Host header, CORS, body size; and the JSON error net around it all.

The checks run before any route, in this order: errors become JSON; the
Host header must name this server (a DNS-rebinding page names its own);
CORS preflights are answered only for configured origins; the token is
compared in constant time; an announced body over the cap is refused before
a byte of it is read.
"""

from __future__ import annotations

import hmac
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from pmon.api.context import CONTEXT, ApiContext
from pmon.api.listen import Listen
from pmon.api.responses import ApiError, error_response
from pmon.config import ApiConfig, ConfigError

log = logging.getLogger("pmon.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MIN_TOKEN_CHARS = 16
TOKEN_ENV = "PMON_API_TOKEN"


def resolve_token(settings: ApiConfig, listen: Listen, base_dir: Path | None = None) -> str | None:
    """The token from ``PMON_API_TOKEN``, else ``token_file``, else ``token``; ConfigError when one is needed.

    Why the order: the environment and a file keep the secret out of pmon.toml,
    which people paste into tickets.
    """
    token = os.environ.get(TOKEN_ENV, "").strip()
    source = TOKEN_ENV
    if not token and settings.token_file:
        path = Path(settings.token_file).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"[api] token_file: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        token = lines[0].strip() if lines else ""
        source = f"token_file {path}"
        if not token:
            raise ConfigError(f"[api] token_file: {path} is empty; put the token on its first line")
    if not token and settings.token:
        token, source = settings.token.strip(), "[api] token"
    if token and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{source}: the token must be at least {MIN_TOKEN_CHARS} characters "
                          "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if not token and not listen.loopback:
        raise ConfigError(f"[api] listen = {listen.host}:{listen.port} is reachable from other machines: set a token "
                          f"({TOKEN_ENV}, [api] token_file or [api] token), or listen on 127.0.0.1")
    return token or None


def allowed_hosts(listen: Listen, extra: tuple[str, ...]) -> frozenset[str]:
    """Names a legitimate client may put in the Host header (lowercase, without the port)."""
    names = {listen.host.lower(), *(name.lower() for name in extra)}
    if listen.loopback or listen.wildcard:
        names |= {"localhost", "127.0.0.1", "::1"}
    if not listen.loopback:
        names |= _machine_names()
    if listen.wildcard:
        names |= _interface_addresses()
    return frozenset(names)


def _machine_names() -> set[str]:
    names = set()
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower())
    return names


def _interface_addresses() -> set[str]:
    import psutil

    found = set()
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                found.add(address.address.split("%", 1)[0].lower())
    return found


def host_name(header: str) -> str:
    """``example:8765`` -> ``example``; ``[::1]:8765`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() and ":" not in name else header


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes the JSON error shape; a bug answers 500 and is logged, the server goes on."""
    ctx = request.app[CONTEXT]
    ctx.counters.requests += 1
    try:
        response = await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.message, exc.field, exc.headers)
        if response.headers.get("Connection") == "close":  # the header alone left aiohttp keeping it alive
            response.force_close()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {404: f"no route {request.method} {request.path}",
                   405: f"{request.method} is not allowed on {request.path}"}.get(exc.status, exc.reason)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = error_response(exc.status, message, None, headers)
    except Exception:
        log.exception("API route %s %s failed", request.method, request.path)
        response = error_response(500, "internal error; the daemon's log has the details")
    if response.status >= 500:
        ctx.counters.responses_5xx += 1
    elif response.status >= 400:
        ctx.counters.responses_4xx += 1
    return response


def access_middleware(ctx: ApiContext) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Host check, CORS, token and announced body size, built once for this server's settings."""
    hosts = allowed_hosts(ctx.listen, ctx.settings.allowed_hosts)
    origins = frozenset(ctx.settings.cors_origins)
    expected = ctx.token.encode() if ctx.token else None
    max_body = ctx.settings.max_body_bytes

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Host")
        if header is None or host_name(header) not in hosts:
            raise ApiError(403, "the Host header does not name this server (add the name to [api] allowed_hosts "
                                "if a proxy forwards it)", "Host")
        origin = request.headers.get("Origin")
        cors = origin if origin is not None and origin in origins else None
        if request.method == "OPTIONS" and cors is not None:
            return web.Response(status=204, headers=_cors_headers(cors, preflight=True))
        if expected is not None:
            given = request.headers.get("Authorization", "")
            scheme, _, credentials = given.partition(" ")
            given_bytes = credentials.strip().encode("utf-8", "surrogateescape")  # undecodable bytes still compare
            if scheme.lower() != "bearer" or not hmac.compare_digest(given_bytes, expected):
                raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)", "Authorization",
                               {"WWW-Authenticate": 'Bearer realm="pmon"'})
        length = request.content_length
        if length is not None and length > max_body:
            raise ApiError(413, f"the request body is {length} bytes; at most {max_body} (api.max_body_bytes)",
                           "Content-Length", {"Connection": "close"})
        response = await handler(request)
        if cors is not None and not response.prepared:
            response.headers.update(_cors_headers(cors, preflight=False))
        return response

    return access


def _cors_headers(origin: str, *, preflight: bool) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if preflight:
        headers |= {"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                    "Access-Control-Max-Age": "600"}
    return headers

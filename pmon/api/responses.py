"""JSON in and out: one error shape (``{"error", "field"}``), gzip for large bodies, bodies read under a deadline."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

COMPRESS_AT_BYTES = 1024
"""Smaller bodies go uncompressed: gzip would cost more than it saves."""


class ApiError(Exception):
    """A client mistake or a temporary refusal, answered as JSON with its status."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def bad_request(message: str, field: str | None = None) -> ApiError:
    """400 naming the field at fault."""
    return ApiError(400, message, field)


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "value"):  # StrEnum members serialise as their value anyway; other enums too
        return value.value
    return str(value)


def dumps(payload: Any) -> str:
    """Compact JSON; stored text stays as it is (escaping is the client's business, not the transport's)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_default)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response, gzip-compressed when large and the client accepts it."""
    body = dumps(payload).encode("utf-8", "replace")  # a lone surrogate echoed from a bad body becomes "?"
    response = web.Response(body=body, status=status, content_type="application/json", charset="utf-8",
                            headers=headers)
    if len(body) >= COMPRESS_AT_BYTES:
        response.enable_compression()  # aiohttp picks gzip / deflate from Accept-Encoding, or none
    return response


def error_response(status: int, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    """The one error shape every route and middleware answers with."""
    payload: dict[str, Any] = {"error": message, "status": status}
    if field is not None:
        payload["field"] = field
    return json_response(payload, status, headers)


async def read_json(request: web.Request, timeout: float) -> Any:
    """The request body as JSON; 400 / 408 / 413 / 415 as ApiError.

    The body must arrive within ``timeout`` seconds: a client that announces
    a megabyte and sends a byte a minute holds a connection, not a thread.
    """
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        if not request.content_type.endswith("+json"):
            raise ApiError(415, f"Content-Type must be application/json, got {request.content_type!r}",
                           "Content-Type")
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout:g} s") from None
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"the request body is larger than {request.client_max_size} bytes "
                            "(api.max_body_bytes)") from None
    except web.RequestPayloadError:  # a gzip / deflate body that does not decompress
        encoding = request.headers.get("Content-Encoding", "")
        raise bad_request(f"the body could not be decoded as Content-Encoding {encoding!r}"
                          if encoding else "the body could not be read", "body") from None
    except ConnectionError:  # the client hung up mid-body: nobody reads this answer, but it is no server fault
        raise bad_request("the connection closed before the whole body arrived", "body") from None
    if not raw:
        raise bad_request("the request body is empty; send a JSON object", "body")
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise bad_request("the JSON is nested too deeply", "body") from None
    except UnicodeDecodeError:
        raise bad_request("the body is not UTF-8 text", "body") from None
    except ValueError as exc:
        raise bad_request(f"invalid JSON: {exc}", "body") from None


def _refuse_constant(name: str) -> Any:
    """``NaN`` / ``Infinity`` are not JSON and cannot be stored."""
    raise ValueError(f"{name} is not a number JSON allows (NaN and infinities cannot be stored)")

"""Per-request plumbing: a request id, Server-Timing, one redacted log line, metrics, no
stack traces, and a bound on the body.

Pure ASGI (no BaseHTTPMiddleware) so it adds little to every request.
"""

from __future__ import annotations

import re
import sys
import time
import uuid

import orjson
import structlog
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import telemetry
from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gateway.observability import redact_path

log = structlog.get_logger("gateway.http")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class RequestContext:
    """Per request: the id (the caller's ``X-Request-ID`` when it is a sane token, else a
    new one), returned in ``X-Request-ID``; a ``Server-Timing`` header with the time spent
    in POS calls, in the database and in all (``gateway/telemetry.py``); one access line
    carrying those, the merchant and the GraphQL operation; the route's metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        record, token = telemetry.start(request_id)
        id_header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                timing = record.server_timing(time.perf_counter() - started)
                headers = [*message.get("headers", ()), id_header, (b"server-timing", timing)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", path=redact_path(scope["path"]))
            if response_started:
                raise
            status = 500
            body = orjson.dumps({"error": "internal error", "request_id": request_id})
            timing = record.server_timing(time.perf_counter() - started)
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        id_header,
                        (b"server-timing", timing),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            HTTP_REQUESTS.labels(route=route, method=scope["method"], status=str(status)).inc()
            HTTP_LATENCY.labels(route=route, method=scope["method"]).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=redact_path(scope["path"]),
                status=status,
                ms=round(elapsed * 1000, 1),
                upstream_calls=record.upstream_calls,
                upstream_ms=round(record.upstream.busy_s * 1000, 1),
                db_ms=round(record.db.busy_s * 1000, 1),
            )
            telemetry.stop(token)


class BodyTooLarge(Exception):
    """Raised into the app from ``receive``: no handler is meant to catch it."""


class BodyLimit:
    """Refuses a request body over ``max_bytes`` with 413 before it is read whole: at once
    when Content-Length says so, else as the chunks arrive (a chunked upload declares no
    length), so no entry point ever holds more than the limit in memory. ``graphql_path``
    is answered in GraphQL's shape, every other path as ``{"error": ...}``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, graphql_path: str = "/graphql") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        responded = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def noting_start(message: Message) -> None:
            nonlocal responded
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, noting_start)
        except BodyTooLarge:
            if responded:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"the request body is larger than {self.max_bytes} bytes"
        graphql = scope["path"] == self.graphql_path
        body = {"errors": [{"message": message}]} if graphql else {"error": message}
        # The rest of the body is never read, so the connection cannot carry another request.
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps(body)})


def _content_length(scope: Scope) -> int | None:
    """The declared length; one too long to be a number of bytes is simply too long."""
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit():
            return int(value) if len(value) <= 18 else sys.maxsize
    return None


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if REQUEST_ID.fullmatch(candidate):
                return str(candidate)
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> str:
    """The route's path template (bounded label values), never the concrete path."""
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", []):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unknown"))
    return "unmatched"

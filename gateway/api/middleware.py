"""Per-request plumbing: a request id, one redacted log line, metrics, and no stack traces.

Pure ASGI (no BaseHTTPMiddleware) so it adds little to every request.
"""

from __future__ import annotations

import re
import time
import uuid

import orjson
import structlog
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gateway.observability import redact_path

log = structlog.get_logger("gateway.http")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
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
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"x-request-id", request_id.encode()),
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
            )
            structlog.contextvars.unbind_contextvars("request_id")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if REQUEST_ID.match(candidate):
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

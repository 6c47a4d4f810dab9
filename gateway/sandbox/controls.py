"""Run-time controls shared by the POS sandboxes: latency, faults, a rate budget, counters.

A test proves how a client copes with slowness, failures and rate limits by arming faults
over HTTP, and proves how often the client called by reading the counters (``DELETE
/_sandbox/stats`` zeroes them, so a test counts its own calls, not its setup's). Every API
request therefore passes through ``ControlsMiddleware`` before the simulator sees it, in a
fixed order: count, read the whole body, delay (latency, then the hold of a late write),
injected status, rate budget. The ``/_sandbox/*`` routes themselves are never delayed, faulted,
limited or counted, so a test can always reach them.

Sandboxes are never kinder than the real API: a real server finishes a request whose client
went away, so a write whose answer was lost may still land, late. The body is therefore read
before any delay, and a client that times out during one no longer cancels its write.

Nothing here knows which POS it fronts: the sandbox passes its routes (for the counters' route
templates), its default budget and a reset hook.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
ResetHook = Callable[[Any], None]
"""Called with the fixtures of a reset body, or None for the startup fixtures; raises
ValueError when the fixtures are unusable, and must then leave the state untouched."""

ADMIN_PREFIX = "/_sandbox/"
_FAULT_STATUSES = frozenset(s.value for s in HTTPStatus if s.value >= 400)
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOO_MANY = {"error": "Too Many Requests", "message": "Rate limiting enforced"}


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window_s: int


@dataclass(frozen=True)
class Faults:
    """What ``POST /_sandbox/faults`` armed; the defaults mean "no fault"."""

    latency_ms: int = 0
    status: int | None = None
    fail_next: int | None = None
    method: str | None = None
    path: str | None = None
    retry_after_s: int = 1
    rate_limit: RateLimit | None = None
    # Process the request for real, then answer the fault instead: the write lands, the
    # answer is lost (what a client sees when a connection drops after the POS committed).
    after: bool = False
    # Hold a matching write this long before processing it for real: a client with a shorter
    # read timeout gives up, its read-back misses the write, and the write lands afterwards.
    late_ms: int = 0
    late_next: int | None = None

    def applies_to(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or path.startswith(self.path)
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_faults(data: object) -> Faults:
    """Read a faults body strictly: a typo in a test's fault must fail loudly, not be ignored."""
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(data) - {f for f in Faults.__dataclass_fields__}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    status = _optional_int(data, "status", 400)
    if status is not None and status not in _FAULT_STATUSES:
        raise ValueError("status must be an HTTP error status (4xx or 5xx)")
    fail_next = _optional_int(data, "fail_next", 0)
    if fail_next is not None and status is None:
        raise ValueError("fail_next needs a status")
    method = _optional_str(data, "method")
    path = _optional_str(data, "path")
    if path is not None and not path.startswith("/"):
        raise ValueError("path must start with /")
    retry_after_s = _optional_int(data, "retry_after_s", 0)
    after = data.get("after", False)
    if not isinstance(after, bool):
        raise ValueError("after must be true or false")
    if after and status is None:
        raise ValueError("after needs a status")
    late_ms = _optional_int(data, "late_ms", 0) or 0
    late_next = _optional_int(data, "late_next", 1)
    if late_next is not None and late_ms == 0:
        raise ValueError("late_next needs a late_ms above 0")
    return Faults(
        latency_ms=_optional_int(data, "latency_ms", 0) or 0,
        status=status,
        fail_next=fail_next,
        method=method.upper() if method else None,
        path=path,
        retry_after_s=1 if retry_after_s is None else retry_after_s,
        rate_limit=_parse_rate_limit(data.get("rate_limit")),
        after=after,
        late_ms=late_ms,
        late_next=late_next,
    )


def _optional_int(data: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _parse_rate_limit(value: object) -> RateLimit | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"limit", "window_s"}:
        raise ValueError('rate_limit must be {"limit": N, "window_s": S} or null')
    limit = _optional_int(value, "limit", 0)
    window_s = _optional_int(value, "window_s", 1)
    if limit is None or window_s is None:
        raise ValueError("rate_limit needs both limit and window_s")
    return RateLimit(limit, window_s)


def _error(status: int, error: str, details: str) -> JSONResponse:
    return JSONResponse({"error": error, "details": details}, status_code=status)


def _too_many(retry_at: float) -> JSONResponse:
    """The real X-Series 429: an HTTP-date, rounded up so that waiting until it is enough.
    Nothing is left until then, and the window starts afresh then."""
    headers = {
        "Retry-After": formatdate(math.ceil(retry_at), usegmt=True),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(math.ceil(retry_at)),
    }
    return JSONResponse(_TOO_MANY, status_code=429, headers=headers)


class SandboxControls:
    def __init__(
        self,
        *,
        routes: Sequence[Route],
        default_rate_limit: Callable[[], RateLimit],
        reset: ResetHook,
        latency_ms: int = 0,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.routes = list(routes)
        self.default_rate_limit = default_rate_limit
        self.reset_state = reset
        self.latency_ms = latency_ms
        self.clock = clock
        self.sleep = sleep
        self.faults = Faults()
        self.total = 0
        self.requests: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        self._window_start: float | None = None
        self._window_used = 0

    # -- the per-request steps, in the order the middleware runs them --

    def route_key(self, scope: Scope) -> str:
        """Method plus route template, so "GET /api/sales/{id}" counts every sale alike."""
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return f"{scope['method']} {route.path}"
            if match is Match.PARTIAL and partial is None:
                partial = route.path
        return f"{scope['method']} {partial or scope['path']}"

    def count_request(self, key: str) -> None:
        self.total += 1
        self.requests[key] += 1

    def count_response(self, key: str, status: int) -> None:
        self.responses[f"{key} {status}"] += 1

    async def delay(self, method: str, path: str) -> None:
        extra = self.faults.latency_ms if self.faults.applies_to(method, path) else 0
        total_ms = self.latency_ms + extra
        if total_ms > 0:
            await self.sleep(total_ms / 1000)
        hold_ms = self.late_hold_ms(method, path)
        if hold_ms > 0:
            await self.sleep(hold_ms / 1000)

    def late_hold_ms(self, method: str, path: str) -> int:
        """Only writes are held: a read during the hold must see the state without the write,
        as a client reading back after its timeout would on the real POS."""
        faults = self.faults
        if faults.late_ms == 0 or faults.late_next == 0 or method in _READ_METHODS:
            return 0
        if not faults.applies_to(method, path):
            return 0
        if faults.late_next is not None:
            self.faults = replace(faults, late_next=faults.late_next - 1)
        return faults.late_ms

    def injected_fault(self, method: str, path: str) -> Response | None:
        faults = self.faults
        if faults.status is None or faults.fail_next == 0:
            return None
        if not faults.applies_to(method, path):
            return None
        if faults.fail_next is not None:
            self.faults = replace(faults, fail_next=faults.fail_next - 1)
        if faults.status == 429:
            return _too_many(self.clock() + faults.retry_after_s)
        phrase = HTTPStatus(faults.status).phrase
        return _error(faults.status, phrase, "Injected by POST /_sandbox/faults")

    def spend_budget(self) -> Response | None:
        """A fixed window that opens with the first request after the previous one ended."""
        now = self.clock()
        budget = self.rate_limit()
        if self._window_start is None or now >= self._window_start + budget.window_s:
            self._window_start, self._window_used = now, 0
        if self._window_used >= budget.limit:
            return _too_many(self._window_start + budget.window_s)
        self._window_used += 1
        return None

    def rate_limit(self) -> RateLimit:
        return self.faults.rate_limit or self.default_rate_limit()

    def remaining(self) -> int:
        budget = self.rate_limit()
        start = self._window_start
        if start is None or self.clock() >= start + budget.window_s:
            return budget.limit
        return max(0, budget.limit - self._window_used)

    def reset_at(self) -> int:
        """``X-RateLimit-Reset``: the epoch second (rounded up) when the window ends; with
        no window open, when one opened now would (docs/pos-contracts.md: inferred)."""
        budget = self.rate_limit()
        start = self._window_start
        now = self.clock()
        if start is None or now >= start + budget.window_s:
            start = now
        return math.ceil(start + budget.window_s)

    # -- state changes driven by the /_sandbox routes --

    def set_faults(self, faults: Faults) -> None:
        if faults.rate_limit != self.faults.rate_limit:
            self._window_start = None
        self.faults = faults

    def reset(self, fixtures: Any = None) -> None:
        self.reset_state(fixtures)
        self.faults = Faults()
        self.clear_counters()
        self._window_start, self._window_used = None, 0

    def clear_counters(self) -> None:
        self.total = 0
        self.requests.clear()
        self.responses.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "requests": dict(self.requests),
            "responses": dict(self.responses),
        }

    def admin_routes(self) -> list[Route]:
        return [
            Route("/_sandbox/faults", self._get_faults, methods=["GET"]),
            Route("/_sandbox/faults", self._post_faults, methods=["POST"]),
            Route("/_sandbox/faults", self._delete_faults, methods=["DELETE"]),
            Route("/_sandbox/stats", self._get_stats, methods=["GET"]),
            Route("/_sandbox/stats", self._delete_stats, methods=["DELETE"]),
            Route("/_sandbox/reset", self._post_reset, methods=["POST"]),
        ]

    async def _get_faults(self, request: Request) -> Response:
        return JSONResponse(self.faults.to_json())

    async def _post_faults(self, request: Request) -> Response:
        try:
            faults = parse_faults(json.loads(await request.body()))
        except (ValueError, RecursionError) as exc:
            return _error(400, "Invalid faults", str(exc))
        self.set_faults(faults)
        return JSONResponse(self.faults.to_json())

    async def _delete_faults(self, request: Request) -> Response:
        self.set_faults(Faults())
        return JSONResponse(self.faults.to_json())

    async def _get_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats())

    async def _delete_stats(self, request: Request) -> Response:
        """Counters from now on, the state kept: a test counts what it does, not its setup."""
        self.clear_counters()
        return JSONResponse(self.stats())

    async def _post_reset(self, request: Request) -> Response:
        body = await request.body()
        fixtures = None
        try:
            if body.strip():
                fixtures = json.loads(body, parse_float=Decimal)
            self.reset(fixtures)
        except (ValueError, RecursionError) as exc:
            return _error(400, "Invalid fixtures", str(exc))
        return JSONResponse({"reset": "body" if fixtures is not None else "startup"})


class ControlsMiddleware:
    """Pure ASGI, so it sees faulted and rate-limited requests that never reach a route."""

    def __init__(self, app: ASGIApp, controls: SandboxControls) -> None:
        self.app = app
        self.controls = controls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        controls = self.controls
        method, path = scope["method"], scope["path"]
        key = controls.route_key(scope)
        controls.count_request(key)
        body = await _read_body(receive)
        if body is None:
            return  # the client left mid-body: no server could process a partial request
        receive = _replay(body, receive)
        started = False

        async def send_with_rate_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-RateLimit-Limit", str(controls.rate_limit().limit))
                headers.setdefault("X-RateLimit-Remaining", str(controls.remaining()))
                headers.setdefault("X-RateLimit-Reset", str(controls.reset_at()))
                controls.count_response(key, message["status"])
            await send(message)

        await controls.delay(method, path)
        after = controls.faults.after
        refusal = controls.injected_fault(method, path)
        if refusal is not None and after:
            await self.app(scope, receive, _discard)
            await refusal(scope, receive, send_with_rate_headers)
            return
        refusal = refusal or controls.spend_budget()
        if refusal is not None:
            await refusal(scope, receive, send_with_rate_headers)
            return
        try:
            await self.app(scope, receive, send_with_rate_headers)
        except Exception:
            if not started:
                controls.count_response(key, 500)
            raise


async def _read_body(receive: Receive) -> bytes | None:
    """Read before any delay: once the client has gone, the server's receive() only answers
    ``http.disconnect``, and the write would be dropped where a real POS would apply it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app reads the buffered body; after it, the server's own receive() still reports a
    disconnect to anything that listens for one."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _discard(message: Message) -> None:
    """Swallows a response nobody will receive (``after`` faults)."""

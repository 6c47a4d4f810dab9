"""The one HTTP layer every POS client goes through.

What it promises, whichever POS is behind it:
- explicit connect/read timeouts and a pooled ``httpx.AsyncClient`` shared by all merchants;
- safe requests (GET, or a write the caller marks idempotent) are retried a bounded number
  of times with full-jitter exponential backoff on timeouts, connection errors and 5xx;
- a POS that publishes a rate limit (X-Series) is kept under it: each attempt first spends
  a unit of the account's budget, shared by all processes (``gateway/pos/budget.py``), and
  a spent budget is a ``RATE_LIMITED`` the POS never sees;
- a 429, or a spent budget, is waited out until its ``Retry-After`` (HTTP date or seconds)
  when that is within ``max_retry_after_s`` and the request is safe, else surfaced as
  ``RATE_LIMITED``; an unsafe request is never sent twice, except when the connection was
  refused before it left;
- an unsafe request whose answer was lost after it left (a read timeout, a dropped
  connection, a 5xx) raises ``UpstreamOutcomeUnknown``: it may still land;
- nothing waits past the request's deadline (``gateway/deadline.py``);
- a circuit breaker per upstream stops hammering a POS that keeps failing;
- identical GETs in flight at the same moment share one upstream call (and one unit of the
  budget), though a caller never shares one started by background work;
- failures arrive as the typed errors of ``gateway/pos/errors.py``; a 403 is a permission
  the token lacks (``UpstreamForbidden``), never retried.

JSON is read with ``Decimal`` for every non-integer number and written with Decimals as
exact number text, so money never passes through a float.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, Unpack
from urllib.parse import urlencode

import httpx
import structlog

from gateway import deadline, jsonx, priority, telemetry
from gateway.cache import Cache
from gateway.domain.errors import MAX_RETRY_AFTER_S
from gateway.metrics import UPSTREAM_LATENCY, UPSTREAM_REQUESTS
from gateway.pos.budget import Account, RateBudget, RateRule, Spend
from gateway.pos.errors import (
    UpstreamAuthError,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)

log = structlog.get_logger("gateway.upstream")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})

Params = Mapping[str, str | int | Sequence[str]]


# --------------------------------------------------------------------------- policy, auth


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    max_retries: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 2.0
    max_retry_after_s: float = 10.0
    breaker_failures: int = 5
    breaker_reset_s: float = 15.0

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s)

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))


class Auth(Protocol):
    """Supplies credentials per request; may renew them once when the POS says 401."""

    async def headers(self) -> dict[str, str]: ...

    async def renew(self, rejected: Mapping[str, str]) -> bool:
        """Called after a 401 with the headers that were refused; True means try again."""
        ...


class BearerToken:
    """A static bearer token (X-Series personal token, or a token managed elsewhere)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerToken(***)"

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def renew(self, rejected: Mapping[str, str]) -> bool:
        return False


# --------------------------------------------------------------------------- JSON


@dataclass(frozen=True)
class UpstreamResponse:
    status_code: int
    headers: httpx.Headers
    data: Any


# --------------------------------------------------------------------------- breaker


@dataclass
class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures → one trial after ``reset_s``."""

    threshold: int
    reset_s: float
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False

    def admit(self) -> bool | None:
        """None: refused (open). False: admitted normally (closed). True: admitted as the
        one trial of a half-open breaker; the caller must ``end_trial`` when done."""
        if self.opened_at is None:
            return False
        if self.clock() - self.opened_at < self.reset_s or self.trial_in_flight:
            return None
        self.trial_in_flight = True
        return True

    def end_trial(self) -> None:
        self.trial_in_flight = False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_in_flight = False

    def record_failure(self) -> None:
        self.failures += 1
        self.trial_in_flight = False
        if self.failures >= self.threshold:
            self.opened_at = self.clock()


# --------------------------------------------------------------------------- the layer


@dataclass
class HttpLayer:
    """Process-wide: the pooled client, breakers per upstream host, in-flight GETs, and the
    rate budgets, kept in ``cache`` (shared by every process when it is Redis; a memory
    cache of its own when none is given)."""

    policy: HttpPolicy = field(default_factory=HttpPolicy)
    max_connections: int = 100
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    transport: httpx.AsyncBaseTransport | None = None
    cache: Cache | None = None
    budget_reserve: float = 0.2

    def __post_init__(self) -> None:
        self.budget = RateBudget(self.cache or Cache(), reserve=self.budget_reserve)
        self.client = httpx.AsyncClient(
            timeout=self.policy.timeout,
            limits=httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            ),
            transport=self.transport,
            headers={"Accept": "application/json", "User-Agent": "lightspeed-loyalty-gateway"},
        )
        self._breakers: dict[str, CircuitBreaker] = {}
        self.in_flight: dict[tuple[str, ...], asyncio.Task[UpstreamResponse]] = {}

    async def aclose(self) -> None:
        """Shared GETs outlive a caller that gave up on them; at shutdown nobody waits for
        them, and left running they would use the cache and the pool after both closed."""
        pending = list(self.in_flight.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.client.aclose()

    def upstream(
        self,
        pos: str,
        base_url: str,
        auth: Auth,
        *,
        policy: HttpPolicy | None = None,
        rate: RateRule | None = None,
    ) -> Upstream:
        """``rate``: the POS publishes a rate limit, and this is what it is assumed to be
        until its answers say; None: its 429s are only reacted to."""
        base_url = base_url.rstrip("/")
        account = Account(pos, base_url, rate) if rate is not None else None
        return Upstream(self, pos, base_url, auth, policy or self.policy, account)

    def forget(self, key: tuple[str, ...], task: asyncio.Task[UpstreamResponse]) -> None:
        self.in_flight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: waiters that gave up must not leave a warning behind

    def breaker(self, base_url: str, policy: HttpPolicy) -> CircuitBreaker:
        breaker = self._breakers.get(base_url)
        if breaker is None:
            breaker = CircuitBreaker(policy.breaker_failures, policy.breaker_reset_s)
            self._breakers[base_url] = breaker
        return breaker


class CallOptions(TypedDict, total=False):
    params: Params | None
    json_body: object
    form: Mapping[str, str] | None
    extra_headers: Mapping[str, str] | None
    idempotent: bool
    authenticated: bool


class Upstream:
    """One POS account as seen through the layer: a base URL and its credentials."""

    def __init__(
        self,
        layer: HttpLayer,
        pos: str,
        base_url: str,
        auth: Auth,
        policy: HttpPolicy,
        account: Account | None = None,
    ) -> None:
        self.layer = layer
        self.pos = pos
        self.base_url = base_url
        self.auth = auth
        self.policy = policy
        self.account = account

    async def get(
        self,
        path: str,
        params: Params | None = None,
        *,
        fresh: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """GET, sharing an identical call already in flight unless ``fresh``. A request
        waiting on a shared call counts it as its own (``gateway/telemetry.py``)."""
        if fresh:
            return await self.request("GET", path, params=params, extra_headers=headers)
        record = telemetry.upstream_begin()
        try:
            return await self._shared_get(path, params, headers)
        finally:
            telemetry.upstream_end(record)

    async def _shared_get(
        self, path: str, params: Params | None, headers: Mapping[str, str] | None
    ) -> UpstreamResponse:
        auth = await self.auth.headers()
        extra = repr(sorted((headers or {}).items()))
        # A caller never shares a call with background work: it may be refused the budget.
        who = "background" if priority.is_background() else "caller"
        key = (self.base_url, path, _canonical(params), extra, _identity(auth), who)
        task = self.layer.in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(
                self._request("GET", path, params=params, extra_headers=headers)
            )
            self.layer.in_flight[key] = task
            task.add_done_callback(lambda done: self.layer.forget(key, done))
        # shield: one caller giving up must not cancel the call the others are waiting on.
        return await asyncio.shield(task)

    async def post(self, path: str, body: object, *, idempotent: bool = False) -> UpstreamResponse:
        return await self.request("POST", path, json_body=body, idempotent=idempotent)

    async def put(self, path: str, body: object, *, idempotent: bool = True) -> UpstreamResponse:
        return await self.request("PUT", path, json_body=body, idempotent=idempotent)

    async def request(
        self, method: str, path: str, **options: Unpack[CallOptions]
    ) -> UpstreamResponse:
        """One call with the layer's guarantees, its time told to the request's record
        (``Server-Timing``). ``form`` sends a form-encoded body (OAuth token endpoints);
        ``authenticated=False`` sends no credentials (the same)."""
        record = telemetry.upstream_begin()
        try:
            return await self._request(method, path, **options)
        finally:
            telemetry.upstream_end(record)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: object = None,
        form: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
        authenticated: bool = True,
    ) -> UpstreamResponse:
        safe = method in SAFE_METHODS or idempotent
        policy = self.policy
        account = self.account  # None: no published rate limit to keep under
        breaker = self.layer.breaker(self.base_url, policy)
        content: bytes | None = None
        content_type = None
        if json_body is not None:
            content, content_type = jsonx.dumps(json_body), "application/json"
        elif form is not None:
            content = urlencode(form).encode()
            content_type = "application/x-www-form-urlencoded"
        renewed = False
        attempt = 0
        while True:
            self._timeout(policy, method, path)  # no time left: not even the breaker is asked
            trial = breaker.admit()
            if trial is None:
                raise UpstreamUnavailable(
                    f"{self.pos} is failing repeatedly; calls are paused for a few seconds",
                    pos=self.pos,
                )
            spend: Spend | None = None
            try:
                if account is not None:
                    spend = await self.layer.budget.spend(account, probe_ttl_s=_ttl(policy))
                    wait = spend.refused_for
                    if wait is not None:
                        if (
                            safe
                            and _within(wait, policy)
                            and await self._may_retry(policy, attempt, at_least=wait)
                        ):
                            attempt += 1
                            continue
                        raise self._rate_limited(wait, sent=False)
                timeout = self._timeout(policy, method, path)  # the wait for a unit counts
                headers = await self.auth.headers() if authenticated else {}
                if content_type is not None:
                    headers["Content-Type"] = content_type
                if extra_headers:
                    headers.update(extra_headers)
                started = time.perf_counter()
                try:
                    response = await self.layer.client.request(
                        method,
                        self.base_url + path,
                        params=_httpx_params(params),
                        content=content,
                        headers=headers,
                        timeout=timeout,
                    )
                except httpx.TransportError as exc:
                    breaker.record_failure()
                    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                    not_sent = not_sent or isinstance(exc, httpx.PoolTimeout)
                    self._observe(method, path, "timeout" if _is_timeout(exc) else "error", started)
                    if (safe or not_sent) and await self._may_retry(policy, attempt):
                        attempt += 1
                        continue
                    what = "timeout" if _is_timeout(exc) else "connection failed"
                    if not (safe or not_sent):
                        raise UpstreamOutcomeUnknown(
                            f"{self.pos} did not answer {method} {path} ({what}); "
                            "it may still apply it",
                            pos=self.pos,
                        ) from None
                    raise UpstreamUnavailable(
                        f"{self.pos} did not answer {method} {path} "
                        f"({what}{', after retries' if attempt else ''})",
                        pos=self.pos,
                    ) from None
                self._observe(method, path, str(response.status_code), started)
                status = response.status_code
                wait = None
                if status == 429:
                    wait = retry_after_seconds(response.headers.get("Retry-After"), time.time())
                if account is not None:
                    await self.layer.budget.learn(
                        account, status, response.headers, retry_after_s=wait
                    )

                if status == 401 and authenticated and not renewed:
                    renewed = True
                    breaker.record_success()  # it answered: the POS is up
                    if await self.auth.renew(headers):
                        continue
                if status == 429:
                    # Throttling says nothing about the POS's health: the breaker ignores it.
                    breaker.record_success()
                    if (
                        safe
                        and _within(wait, policy)
                        and await self._may_retry(policy, attempt, at_least=wait or 0.0)
                    ):
                        attempt += 1
                        continue
                    raise self._rate_limited(wait, sent=True)
                if status in RETRYABLE_STATUS:
                    breaker.record_failure()
                    if safe and await self._may_retry(policy, attempt):
                        attempt += 1
                        continue
                    if not safe:
                        raise UpstreamOutcomeUnknown(
                            f"{self.pos} answered {status} to {method} {path}; "
                            "it may have applied it",
                            pos=self.pos,
                            status=status,
                        )
                    raise UpstreamUnavailable(
                        f"{self.pos} answered {status} to {method} {path}"
                        + (" after retries" if attempt else ""),
                        pos=self.pos,
                        status=status,
                    )
                breaker.record_success()
                return self._result(method, path, response, safe=safe)
            finally:
                if account is not None and spend is not None:
                    await self.layer.budget.done(account, spend)
                if trial:  # however the attempt ended, the trial slot is free again
                    breaker.end_trial()

    def _rate_limited(self, wait: float | None, *, sent: bool) -> UpstreamRateLimited:
        """``sent``: the POS answered 429; else the budget was spent and nothing was sent."""
        when = f" in {math.ceil(wait)} s" if wait is not None else " later"
        return UpstreamRateLimited(
            f"{self.pos} rate limit reached; try again{when}",
            pos=self.pos,
            status=429 if sent else None,
            retry_after_s=wait,
        )

    def _timeout(self, policy: HttpPolicy, method: str, path: str) -> httpx.Timeout:
        """The policy's timeouts, cut short by the request's deadline."""
        left = deadline.remaining()
        if left is None:
            return policy.timeout
        if left <= 0:
            raise UpstreamUnavailable(
                f"no time was left to ask {self.pos} ({method} {path})", pos=self.pos
            )
        return httpx.Timeout(
            min(policy.read_timeout_s, left), connect=min(policy.connect_timeout_s, left)
        )

    async def _may_retry(self, policy: HttpPolicy, attempt: int, *, at_least: float = 0) -> bool:
        """Back off before another attempt, unless retries or the deadline are used up."""
        if attempt >= policy.max_retries:
            return False
        pause = max(at_least, policy.backoff(attempt, self.layer.rng))
        left = deadline.remaining()
        if left is not None and pause >= left:
            return False
        await self.layer.sleep(pause)
        return True

    def _result(
        self, method: str, path: str, response: httpx.Response, *, safe: bool
    ) -> UpstreamResponse:
        status = response.status_code
        data = _body(response)
        if status < 400:  # redirects are answers too (Kounta finds customers with a 302)
            return UpstreamResponse(status, response.headers, data)
        message = _error_message(data)
        where = f"{method} {path}"
        if status == 401:
            raise UpstreamAuthError(
                f"{self.pos} refused the merchant's credentials ({status}) for {where}",
                pos=self.pos,
                status=status,
            )
        if status == 403:
            raise UpstreamForbidden(
                f"{self.pos} does not permit the merchant's token to {where} (403): "
                "reconnect the store with that permission",
                pos=self.pos,
                status=status,
                upstream_message=message,
            )
        if status == 404:
            raise UpstreamNotFound(
                f"{self.pos} has no such resource ({where})",
                pos=self.pos,
                status=status,
                upstream_message=message,
            )
        if 400 <= status < 500:
            raise UpstreamRejected(
                f"{self.pos} rejected {where}: {message or status}",
                pos=self.pos,
                status=status,
                upstream_message=message,
            )
        if not safe:
            raise UpstreamOutcomeUnknown(
                f"{self.pos} answered {status} to {where}; it may have applied it",
                pos=self.pos,
                status=status,
            )
        raise UpstreamUnavailable(f"{self.pos} answered {status} to {where}", pos=self.pos)

    def _observe(self, method: str, path: str, outcome: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        called = endpoint(method, path)
        UPSTREAM_REQUESTS.labels(pos=self.pos, endpoint=called, status=outcome).inc()
        UPSTREAM_LATENCY.labels(pos=self.pos, endpoint=called).observe(elapsed)
        log.debug(
            "upstream",
            pos=self.pos,
            method=method,
            path=path,
            outcome=outcome,
            ms=round(elapsed * 1000, 1),
        )


# --------------------------------------------------------------------------- helpers

# Literal segments are words; where an API puts a version after ``/api`` or first (``v1``),
# that is literal too. Everything else in a path is an id (X-Series' are UUIDs, Kounta's
# numbers), so a metric label never carries one.
_WORD = frozenset("abcdefghijklmnopqrstuvwxyz_")
_VERSION = frozenset("0123456789.-v")
MAX_WORD = 40


def endpoint(method: str, path: str) -> str:
    """The call's method and path template, ``GET /api/register_sales/{id}``: the bounded
    label of the upstream metrics."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if not part:
            continue
        if len(part) <= MAX_WORD and _WORD.issuperset(part):
            continue
        after_api = i == 2 and parts[1] == "api"
        first_version = i == 1 and part[0] == "v"
        if (after_api or first_version) and len(part) <= 10 and _VERSION.issuperset(part):
            continue
        parts[i] = "{id}"
    return f"{method} {'/'.join(parts)}"


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (digits only, as RFC
    9110 has it) or an HTTP date; capped, so a hostile or broken header cannot overflow."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(min(int(value[:12]), MAX_RETRY_AFTER_S))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, min(when.timestamp() - now, float(MAX_RETRY_AFTER_S)))


def _ttl(policy: HttpPolicy) -> float:
    """At most how long one attempt can take."""
    return policy.connect_timeout_s + policy.read_timeout_s + 1.0


def _within(wait: float | None, policy: HttpPolicy) -> bool:
    return wait is None or wait <= policy.max_retry_after_s


def _is_timeout(exc: Exception) -> bool:
    return isinstance(exc, httpx.TimeoutException)


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return jsonx.loads(response.content)
    except ValueError:
        return response.text[:500]


def _error_message(data: Any) -> str | None:
    if isinstance(data, dict):
        parts = [str(data[k]) for k in ("error", "message", "details") if data.get(k)]
        return ": ".join(dict.fromkeys(parts)) or None
    if isinstance(data, str):
        return data or None
    return None


QueryPairs = list[tuple[str, str | int | float | bool | None]]


def _httpx_params(params: Params | None) -> QueryPairs | None:
    if params is None:
        return None
    pairs: QueryPairs = []
    for name, value in params.items():
        if isinstance(value, str | int):
            pairs.append((name, value))
        else:
            pairs.extend((name, item) for item in value)
    return pairs


def _canonical(params: Params | None) -> str:
    return repr(sorted((name, str(value)) for name, value in _httpx_params(params) or []))


def _identity(headers: Mapping[str, str]) -> str:
    """Requests under different credentials never share a response."""
    return hashlib.sha256(headers.get("Authorization", "").encode()).hexdigest()

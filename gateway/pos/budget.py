"""Keeping each POS account under its rate limit, across every gateway process.

X-Series allows each store (per application) a number of requests per window, and says on
every answer how many (``X-RateLimit-Limit``), how many are left (``X-RateLimit-Remaining``)
and, we infer, when the window starts afresh (``X-RateLimit-Reset``, epoch seconds)
(docs/pos-contracts.md). So the gateway need not wait for a 429: before each attempt the
HTTP layer spends one unit of the account's budget, counted in the cache that all
processes share, and when none is left it answers RATE_LIMITED itself, without calling
the POS.

- The budget is learnt, not assumed: every answer re-syncs the window (its limit and its
  end) and the count (never below what the POS has counted). Until an answer has told the
  current window, one call at a time goes, and the others wait for its answer: a store
  whose limit is far below the documented formula is not flooded when a window begins.
- Work nobody waits on (``gateway/priority.py``) stops while less than ``reserve`` of the
  window is left; callers may use all of it.
- Every attempt spends a unit (a retry too); a GET shared by several waiters is one call.

State in the cache, namespace ``rate-budget``, per account (its base URL): ``{account}``
holds the current window ("limit reset"), ``{account}@{reset}`` the units spent in it,
``{account}#probe`` marks the one call out while the window is unknown.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal

import structlog

from gateway import deadline, priority
from gateway.cache import Cache
from gateway.metrics import RATE_BUDGET_REMAINING, UPSTREAM_BUDGET_REFUSALS
from gateway.pos.errors import UpstreamUnavailable

log = structlog.get_logger("gateway.upstream")

LIMIT = "X-RateLimit-Limit"
REMAINING = "X-RateLimit-Remaining"
RESET = "X-RateLimit-Reset"

NAMESPACE = "rate-budget"
# How often a call waiting for the window's first answer looks whether another process
# has learnt it (one in this process wakes it at once).
POLL_S = 0.05
# A window's count outlives the window a little: a late answer may still raise it.
SLACK_S = 5.0


@dataclass(frozen=True)
class RateRule:
    """What a POS is assumed to allow where an answer does not say (its documentation)."""

    limit: int
    window_s: float


@dataclass(frozen=True)
class Account:
    """One POS account's budget: its base URL identifies the store."""

    pos: str
    key: str
    rule: RateRule


@dataclass(frozen=True)
class Window:
    limit: int
    reset_at: int  # the epoch second at which the POS counts afresh

    def encode(self) -> str:
        return f"{self.limit} {self.reset_at}"

    @classmethod
    def decode(cls, text: str | None) -> Window | None:
        limit, _, reset_at = (text or "").partition(" ")
        return cls(int(limit), int(reset_at)) if limit and reset_at else None


@dataclass(frozen=True)
class Headroom:
    limit: int
    remaining: int
    reset_at: int


@dataclass(frozen=True)
class Observation:
    """What one answer says: the limit, the units the POS has counted, the window's end
    (None when the answer does not say)."""

    limit: int
    used: int
    reset_at: int | None


@dataclass(frozen=True)
class Spend:
    """One attempt's claim: admitted (perhaps as the window's first call), or refused for
    ``refused_for`` seconds, until the window ends."""

    refused_for: float | None = None
    probe: bool = False


def allowance(limit: int, reserve: float, *, background: bool) -> int:
    """How many units of a window may be spent when a call goes: all of them for a caller;
    background work leaves ``reserve`` of the window (rounded up) to callers."""
    if not background:
        return limit
    return limit - math.ceil(limit * Decimal(str(reserve)))


def observe(
    status: int,
    headers: Mapping[str, str],
    *,
    retry_after_s: float | None,
    now: float,
    rule: RateRule,
) -> Observation | None:
    """Read the budget off one answer. A 429 says it is spent until its ``Retry-After``
    (one that does not say until when, or says now, teaches nothing: the layer backs off
    as for any 429). Without the headers the rule's limit stands in (never for a 5xx, which may come
    from a proxy that knows nothing of the budget). A window the answer says has ended
    teaches nothing (an answer overtaken by the next window's)."""
    limit, remaining, reset_at = (_count(headers.get(h)) for h in (LIMIT, REMAINING, RESET))
    if status == 429:
        remaining = 0
        if retry_after_s is not None and retry_after_s <= 0:
            return None  # "again now" (0, or a date gone by): nothing to wait for
        if retry_after_s is not None:
            reset_at = math.ceil(now + retry_after_s)
        if reset_at is None:
            return None
    if limit is None:
        if status >= 500:
            return None
        limit = rule.limit
    if reset_at is not None and reset_at <= now:
        return None
    used = 0 if remaining is None else max(0, limit - remaining)
    return Observation(limit, used, reset_at)


def _count(value: str | None) -> int | None:
    """A header's whole number: ASCII digits only, and not absurdly long."""
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        return None
    return int(value)


class RateBudget:
    """Every account's budget, as this process sees it; the state lives in the cache."""

    def __init__(
        self,
        cache: Cache,
        *,
        reserve: float = 0.2,
        clock: Callable[[], float] = time.time,
        poll_s: float = POLL_S,
    ) -> None:
        self.cache = cache
        self.reserve = reserve
        self.clock = clock
        self.poll_s = poll_s
        self._news: dict[str, asyncio.Event] = {}

    async def spend(self, account: Account, *, probe_ttl_s: float) -> Spend:
        """One unit for the attempt about to be sent. ``probe_ttl_s``: how long the
        window's first call may keep the others waiting should its process die."""
        background = priority.is_background()
        while True:
            now = self.clock()
            window = await self.window(account, now)
            if window is not None:
                up_to = allowance(window.limit, self.reserve, background=background)
                counter = f"{account.key}@{window.reset_at}"
                ttl = window.reset_at - now + SLACK_S
                if await self.cache.take(NAMESPACE, counter, up_to=up_to, ttl_s=ttl):
                    return Spend()
                kind = "background" if background else "caller"
                UPSTREAM_BUDGET_REFUSALS.labels(pos=account.pos, priority=kind).inc()
                log.debug("rate budget spent", pos=account.pos, priority=kind, limit=window.limit)
                return Spend(refused_for=max(0.0, window.reset_at - now))
            probe = f"{account.key}#probe"
            if await self.cache.put(NAMESPACE, probe, "1", ttl_s=probe_ttl_s, only_new=True):
                return Spend(probe=True)
            await self._wait_for_news(account)

    async def learn(
        self,
        account: Account,
        status: int,
        headers: Mapping[str, str],
        *,
        retry_after_s: float | None,
    ) -> None:
        """Re-sync from an answer: the window it tells becomes the current one, and its
        count is raised to what the POS has counted (ours may be higher: calls in flight)."""
        now = self.clock()
        seen = observe(status, headers, retry_after_s=retry_after_s, now=now, rule=account.rule)
        if seen is None:
            return
        remaining = RATE_BUDGET_REMAINING.labels(pos=account.pos, account=account.key)
        remaining.set(seen.limit - seen.used)
        reset_at = seen.reset_at
        if reset_at is None:
            current = await self.window(account, now)
            reset_at = current.reset_at if current else math.ceil(now + account.rule.window_s)
        ttl = reset_at - now + SLACK_S
        # The count first: whoever reads the new window finds its count already raised.
        counter = f"{account.key}@{reset_at}"
        await self.cache.raise_to(NAMESPACE, counter, seen.used, ttl_s=ttl)
        window = Window(seen.limit, reset_at)
        await self.cache.put(NAMESPACE, account.key, window.encode(), ttl_s=ttl)
        self._tell(account)

    async def done(self, account: Account, spend: Spend) -> None:
        """The attempt is over, answered or not: the window's first call lets another go."""
        if spend.probe:
            await self.cache.delete(NAMESPACE, f"{account.key}#probe")
            self._tell(account)

    async def headroom(self, account: Account) -> Headroom | None:
        """What is left of the current window as the shared count says (None: no answer
        has told the window yet, or it ended): for ``gateway doctor``, spending nothing."""
        now = self.clock()
        window = await self.window(account, now)
        if window is None:
            return None
        used = _count(await self.cache.peek(NAMESPACE, f"{account.key}@{window.reset_at}")) or 0
        return Headroom(window.limit, max(0, window.limit - used), window.reset_at)

    async def window(self, account: Account, now: float) -> Window | None:
        """The current window, if an answer has told it and it has not ended."""
        window = Window.decode(await self.cache.peek(NAMESPACE, account.key))
        return window if window is not None and window.reset_at > now else None

    async def _wait_for_news(self, account: Account) -> None:
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise UpstreamUnavailable(
                f"no time was left to ask {account.pos}: its first answer of this rate "
                "window is still awaited",
                pos=account.pos,
            )
        news = self._news.setdefault(account.key, asyncio.Event())
        pause = self.poll_s if left is None else min(self.poll_s, left)
        with suppress(TimeoutError):
            await asyncio.wait_for(news.wait(), pause)

    def _tell(self, account: Account) -> None:
        news = self._news.pop(account.key, None)
        if news is not None:
            news.set()

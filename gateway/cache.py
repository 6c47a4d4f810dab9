"""A small cache interface over aiocache: memory by default, Redis when configured.

Upstream reference data is cached (account config, payment types, products), and the
customers the gateway shows (``get_or_load_stamped``, forgotten in every process by
``restamp``: docs/architecture.md, "Caching and freshness"), never a balance a decision
depends on. Values are pydantic-typed and cross the wire as JSON, so Redis never holds
pickles. Misses are single-flight within a process: concurrent callers for one key share
one load.

It also holds what the gateway's processes must agree on about each POS's rate limit
(``gateway/pos/budget.py``): short texts, marks, and counters that change atomically
(a script on Redis; one lock on the memory backend, which serves one process).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import redis.asyncio as redis
from aiocache import Cache as AioCache
from aiocache.serializers import NullSerializer, StringSerializer
from pydantic import TypeAdapter

from gateway.metrics import CACHE_LOOKUPS

T = TypeVar("T")

REDIS_CONNECTIONS = 100  # per process
REDIS_WAIT_S = 5.0  # for a free connection; aiocache gives up on any call after 5 s too
# How long a key's stamp outlives its last restamp: far longer than any entry lives plus
# the longest load, so an entry stored under a stamp that has since expired is gone too.
STAMP_TTL_S = 24 * 3600
STAMP = "#stamp"  # the stamp of key K is kept under K#stamp


class SingleFlight:
    """One load per key at a time in this process; concurrent callers wait for it and share
    its answer (or its failure). The one mechanism behind the cache and the memo: sixteen
    requests finding an entry expired at once make one read, not sixteen."""

    def __init__(self) -> None:
        self._loading: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        pending = self._loading.get(key)
        if pending is not None:
            try:
                return cast(T, await asyncio.shield(pending))
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # we were cancelled ourselves
                # the loader was cancelled, not us: load it ourselves below
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # waiters re-raise it; nobody waiting is fine too
            raise
        else:
            future.set_result(value)
            return value
        finally:
            self._loading.pop(key, None)


class Cache:
    def __init__(self, url: str = "memory://") -> None:
        scheme = urlsplit(url).scheme
        if scheme == "memory":
            self.backend_name = "memory"
            self._backend: Any = AioCache(AioCache.MEMORY, serializer=NullSerializer())
        elif scheme in {"redis", "rediss"}:
            self.backend_name = "redis"
            self._backend = AioCache.from_url(url)
            self._backend.serializer = StringSerializer()
            # A burst of calls to one POS is a burst of rate-budget counts: they wait for
            # a free connection, where aiocache's pool would refuse beyond its size.
            pool = redis.BlockingConnectionPool.from_url(
                url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT_S
            )
            self._backend.client = redis.Redis.from_pool(pool)
        else:
            raise ValueError(f"GATEWAY_CACHE_URL must be memory:// or redis://..., not {url!r}")
        self._flights = SingleFlight()
        self._counting = asyncio.Lock()  # memory backend: one counter change at a time

    async def get_or_load(
        self,
        namespace: str,
        key: str,
        load: Callable[[], Awaitable[T]],
        *,
        ttl: int,
        adapter: TypeAdapter[T],
    ) -> T:
        full_key = f"{namespace}:{key}"
        cached = await self._backend.get(full_key)
        if cached is not None:
            CACHE_LOOKUPS.labels(namespace=namespace, result="hit").inc()
            return self._decode(cached, adapter)
        CACHE_LOOKUPS.labels(namespace=namespace, result="miss").inc()

        async def load_and_store() -> T:
            value = await load()
            await self._backend.set(full_key, self._encode(value, adapter), ttl=ttl)
            return value

        return await self._flights.run(full_key, load_and_store)

    async def get_or_load_stamped(
        self,
        namespace: str,
        key: str,
        load: Callable[[], Awaitable[T]],
        *,
        ttl_s: float,
        adapter: TypeAdapter[T],
        now: Callable[[], float],
        fresh: bool = False,
    ) -> T:
        """A value the gateway's own writes change: served while younger than ``ttl_s`` by
        ``now`` (the runtime's clock, so tests move time) and while its key's stamp is the
        one it was loaded under. ``restamp`` changes the stamp, so neither an entry stored
        before nor one a load in flight stores after is ever served again, in any process
        that shares the backend; and no load is shared across stamps. ``fresh``: load now,
        whatever is cached (and store what was read for the next reader); a load of the
        same stamp already in flight in this process is as fresh, and is shared."""
        full_key = f"{namespace}:{key}"
        raw, raw_stamp = await self._backend.multi_get([full_key, full_key + STAMP])
        stamp = "" if raw_stamp is None else str(raw_stamp)
        if raw is not None and not fresh:
            entry_stamp, read_at, value = self._decode_stamped(raw, adapter)
            if entry_stamp == stamp and 0 <= now() - read_at < ttl_s:
                CACHE_LOOKUPS.labels(namespace=namespace, result="hit").inc()
                return value
        CACHE_LOOKUPS.labels(namespace=namespace, result="miss").inc()

        async def load_and_store() -> T:
            read_at = now()  # before the read: the entry is as old as the moment it began
            value = await load()
            entry = self._encode_stamped(stamp, read_at, value, adapter)
            await self._backend.set(full_key, entry, ttl=_ttl(ttl_s))
            return value

        return await self._flights.run(f"{full_key}{STAMP}{stamp}", load_and_store)

    async def restamp(self, namespace: str, key: str) -> None:
        """Forget a stamped value everywhere: what is cached, and what any load begun
        before now would store."""
        full_key = f"{namespace}:{key}"
        await self._backend.set(full_key + STAMP, uuid.uuid4().hex, ttl=STAMP_TTL_S)
        await self._backend.delete(full_key)

    async def delete(self, namespace: str, key: str) -> None:
        await self._backend.delete(f"{namespace}:{key}")

    # -- texts, marks and counters shared by every process (the POS rate budget) --

    async def peek(self, namespace: str, key: str) -> str | None:
        value = await self._backend.get(f"{namespace}:{key}")
        return None if value is None else str(value)

    async def put(
        self, namespace: str, key: str, value: str, *, ttl_s: float, only_new: bool = False
    ) -> bool:
        """Store ``value``; with ``only_new``, only if the key is absent (a claim). True
        when stored."""
        full_key, ttl = f"{namespace}:{key}", _ttl(ttl_s)
        if not only_new:
            await self._backend.set(full_key, value, ttl=ttl)
            return True
        try:
            await self._backend.add(full_key, value, ttl=ttl)
        except ValueError:  # aiocache's way of saying the key exists
            return False
        return True

    async def take(self, namespace: str, key: str, *, up_to: int, ttl_s: float) -> bool:
        """Add one to a counter unless it has reached ``up_to``; True when added."""
        full_key, ttl = f"{namespace}:{key}", _ttl(ttl_s)
        if self.backend_name == "redis":
            taken = await self._backend.raw("eval", _TAKE, 1, full_key, up_to, _ms(ttl))
            return bool(taken)
        async with self._counting:
            used = int(await self._backend.get(full_key) or 0)
            if used >= up_to:
                return False
            await self._backend.set(full_key, str(used + 1), ttl=ttl)
            return True

    async def raise_to(self, namespace: str, key: str, value: int, *, ttl_s: float) -> None:
        """Make a counter at least ``value`` (another party counted more than we did)."""
        full_key, ttl = f"{namespace}:{key}", _ttl(ttl_s)
        if self.backend_name == "redis":
            await self._backend.raw("eval", _RAISE, 1, full_key, value, _ms(ttl))
            return
        async with self._counting:
            current = await self._backend.get(full_key)
            if current is None or int(current) < value:
                await self._backend.set(full_key, str(value), ttl=ttl)

    async def ping(self) -> None:
        """Raise when the backend cannot be reached (readiness)."""
        await self._backend.exists("gateway:ping")

    async def clear(self) -> None:
        await self._backend.clear()

    async def aclose(self) -> None:
        await self._backend.close()

    def _encode(self, value: T, adapter: TypeAdapter[T]) -> Any:
        return value if self.backend_name == "memory" else adapter.dump_json(value).decode()

    def _decode(self, raw: Any, adapter: TypeAdapter[T]) -> T:
        if self.backend_name == "memory":
            return cast(T, raw)
        return adapter.validate_json(raw)

    def _encode_stamped(self, stamp: str, read_at: float, value: T, adapter: TypeAdapter[T]) -> Any:
        if self.backend_name == "memory":
            return (stamp, read_at, value)
        return f"{stamp}|{read_at!r}|{adapter.dump_json(value).decode()}"

    def _decode_stamped(self, raw: Any, adapter: TypeAdapter[T]) -> tuple[str, float, T]:
        if self.backend_name == "memory":
            return cast(tuple[str, float, T], raw)
        stamp, read_at, value = str(raw).split("|", 2)
        return stamp, float(read_at), adapter.validate_json(value)


def _ttl(seconds: float) -> float:
    """aiocache reads a float TTL as seconds with milliseconds; never zero (no expiry)."""
    return max(0.001, float(seconds))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


# One round trip each, atomic on the Redis server: read, decide, write with the expiry.
_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], used + 1, 'PX', ARGV[2])
return 1
"""
_RAISE = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class Memo:
    """Short-lived, process-local answers from the gateway's own store (the merchant
    behind an API key or a Kounta company, a reward catalogue): hot on every request,
    changed rarely, so a few seconds of staleness buys skipping the database. Bounded:
    the oldest entries go first, so unknown keys sent by a stranger cannot grow it."""

    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._flights = SingleFlight()
        # Bumped by forget (one key) and clear (every key): a load begun before is neither
        # joined after it nor kept (the change it was forgotten for may be missing from it).
        self._generations: dict[tuple[str, str], int] = {}
        self._epoch = 0

    def _generation(self, entry_key: tuple[str, str]) -> tuple[int, int]:
        return self._epoch, self._generations.get(entry_key, 0)

    async def get_or_load(self, namespace: str, key: str, load: Callable[[], Awaitable[T]]) -> T:
        entry_key = (namespace, key)
        entry = self._entries.get(entry_key)
        if entry is not None and entry[0] > time.monotonic():
            return cast(T, entry[1])
        generation = self._generation(entry_key)

        async def load_and_keep() -> T:
            loaded_at = time.monotonic()
            value = await load()
            if self._generation(entry_key) == generation:
                self._entries.pop(entry_key, None)
                while len(self._entries) >= self.max_entries:
                    self._entries.pop(next(iter(self._entries)))
                self._entries[entry_key] = (loaded_at + self.ttl_s, value)
            return value

        return await self._flights.run((namespace, key, generation), load_and_keep)

    def forget(self, namespace: str, key: str) -> None:
        self._entries.pop((namespace, key), None)
        self._generations[(namespace, key)] = self._generations.get((namespace, key), 0) + 1

    def clear(self) -> None:
        """Everything, after a change that touches much (a POS connected or disconnected)."""
        self._entries.clear()
        self._generations.clear()
        self._epoch += 1

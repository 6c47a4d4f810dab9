"""A small cache interface over aiocache: memory by default, Redis when configured.

Only upstream reference data is cached (account config, payment types, products), never
a balance a decision depends on. Values are pydantic-typed and cross the wire as JSON, so
Redis never holds pickles. Misses are single-flight within a process: concurrent callers
for one key share one load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from aiocache import Cache as AioCache
from aiocache.serializers import NullSerializer, StringSerializer
from pydantic import TypeAdapter

from gateway.metrics import CACHE_LOOKUPS

T = TypeVar("T")


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
        else:
            raise ValueError(f"GATEWAY_CACHE_URL must be memory:// or redis://..., not {url!r}")
        self._loading: dict[str, asyncio.Future[Any]] = {}

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
        pending = self._loading.get(full_key)
        if pending is not None:
            try:
                return cast(T, await asyncio.shield(pending))
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # we were cancelled ourselves
                # the loader was cancelled, not us: load it ourselves below
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[full_key] = future
        try:
            value = await load()
            await self._backend.set(full_key, self._encode(value, adapter), ttl=ttl)
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
            self._loading.pop(full_key, None)

    async def delete(self, namespace: str, key: str) -> None:
        await self._backend.delete(f"{namespace}:{key}")

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


class Memo:
    """Short-lived, process-local answers from the gateway's own store (the merchant
    behind an API key or a Kounta company, a reward catalogue): hot on every request,
    changed rarely, so a few seconds of staleness buys skipping the database. Bounded:
    the oldest entries go first, so unknown keys sent by a stranger cannot grow it."""

    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    async def get_or_load(self, namespace: str, key: str, load: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get((namespace, key))
        if entry is not None and entry[0] > now:
            return cast(T, entry[1])
        value = await load()
        self._entries.pop((namespace, key), None)
        while len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[(namespace, key)] = (now + self.ttl_s, value)
        return value

    def forget(self, namespace: str, key: str) -> None:
        self._entries.pop((namespace, key), None)

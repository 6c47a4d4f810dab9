"""The cache's stamped values (``Cache.get_or_load_stamped``, ``restamp``), on each
backend: what the customer cache's freshness rests on (docs/architecture.md, "Caching
and freshness")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pydantic import TypeAdapter

from gateway.runtime import Runtime

INT = TypeAdapter(int)
TTL_S = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_value_is_served_until_its_ttl_by_the_clock_given(runtime: Runtime) -> None:
    clock, source = Clock(), iter(range(1, 100))

    async def load() -> int:
        return next(source)

    async def read() -> int:
        return await runtime.cache.get_or_load_stamped(
            "stamped", "k", load, ttl_s=TTL_S, adapter=INT, now=clock
        )

    assert await read() == 1
    clock.now += TTL_S - 1
    assert await read() == 1
    clock.now += 1
    assert await read() == 2


async def test_a_restamp_forgets_what_is_cached(runtime: Runtime) -> None:
    clock, source = Clock(), iter(range(1, 100))

    async def load() -> int:
        return next(source)

    async def read(*, fresh: bool = False) -> int:
        return await runtime.cache.get_or_load_stamped(
            "stamped", "k", load, ttl_s=TTL_S, adapter=INT, now=clock, fresh=fresh
        )

    assert await read() == 1
    assert await read() == 1
    await runtime.cache.restamp("stamped", "k")
    assert await read() == 2
    assert await read(fresh=True) == 3  # read now, whatever is cached...
    assert await read() == 3  # ...and left for the next reader


async def test_a_load_in_flight_across_a_restamp_is_never_served(runtime: Runtime) -> None:
    """A read began before a write and answers after it was forgotten: what it read is
    from before the write, so neither it nor a reader after the write may keep it."""
    clock = Clock()
    started, release = asyncio.Event(), asyncio.Event()
    balance = 120

    async def slow_load() -> int:
        seen = balance  # read at the POS before the write
        started.set()
        await release.wait()
        return seen

    async def load() -> int:
        return balance

    def read(loader: Callable[[], Awaitable[int]]) -> asyncio.Task[int]:
        return asyncio.create_task(
            runtime.cache.get_or_load_stamped(
                "stamped",
                "k",
                loader,
                ttl_s=TTL_S,
                adapter=INT,
                now=clock,
            )
        )

    early = read(slow_load)
    await started.wait()
    balance = 80  # the gateway's write...
    await runtime.cache.restamp("stamped", "k")  # ...and what it forgets before answering
    after = read(load)  # the next read: not joined to the load from before the write
    assert await after == 80
    release.set()
    assert await early == 120  # it began before the write: its caller may see the old one
    assert await read(load) == 80  # but it was not kept

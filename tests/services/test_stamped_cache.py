"""The cache's stamped values (``Cache.get_or_load_stamped``, ``restamp``), on each
backend: what the customer cache's freshness rests on (docs/architecture.md, "Caching
and freshness")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pydantic import TypeAdapter

from gateway.metrics import CACHE_LOOKUPS
from gateway.runtime import Runtime
from tests.support import until

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


async def test_fresh_reads_in_flight_under_one_stamp_share_one_load(runtime: Runtime) -> None:
    """Sixteen registers looking up one member at once: one read of the POS, begun after
    the last write that moved the balance; a read after a restamp makes its own."""
    clock = Clock()
    started, release = asyncio.Event(), asyncio.Event()
    loads = 0

    async def slow_load() -> int:
        nonlocal loads
        loads += 1
        seen = 120 if loads == 1 else 80  # the second read is after the write
        started.set()
        await release.wait()
        return seen

    def fresh_read() -> asyncio.Task[int]:
        return asyncio.create_task(
            runtime.cache.get_or_load_stamped(
                "stamped", "k", slow_load, ttl_s=TTL_S, adapter=INT, now=clock, fresh=True
            )
        )

    def misses() -> float:
        return float(CACHE_LOOKUPS.labels(namespace="stamped", result="miss")._value.get())

    before = misses()
    first = fresh_read()
    await started.wait()
    together = [fresh_read() for _ in range(15)]
    # Each counts its miss just before it joins the load in flight (or starts its own).
    await until(lambda: misses() == before + 16, what="sixteen reads under way")
    await runtime.cache.restamp("stamped", "k")  # a write: what follows is read anew
    after = fresh_read()
    release.set()
    assert {await task for task in [first, *together]} == {120}
    assert await after == 80
    assert loads == 2

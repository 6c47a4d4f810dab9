"""Leases, idempotency records and the cache's single flight, on the real store and cache."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter
from sqlalchemy import insert, update

from gateway.cache import Memo
from gateway.domain.errors import ErrorCode, GatewayError, Unavailable
from gateway.runtime import Runtime
from gateway.services.idempotency import Attempt, Idempotency, fingerprint, lease_name
from gateway.store.idempotency import IdempotencyStore
from gateway.store.leases import LeaseBusy, LeaseLost, Leases
from gateway.store.models import LockRow
from tests.support import until

INT = TypeAdapter(int)


async def test_a_lease_serializes_its_holders(runtime: Runtime) -> None:
    leases = Leases(runtime.db)
    order: list[str] = []
    first_inside = asyncio.Event()

    async def first() -> None:
        async with leases.hold("customer-1"):
            order.append("first in")
            first_inside.set()
            await asyncio.sleep(0)  # give the second a chance to barge in (it must not)
            order.append("first out")

    async def second() -> None:
        await first_inside.wait()
        async with leases.hold("customer-1"):
            order.append("second in")

    await asyncio.gather(first(), second())
    assert order == ["first in", "first out", "second in"]


async def test_other_names_do_not_wait(runtime: Runtime) -> None:
    leases = Leases(runtime.db)
    async with leases.hold("a"), leases.hold("b", wait_s=1):
        pass


async def test_a_held_lease_times_out_with_a_clear_error(runtime: Runtime) -> None:
    leases = Leases(runtime.db)

    async def contender() -> None:
        async with Leases(runtime.db).hold("busy", wait_s=0.2):
            pass

    async with leases.hold("busy"):
        with pytest.raises(LeaseBusy) as timeout:
            await asyncio.create_task(contender())  # another task: it must wait, not re-enter
    assert timeout.value.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert timeout.value.transient


async def test_the_holding_task_may_re_enter(runtime: Runtime) -> None:
    leases = Leases(runtime.db)
    async with leases.hold("mine") as outer, leases.hold("mine", wait_s=0.2) as inner:
        assert inner is outer


async def test_a_crashed_holders_lease_frees_itself_when_it_ends(runtime: Runtime) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(
            insert(LockRow).values(
                name="orphan",
                owner="dead-process",
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
    started = time.monotonic()
    async with Leases(runtime.db).hold("orphan", wait_s=5):
        pass
    assert time.monotonic() - started < 1


async def test_a_holder_that_lost_its_lease_may_not_write(runtime: Runtime) -> None:
    leases = Leases(runtime.db, ttl_s=30)
    async with leases.hold("stolen") as lease:
        lease.ensure_held()
        lease.renewed_at -= 29  # as if the heartbeat had stalled for most of the lease
        with pytest.raises(LeaseLost):
            lease.ensure_held()


async def test_idempotency_resumes_a_crashed_attempt_from_its_checkpoint(
    runtime: Runtime,
) -> None:
    leases = Leases(runtime.db)
    store = IdempotencyStore(runtime.db, leases)
    name = lease_name("m", "api:k")
    async with leases.hold(name) as lease:
        record = await store.begin(lease, "m", "api:k", "op", fingerprint("op", {}))
        assert record.checkpoint is None
        assert await store.save_checkpoint(lease, "m", "api:k", {"reached": "before POST"})
    async with runtime.db.transaction() as session:  # the process died; its lease ran out
        await session.execute(
            insert(LockRow).values(
                name=name, owner="dead", expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    seen: list[dict[str, str] | None] = []

    async def execute(attempt: Attempt) -> int:
        seen.append(attempt.checkpoint)
        return 42

    idempotency = Idempotency(store, leases)
    for _ in range(2):
        result = await idempotency.run_once(
            merchant_id="m", key="k", operation="op", request={}, execute=execute, adapter=INT
        )
        assert result == 42
    assert seen == [{"reached": "before POST"}]


async def test_a_stalled_attempt_cannot_record_over_its_successor(runtime: Runtime) -> None:
    leases = Leases(runtime.db)
    store = IdempotencyStore(runtime.db, leases)
    name = lease_name("m", "api:stalled")
    async with leases.hold(name) as stalled:
        await store.begin(stalled, "m", "api:stalled", "op", fingerprint("op", {}))
        async with runtime.db.transaction() as session:  # its lease passed to another
            await session.execute(update(LockRow).values(owner="successor"))
        assert not await store.save_checkpoint(stalled, "m", "api:stalled", {"late": True})
        assert not await store.complete(stalled, "m", "api:stalled", "1")
    record = await store.get("m", "api:stalled")
    assert record is not None and record.checkpoint is None and not record.completed


class WatchedLeases(Leases):
    """The real leases, telling the test when a caller found the key taken."""

    found_busy = asyncio.Event()

    async def wait_released(self, name: str, timeout_s: float) -> None:
        self.found_busy.set()
        await super().wait_released(name, timeout_s)


async def test_a_live_attempt_is_waited_for_not_redone(runtime: Runtime) -> None:
    leases = WatchedLeases(runtime.db)
    leases.found_busy = asyncio.Event()
    idempotency = Idempotency(IdempotencyStore(runtime.db, leases), leases)
    started, finish = asyncio.Event(), asyncio.Event()
    runs = 0

    async def slow(attempt: Attempt) -> int:
        nonlocal runs
        runs += 1
        started.set()
        await finish.wait()
        return 5

    async def call() -> int:
        return await idempotency.run_once(
            merchant_id="m", key="live", operation="op", request={}, execute=slow, adapter=INT
        )

    first = asyncio.create_task(call())
    await started.wait()
    second = asyncio.create_task(call())
    await leases.found_busy.wait()
    finish.set()
    assert list(await asyncio.gather(first, second)) == [5, 5]
    assert runs == 1


async def test_the_same_key_with_other_input_is_refused(runtime: Runtime) -> None:
    leases = Leases(runtime.db)
    idempotency = Idempotency(IdempotencyStore(runtime.db, leases), leases)

    async def execute(attempt: Attempt) -> int:
        return 1

    await idempotency.run_once(
        merchant_id="m", key="k", operation="op", request={"a": 1}, execute=execute, adapter=INT
    )
    with pytest.raises(GatewayError) as reused:
        await idempotency.run_once(
            merchant_id="m", key="k", operation="op", request={"a": 2}, execute=execute, adapter=INT
        )
    assert reused.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED


async def test_idempotency_keys_must_be_sensible(runtime: Runtime) -> None:
    leases = Leases(runtime.db)
    idempotency = Idempotency(IdempotencyStore(runtime.db, leases), leases)

    async def execute(attempt: Attempt) -> int:
        return 1

    for key in ("", "   ", "x" * 256, "bad\ud800key", "new\nline"):
        with pytest.raises(GatewayError) as bad:
            await idempotency.run_once(
                merchant_id="m", key=key, operation="op", request={}, execute=execute, adapter=INT
            )
        assert bad.value.field == "idempotencyKey"


async def test_cache_misses_are_single_flight(runtime: Runtime) -> None:
    calls = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 7

    waiters = [
        asyncio.create_task(runtime.cache.get_or_load("ns", "k", load, ttl=60, adapter=INT))
        for _ in range(10)
    ]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [7] * 10
    assert calls == 1
    assert await runtime.cache.get_or_load("ns", "k", load, ttl=60, adapter=INT) == 7
    assert calls == 1


async def test_a_failed_load_is_not_cached(runtime: Runtime) -> None:
    attempts = 0

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise Unavailable("down")
        return 3

    with pytest.raises(GatewayError):
        await runtime.cache.get_or_load("ns", "flaky", flaky, ttl=60, adapter=INT)
    assert await runtime.cache.get_or_load("ns", "flaky", flaky, ttl=60, adapter=INT) == 3


async def test_a_counter_takes_up_to_its_ceiling_however_many_ask_at_once(
    runtime: Runtime,
) -> None:
    """The rate budget's count (gateway/pos/budget.py): atomic on either backend."""
    takes = [runtime.cache.take("ns", "count", up_to=20, ttl_s=60) for _ in range(60)]
    assert sum(await asyncio.gather(*takes)) == 20
    assert await runtime.cache.peek("ns", "count") == "20"
    assert await runtime.cache.take("ns", "count", up_to=21, ttl_s=60)


async def test_a_counter_is_raised_never_lowered(runtime: Runtime) -> None:
    await runtime.cache.raise_to("ns", "seen", 5, ttl_s=60)
    await runtime.cache.raise_to("ns", "seen", 3, ttl_s=60)
    assert await runtime.cache.peek("ns", "seen") == "5"
    assert not await runtime.cache.take("ns", "seen", up_to=5, ttl_s=60)
    assert await runtime.cache.take("ns", "seen", up_to=6, ttl_s=60)
    await runtime.cache.raise_to("ns", "seen", 6, ttl_s=60)
    assert await runtime.cache.peek("ns", "seen") == "6"


async def test_a_claim_has_one_holder_until_it_is_let_go(runtime: Runtime) -> None:
    claims = [runtime.cache.put("ns", "probe", "1", ttl_s=60, only_new=True) for _ in range(10)]
    assert sum(await asyncio.gather(*claims)) == 1
    await runtime.cache.delete("ns", "probe")
    assert await runtime.cache.put("ns", "probe", "2", ttl_s=60, only_new=True)
    assert await runtime.cache.peek("ns", "probe") == "2"


async def test_reads_do_not_wait_for_a_writer(runtime: Runtime) -> None:
    from sqlalchemy import func, select

    async with runtime.db.transaction() as writer:
        writer.add(LockRow(name="held", owner="me", expires_at=datetime.now(UTC)))
        await writer.flush()  # the writer holds the write lock until it commits
        async with asyncio.timeout(5), runtime.db.read() as reader:
            count = await reader.scalar(select(func.count()).select_from(LockRow))
        assert count == 0  # a snapshot from before the writer's uncommitted row


async def test_the_memo_loads_an_expired_entry_once_for_everyone_waiting() -> None:
    """Sixteen requests finding the merchant behind their API key expired at once: one read
    of the database, shared (it was sixteen, every ten seconds, at the tail's expense)."""
    memo = Memo(ttl_s=10.0)
    release = asyncio.Event()
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await release.wait()
        return "merchant-1"

    readers = [asyncio.create_task(memo.get_or_load("api-key", "digest", load)) for _ in range(16)]
    await until(lambda: loads >= 1, what="the first load under way (all sixteen have asked)")
    release.set()
    assert [await reader for reader in readers] == ["merchant-1"] * 16
    assert loads == 1
    assert await memo.get_or_load("api-key", "digest", load) == "merchant-1"
    assert loads == 1


async def test_a_memo_load_begun_before_a_forget_is_neither_joined_nor_kept() -> None:
    """A reward archived while the catalogue was being read: the next request reads it
    again instead of sharing (or later finding) the catalogue from before."""
    memo = Memo(ttl_s=10.0)
    started, release = asyncio.Event(), asyncio.Event()
    catalogue = ["coffee", "muffin"]

    async def slow_load() -> list[str]:
        seen = list(catalogue)  # read before the archive
        started.set()
        await release.wait()
        return seen

    async def load() -> list[str]:
        return list(catalogue)

    early = asyncio.create_task(memo.get_or_load("rewards", "m1", slow_load))
    await started.wait()
    catalogue.remove("muffin")  # archived...
    memo.forget("rewards", "m1")  # ...and forgotten before the archive is answered
    # Joined to the load from before, this would wait for it (and get the muffin).
    after = memo.get_or_load("rewards", "m1", load)
    assert await asyncio.wait_for(after, timeout=5) == ["coffee"]
    release.set()
    assert await early == ["coffee", "muffin"]  # begun before: its caller may see the old one
    assert await memo.get_or_load("rewards", "m1", load) == ["coffee"]  # but it was not kept

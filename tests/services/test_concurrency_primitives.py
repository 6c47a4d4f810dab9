"""Locks, idempotency records and the cache's single flight, on the real store and cache."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter
from sqlalchemy import insert, update

from gateway.domain.errors import ErrorCode, GatewayError
from gateway.runtime import Runtime
from gateway.services.idempotency import Attempt, Idempotency, fingerprint
from gateway.store.idempotency import Claim, ClaimOutcome, IdempotencyStore
from gateway.store.locks import LockLost, Locks, LockTimeout
from gateway.store.models import IdempotencyRow, LockRow

INT = TypeAdapter(int)


async def test_a_lock_serializes_its_holders(runtime: Runtime) -> None:
    locks = Locks(runtime.db)
    order: list[str] = []
    first_inside = asyncio.Event()

    async def first() -> None:
        async with locks.hold("customer-1"):
            order.append("first in")
            first_inside.set()
            await asyncio.sleep(0)  # give the second a chance to barge in (it must not)
            order.append("first out")

    async def second() -> None:
        await first_inside.wait()
        async with locks.hold("customer-1"):
            order.append("second in")

    await asyncio.gather(first(), second())
    assert order == ["first in", "first out", "second in"]


async def test_other_names_do_not_wait(runtime: Runtime) -> None:
    locks = Locks(runtime.db)
    async with locks.hold("a"), locks.hold("b", timeout_s=1):
        pass


async def test_a_held_lock_times_out_with_a_clear_error(runtime: Runtime) -> None:
    locks = Locks(runtime.db)

    async def contender() -> None:
        async with Locks(runtime.db).hold("busy", timeout_s=0.2):
            pass

    async with locks.hold("busy"):
        with pytest.raises(LockTimeout) as timeout:
            await asyncio.create_task(contender())  # another task: it must wait, not re-enter
    assert timeout.value.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert timeout.value.transient


async def test_the_holding_task_may_re_enter(runtime: Runtime) -> None:
    locks = Locks(runtime.db)
    async with locks.hold("mine") as outer, locks.hold("mine", timeout_s=0.2) as inner:
        assert inner is outer


async def test_a_crashed_holders_lock_frees_itself_when_its_lease_ends(runtime: Runtime) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(
            insert(LockRow).values(
                name="orphan",
                owner="dead-process",
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
    started = time.monotonic()
    async with Locks(runtime.db).hold("orphan", timeout_s=5):
        pass
    assert time.monotonic() - started < 1


async def test_a_holder_that_lost_its_lease_may_not_write(runtime: Runtime) -> None:
    locks = Locks(runtime.db, ttl_s=30)
    async with locks.hold("stolen") as lease:
        lease.ensure_held()
        lease.renewed_at -= 29  # as if the heartbeat had stalled for most of the lease
        with pytest.raises(LockLost):
            lease.ensure_held()


async def test_idempotency_resumes_a_crashed_attempt_from_its_checkpoint(
    runtime: Runtime,
) -> None:
    store = IdempotencyStore(runtime.db)
    claim = await store.claim("m", "api:k", "op", fingerprint("op", {}), "crashed-owner")
    assert claim.outcome is ClaimOutcome.EXECUTE
    await store.save_checkpoint("m", "api:k", "crashed-owner", {"reached": "before POST"})
    expired = datetime.now(UTC) - timedelta(seconds=1)
    async with runtime.db.transaction() as session:  # the process died; its lease ran out
        await session.execute(update(IdempotencyRow).values(lease_expires_at=expired))
    seen: list[dict[str, str] | None] = []

    async def execute(attempt: Attempt) -> int:
        seen.append(attempt.checkpoint)
        return 42

    idempotency = Idempotency(store)
    for _ in range(2):
        result = await idempotency.run_once(
            merchant_id="m", key="k", operation="op", request={}, execute=execute, adapter=INT
        )
        assert result == 42
    assert seen == [{"reached": "before POST"}]


class WatchedStore(IdempotencyStore):
    """The real store, telling the test when a caller found the key in progress."""

    found_busy = asyncio.Event()

    async def claim(self, *args: str) -> Claim:
        claim = await super().claim(*args)
        if claim.outcome is ClaimOutcome.BUSY:
            self.found_busy.set()
        return claim


async def test_a_live_attempt_is_waited_for_not_redone(runtime: Runtime) -> None:
    store = WatchedStore(runtime.db)
    store.found_busy = asyncio.Event()
    idempotency = Idempotency(store)
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
    await store.found_busy.wait()
    finish.set()
    assert await asyncio.gather(first, second) == [5, 5]
    assert runs == 1


async def test_the_same_key_with_other_input_is_refused(runtime: Runtime) -> None:
    idempotency = Idempotency(IdempotencyStore(runtime.db))

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
    idempotency = Idempotency(IdempotencyStore(runtime.db))

    async def execute(attempt: Attempt) -> int:
        return 1

    for key in ("", "   ", "x" * 256):
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
            raise GatewayError("down", code=ErrorCode.UPSTREAM_UNAVAILABLE)
        return 3

    with pytest.raises(GatewayError):
        await runtime.cache.get_or_load("ns", "flaky", flaky, ttl=60, adapter=INT)
    assert await runtime.cache.get_or_load("ns", "flaky", flaky, ttl=60, adapter=INT) == 3


async def test_reads_do_not_wait_for_a_writer(runtime: Runtime) -> None:
    from sqlalchemy import func, select

    async with runtime.db.transaction() as writer:
        writer.add(LockRow(name="held", owner="me", expires_at=datetime.now(UTC)))
        await writer.flush()  # the writer holds the write lock until it commits
        async with asyncio.timeout(5), runtime.db.read() as reader:
            count = await reader.scalar(select(func.count()).select_from(LockRow))
        assert count == 0  # a snapshot from before the writer's uncommitted row

"""The X-Series rate budget in the HTTP layer, against the sandbox: calls stay under the
store's limit, so the POS never has to answer 429 (gateway/pos/budget.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest

from gateway import deadline, priority
from gateway.cache import Cache
from gateway.pos.errors import UpstreamNotFound, UpstreamRateLimited, UpstreamUnavailable
from gateway.pos.http import BearerToken, HttpLayer
from gateway.pos.xseries import XSeriesClient
from gateway.runtime import Runtime
from tests.conftest import TEST_POLICY, XSERIES_TOKEN
from tests.support import SandboxHandle, until


def refused_by_the_pos(sandbox: SandboxHandle) -> int:
    return sum(n for key, n in sandbox.stats()["responses"].items() if key.endswith(" 429"))


async def read_someone(client: XSeriesClient) -> str:
    """A read of its own (no two share a call): "reached" when the POS answered it."""
    try:
        await client.get_customer(str(uuid.uuid4()))
    except UpstreamNotFound:
        return "reached"
    except UpstreamRateLimited as limited:
        refusal = limited
    else:
        raise AssertionError("a random customer was found")
    assert refusal.status is None  # refused by the budget, not by the POS
    assert refusal.retry_after_s is not None and 0 < refusal.retry_after_s <= 61
    return "refused"


async def test_a_spent_budget_is_rate_limited_without_calling_the_pos(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(rate_limit={"limit": 3, "window_s": 60})
    assert [await read_someone(xseries_client) for _ in range(5)] == ["reached"] * 3 + [
        "refused"
    ] * 2
    with pytest.raises(UpstreamRateLimited) as write:
        await xseries_client.upstream.post("/api/customers", {"first_name": "Happy"})
    assert write.value.code.value == "RATE_LIMITED"
    assert write.value.details["retry_after_s"] in {str(s) for s in range(55, 62)}
    assert xseries.stats()["total"] == 3
    assert xseries.count("POST /api/customers") == 0


async def test_concurrent_reads_never_meet_a_429(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    """The first call of the window goes alone; the others wait for its answer, then
    spend what it says is left."""
    xseries.faults(rate_limit={"limit": 20, "window_s": 60})
    outcomes = Counter(await asyncio.gather(*(read_someone(xseries_client) for _ in range(200))))
    assert outcomes == {"reached": 20, "refused": 180}
    assert refused_by_the_pos(xseries) == 0


async def test_a_get_shared_by_its_waiters_spends_one_unit(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(rate_limit={"limit": 3, "window_s": 60})
    await xseries_client.get_config()  # the window's first call: the budget is known
    xseries.faults(rate_limit={"limit": 3, "window_s": 60}, latency_ms=200)
    configs = await asyncio.gather(*(xseries_client.list_payment_types() for _ in range(10)))
    assert len(configs) == 10 and xseries.count("GET /api/payment_types") == 1
    assert await read_someone(xseries_client) == "reached"  # the third unit
    assert await read_someone(xseries_client) == "refused"


async def test_a_caller_never_shares_a_get_with_background_work(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    """With less than the reserve left, background work is refused: a caller asking for
    the same thing at the same moment must not be refused with it."""
    xseries.faults(rate_limit={"limit": 2, "window_s": 60}, latency_ms=300)
    first = asyncio.ensure_future(xseries_client.get_config())  # the window's first call
    await until(lambda: xseries.count("GET /api/config") == 1, what="the first call sent")
    with priority.background():  # the task keeps the mark
        worker = asyncio.ensure_future(xseries_client.list_payment_types())
    caller = asyncio.ensure_future(xseries_client.list_payment_types())
    results = await asyncio.gather(worker, caller, first, return_exceptions=True)
    assert isinstance(results[0], UpstreamRateLimited)  # 1 of 2 left: the reserve
    assert isinstance(results[1], list) and results[1]
    assert xseries.count("GET /api/payment_types") == 1
    assert refused_by_the_pos(xseries) == 0


async def test_each_retry_spends_a_unit(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    """The sandbox does not count a faulted answer; the gateway cannot know that, so a
    retried call spends one unit per attempt."""
    xseries.faults(rate_limit={"limit": 4, "window_s": 60})
    await xseries_client.get_config()
    xseries.faults(rate_limit={"limit": 4, "window_s": 60}, status=503, fail_next=2)
    await xseries_client.list_payment_types()  # 503, 503, 200: three units
    assert xseries.count("GET /api/payment_types") == 3
    assert await read_someone(xseries_client) == "refused"
    assert xseries.stats()["total"] == 4


async def test_background_work_leaves_the_reserve_to_callers(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(rate_limit={"limit": 10, "window_s": 60})
    with priority.background():
        worker = [await read_someone(xseries_client) for _ in range(10)]
    assert worker == ["reached"] * 8 + ["refused"] * 2  # 20% of 10 kept for callers
    callers = [await read_someone(xseries_client) for _ in range(3)]
    assert callers == ["reached", "reached", "refused"]
    assert refused_by_the_pos(xseries) == 0


async def test_a_call_waiting_for_the_windows_first_answer_stops_at_its_deadline(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(latency_ms=1500)
    first = asyncio.ensure_future(xseries_client.get_config())
    # It goes first, and alone: the window is not known until it is answered.
    await until(lambda: xseries.count("GET /api/config") == 1, what="the first call sent")
    started = time.monotonic()
    with deadline.within(0.3), pytest.raises(UpstreamUnavailable) as waited:
        await xseries_client.list_payment_types()
    assert time.monotonic() - started < 1.0
    assert "first answer" in waited.value.message
    assert (await first).enable_loyalty
    assert xseries.count("GET /api/payment_types") == 0


async def test_a_429_tells_the_budget_to_wait_until_its_retry_after(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    """Should the POS refuse after all (another process without the shared cache), every
    call waits out its Retry-After: none is sent before it."""
    xseries.faults(status=429, fail_next=1, retry_after_s=30, path="/api/config")
    with pytest.raises(UpstreamRateLimited):
        await xseries_client.get_config()  # 30 s is beyond the policy's bound: not waited
    assert await read_someone(xseries_client) == "refused"
    assert xseries.stats()["total"] == 1


async def test_two_layers_sharing_one_cache_stay_under_the_budget_together(
    runtime: Runtime, xseries: SandboxHandle
) -> None:
    """Two gateway processes, each with its own HTTP layer and pool, spend from one count:
    on Redis each opens its own connection to it, as another process would; the memory
    cache serves one process, so there the two layers share the one instance."""
    shared = runtime.cache.backend_name == "memory"
    other_cache = runtime.cache if shared else Cache(runtime.settings.cache_url)
    layers = [HttpLayer(policy=TEST_POLICY, cache=c) for c in (runtime.cache, other_cache)]
    clients = [
        XSeriesClient.connect(layer, xseries.url, BearerToken(XSERIES_TOKEN)) for layer in layers
    ]
    xseries.faults(rate_limit={"limit": 20, "window_s": 60})
    try:
        reads = [read_someone(clients[i % 2]) for i in range(200)]
        outcomes = Counter(await asyncio.gather(*reads))
    finally:
        for layer in layers:
            await layer.aclose()
        if not shared:
            await other_cache.aclose()
    assert outcomes == {"reached": 20, "refused": 180}
    assert refused_by_the_pos(xseries) == 0

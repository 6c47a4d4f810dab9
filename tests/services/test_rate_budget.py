"""One merchant's callers and background work share its X-Series rate budget, so the POS
never has to answer 429 (gateway/pos/budget.py); Kounta publishes no limit and is only
reacted to (docs/pos-contracts.md)."""

from __future__ import annotations

import asyncio
import copy
import uuid
from decimal import Decimal
from typing import Any

import pytest

from gateway import priority
from gateway.domain.ids import Kind
from gateway.pos.errors import UpstreamNotFound, UpstreamRateLimited
from gateway.runtime import Runtime
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from tests.api.test_graphql_sales import balance, pay
from tests.demo_ids import JOHNNY, JOHNNY_SALE, TONY
from tests.gateways import Gateway, demo_fixtures, make_gateway
from tests.services.test_graphql_recovery import LOSE_THE_ANSWER
from tests.support import SandboxHandle

CUSTOMER = "query One($id: ID!) { customer(id: $id) { posId firstName loyaltyBalance } }"


def refused_by_the_pos(sandbox: SandboxHandle) -> int:
    return sum(n for key, n in sandbox.stats()["responses"].items() if key.endswith(" 429"))


def with_customers(count: int) -> tuple[dict[str, Any], list[str]]:
    """The demo store with ``count`` more customers, so that no two reads share a call."""
    fixtures = demo_fixtures()
    tony = next(c for c in fixtures["customers"] if c["id"] == TONY)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for n, customer_id in enumerate(ids):
        extra = copy.deepcopy(tony)
        extra.update(id=customer_id, customer_code=f"C{n}", email=f"c{n}@example.com")
        fixtures["customers"].append(extra)
    return fixtures, ids


async def test_200_concurrent_reads_get_data_or_rate_limited_and_never_a_429(
    runtime: Runtime, xseries: SandboxHandle
) -> None:
    fixtures, ids = with_customers(200)
    xseries.reset(fixtures)
    xseries.faults(rate_limit={"limit": 20, "window_s": 60})
    gateway = await make_gateway(runtime, xseries, "Budgeted")
    try:
        answers = await asyncio.gather(
            *(gateway.post(CUSTOMER, {"id": gateway.id(Kind.CUSTOMER, i)}) for i in ids)
        )
    finally:
        await gateway.client.aclose()

    served, limited = [], []
    for answer in answers:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if body["data"]["customer"] is not None:
            assert "errors" not in body
            served.append(body["data"]["customer"]["posId"])
            continue
        [error] = body["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED", error
        assert 0 < error["extensions"]["retryAfterSeconds"] <= 61
        limited.append(error)
    assert refused_by_the_pos(xseries) == 0
    assert 0 < len(served) <= 20 and len(served) + len(limited) == 200
    assert len(set(served)) == len(served)
    assert xseries.stats()["total"] <= 20


async def test_the_worker_stops_at_the_reserve_while_a_caller_goes_on(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    """A payment whose answer was lost waits for its read-back; with less than 20% of the
    window left the worker leaves it, and the caller's own retry settles it."""
    sale_id = gateway.id(Kind.SALE, JOHNNY_SALE)
    xseries.faults(**LOSE_THE_ANSWER)
    assert (await pay(gateway, sale_id, "5", key="lost"))["code"] == "OUTCOME_PENDING"
    xseries.faults(rate_limit={"limit": 20, "window_s": 60})
    before = xseries.stats()["total"]
    services = Services(gateway.runtime)
    client = await services.clients.xseries(gateway.merchant)
    with priority.background():  # background reads, until 16 of the 20 are spent
        while True:
            try:
                await client.get_customer(str(uuid.uuid4()))
            except UpstreamNotFound:
                continue
            except UpstreamRateLimited:
                break
    sent = xseries.stats()["total"]
    assert sent - before == 16 and refused_by_the_pos(xseries) == 0

    report = await recover_once(services)
    assert report.finished == [] and len(report.still_failing) == 1
    assert xseries.stats()["total"] == sent  # the worker sent nothing

    retried = await pay(gateway, sale_id, "5", key="lost")
    assert retried["__typename"] == "PayWithLoyaltySuccess", retried
    assert refused_by_the_pos(xseries) == 0
    xseries.clear_faults()  # the back office's own reads below spend no gateway budget
    assert balance(xseries, JOHNNY) == Decimal("7")  # paid once


async def test_kounta_is_not_held_to_a_budget(both: Gateway, kounta: SandboxHandle) -> None:
    """Kounta publishes no rate limit: its calls go, and a 429 is met as it comes."""
    kounta.faults(rate_limit={"limit": 1, "window_s": 60})
    client = Services(both.runtime).clients.kounta(both.merchant)
    await client.get_company()
    with pytest.raises(UpstreamRateLimited) as limited:
        await client.get_company()
    assert limited.value.status == 429  # the POS said so: the gateway had sent it
    assert refused_by_the_pos(kounta) == 1

"""The crash matrix: the gateway killed at every step of every money path, then the worker.

For each step a real ``gateway serve`` runs with the test-only fault hook
(``GATEWAY_CRASH_AT``, gateway/faults.py) and dies there mid-request, as with kill -9. Once
its leases have run out, ``gateway worker --once`` runs as its own process; then everything
must be consistent: one payment or none, points debited exactly for the payments made,
nothing left unsettled or unfinished, and a retry of the request answers what happened.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.rewards import Reward, RewardKind
from gateway.runtime import Runtime
from gateway.services import rewards
from gateway.services.context import Services
from gateway.services.earning import earn_from_order
from gateway.store.models import IdempotencyRow, PosWriteRow, RedemptionRow, TakeBackRow
from tests.api.test_graphql_sales import PAY, balance
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER, kounta_order
from tests.api.test_kounta_graphql import REDEEM
from tests.demo_ids import JOHN_SMITH, JOHNNY, JOHNNY_SALE
from tests.e2e.processes.conftest import leases_run_out
from tests.gateways import ADDON_TOKEN, KOUNTA_COMPANY, Gateway, make_kounta_gateway
from tests.services.test_order_afterlife import post_json
from tests.support import GatewayProcess, SandboxHandle, free_port, run_gateway, until

CRASHED = 86  # gateway/faults.py


def redemption_steps(write_kind: str) -> list[str]:
    return [
        "redemption.PENDING",
        "points.before:redemption",
        "points.after:redemption",
        "redemption.DEBITED",
        f"write.recorded:{write_kind}",
        f"write.answered:{write_kind}",
        "redemption.COMPLETED",
    ]


CASES = [
    *(("kounta-redemption", step) for step in redemption_steps("kounta.payment")),
    *(("xseries-redemption", step) for step in redemption_steps("xseries.sale_payment")),
    ("pay-with-loyalty", "write.recorded:xseries.sale_payment"),
    ("pay-with-loyalty", "write.answered:xseries.sale_payment"),
    ("kounta-earning", "points.before:kounta-order"),
    ("kounta-earning", "points.after:kounta-order"),
    ("kounta-refund", "points.before:reversal"),
    ("kounta-refund", "points.after:reversal"),
]


@dataclass
class World:
    gateway: Gateway
    runtime: Runtime
    kounta: SandboxHandle
    xseries: SandboxHandle
    env: dict[str, str]


@pytest.fixture
async def world(
    runtime: Runtime, kounta: SandboxHandle, xseries: SandboxHandle, process_env: dict[str, str]
) -> AsyncIterator[World]:
    gw = await make_kounta_gateway(runtime, kounta, "Crash Cafe", xseries=xseries)
    treat = Reward("big-treat", "Big treat", RewardKind.PAYMENT, Decimal(10), Decimal(15))
    await rewards.add_reward(Services(runtime).scope(gw.merchant), treat)
    yield World(gw, runtime, kounta, xseries, process_env)
    await gw.client.aclose()


# --------------------------------------------------------------------------- the flows


async def kounta_redemption(world: World, server: str) -> Callable[[], Awaitable[bool]]:
    """John redeems a free coffee (40 points → 4.60) on his open order at Kounta."""
    params = {"customer_id": JOHN_KOUNTA, "reference_id": JOHN_SMITH,
              "company_id": KOUNTA_COMPANY, "order_id": "111"}  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as client:
        lookup = await client.get(f"{server}/kounta/{ADDON_TOKEN}/reward-lookup", params=params)
        member = lookup.json()
        url = next(r["redeem_url"] for r in member["rewards"] if r["id"] == "free-coffee")
        url = url.replace("order_id=111", f"order_id={JOHN_ORDER}")
        with pytest.raises(httpx.TransportError):
            await client.get(url)

    async def retried() -> bool:
        answer = (await world.gateway.client.get(url.replace(server, ""))).json()
        return bool(answer["success"])

    return retried


async def graphql(world: World, server: str | None, query: str, variables: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {world.gateway.key}"}
    body = {"query": query, "variables": variables}
    if server is None:
        return (await world.gateway.client.post("/graphql", json=body, headers=headers)).json()
    async with httpx.AsyncClient(timeout=30) as client:
        return (await client.post(f"{server}/graphql", json=body, headers=headers)).json()


async def xseries_redemption(world: World, server: str) -> Callable[[], Awaitable[bool]]:
    """Johnny (12 points) redeems a big treat (10 points → 15.00) on his open sale."""
    merchant = world.gateway.merchant.id
    variables = {"input": {
        "idempotencyKey": f"crash-{uuid.uuid4()}",
        "customerId": ids.encode(Kind.CUSTOMER, Pos.XSERIES, merchant, JOHNNY),
        "rewardId": ids.encode(Kind.REWARD, None, merchant, "big-treat"),
        "saleId": ids.encode(Kind.SALE, Pos.XSERIES, merchant, JOHNNY_SALE),
    }}  # fmt: skip
    with pytest.raises(httpx.TransportError):
        await graphql(world, server, REDEEM, variables)

    async def retried() -> bool:
        answer = (await graphql(world, None, REDEEM, variables))["data"]["redeemReward"]
        return bool(answer["__typename"] == "RedeemRewardSuccess")

    return retried


async def pay_with_loyalty(world: World, server: str) -> Callable[[], Awaitable[bool]]:
    """Johnny pays 5 of his open sale with loyalty."""
    merchant = world.gateway.merchant.id
    variables = {"input": {
        "idempotencyKey": f"crash-{uuid.uuid4()}",
        "saleId": ids.encode(Kind.SALE, Pos.XSERIES, merchant, JOHNNY_SALE),
        "amount": "5",
    }}  # fmt: skip
    with pytest.raises(httpx.TransportError):
        await graphql(world, server, PAY, variables)

    async def retried() -> bool:
        answer = (await graphql(world, None, PAY, variables))["data"]["payWithLoyalty"]
        return bool(answer["__typename"] == "PayWithLoyaltySuccess")

    return retried


async def kounta_earning(world: World, server: str) -> Callable[[], Awaitable[bool]]:
    """John's open order completes at Kounta; its webhook reaches the dying gateway."""
    hooks = f"/v1/companies/{KOUNTA_COMPANY}/webhooks"

    def registered() -> bool:
        return any(h["address"].startswith(server) for h in world.kounta.get(hooks))

    await until(registered, what="the gateway registering its webhook at start-up")
    response = world.kounta.post(f"/_sandbox/orders/{JOHN_ORDER}/complete", {"deliveries": 1})
    assert response.status_code == 200
    assert response.json()["deliveries"][0]["status"] is None  # the gateway died on it

    async def retried() -> bool:
        return True

    return retried


REFUNDED = Decimal("12.50")
# John's order (37.95) earns 3.30 at the merchant's ratio; 12.50 of it refunded gives back
# 3.30 × 12.50 / 37.95 = 1.0869…, 1.09 to the cent.
EARNED, SHARE = Decimal("3.30"), Decimal("1.09")


async def kounta_refund(world: World, server: str) -> Callable[[], Awaitable[bool]]:
    """John's order, paid, completed and earned; the till refunds 12.50 and the webhook
    reaches the dying gateway, which dies taking the share back."""
    orders = f"/v1/companies/{KOUNTA_COMPANY}/orders/{JOHN_ORDER}"
    assert post_json(world.kounta, f"{orders}/payments",
                     {"method_id": 1, "amount": Decimal("37.95")}).status_code == 201  # fmt: skip
    world.kounta.post(f"/_sandbox/orders/{JOHN_ORDER}/complete", {"deliveries": 0})
    await earn_from_order(Services(world.runtime).scope(world.gateway.merchant), JOHN_ORDER)
    hooks = f"/v1/companies/{KOUNTA_COMPANY}/webhooks"
    await until(lambda: any(h["address"].startswith(server) for h in world.kounta.get(hooks)),
                what="the gateway registering its webhooks at start-up")  # fmt: skip
    refund = {"deliveries": 1, "method_id": 1, "amount": -REFUNDED}
    response = post_json(world.kounta, f"/_sandbox/orders/{JOHN_ORDER}/refund", refund)
    assert response.status_code == 200
    assert response.json()["deliveries"][0]["status"] is None  # the gateway died on it

    async def retried() -> bool:
        return True

    return retried


FLOWS = {
    "kounta-redemption": kounta_redemption,
    "xseries-redemption": xseries_redemption,
    "pay-with-loyalty": pay_with_loyalty,
    "kounta-earning": kounta_earning,
    "kounta-refund": kounta_refund,
}


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize(("flow", "step"), CASES, ids=[f"{f}@{s}" for f, s in CASES])
async def test_killed_at_every_step_ends_consistent(world: World, flow: str, step: str) -> None:
    before = {"john": balance(world.xseries, JOHN_SMITH), "johnny": balance(world.xseries, JOHNNY)}
    port = free_port()
    public = {"GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}", "GATEWAY_CRASH_AT": step}
    server = GatewayProcess({**world.env, **public}, port=port)
    try:
        server.wait_ready()
        retry = await FLOWS[flow](world, server.url)
        assert server.wait_exit() == CRASHED, f"did not die at {step}: {server.stderr()}"
    finally:
        server.stop()

    await until(lambda: leases_run_out(world.runtime), what="the dead process's leases")
    run_gateway(world.env, "worker", "--once")
    await assert_nothing_left(world.runtime)
    await CHECKS[flow](world, before, retry)


async def assert_nothing_left(runtime: Runtime) -> None:
    async with runtime.db.read() as session:
        unsettled = list(await session.scalars(
            select(PosWriteRow.kind).where(PosWriteRow.status == "PENDING")
        ))  # fmt: skip
        unfinished = list(await session.scalars(
            select(RedemptionRow.status).where(
                RedemptionRow.status.in_(("PENDING", "DEBITED", "COMPENSATING"))
            )
        ))  # fmt: skip
        in_progress = list(await session.scalars(
            select(IdempotencyRow.operation).where(IdempotencyRow.status == "IN_PROGRESS")
        ))  # fmt: skip
        taking = list(await session.scalars(
            select(TakeBackRow.key).where(TakeBackRow.status == "PENDING")
        ))  # fmt: skip
    assert (unsettled, unfinished, in_progress, taking) == ([], [], [], [])


async def redemption_statuses(runtime: Runtime) -> list[str]:
    async with runtime.db.read() as session:
        return list(await session.scalars(select(RedemptionRow.status)))


async def check_kounta_redemption(
    world: World, before: dict[str, Decimal], retry: Callable[[], Awaitable[bool]]
) -> None:
    payments = kounta_order(world.kounta, JOHN_ORDER)["payments"]
    assert len(payments) in (0, 1)
    paid = len(payments)
    assert balance(world.xseries, JOHN_SMITH) == before["john"] - 40 * paid
    assert await redemption_statuses(world.runtime) == ["COMPLETED" if paid else "FAILED"]
    assert await retry() is bool(paid)
    assert len(kounta_order(world.kounta, JOHN_ORDER)["payments"]) == paid


def loyalty_payments(xseries: SandboxHandle) -> list[Decimal]:
    sale = xseries.get(f"/api/register_sales/{JOHNNY_SALE}")["register_sales"][0]
    return [Decimal(str(p["amount"])) for p in sale["register_sale_payments"][1:]]  # 5 cash


async def check_xseries_redemption(
    world: World, before: dict[str, Decimal], retry: Callable[[], Awaitable[bool]]
) -> None:
    payments = loyalty_payments(world.xseries)
    assert payments in ([], [Decimal(15)])
    paid = len(payments)
    assert balance(world.xseries, JOHNNY) == before["johnny"] - 10 * paid  # top-up netted
    assert await redemption_statuses(world.runtime) == ["COMPLETED" if paid else "FAILED"]
    assert await retry() is bool(paid)
    assert loyalty_payments(world.xseries) == payments


async def check_pay_with_loyalty(
    world: World, before: dict[str, Decimal], retry: Callable[[], Awaitable[bool]]
) -> None:
    payments = loyalty_payments(world.xseries)
    assert payments in ([], [Decimal(5)])
    assert balance(world.xseries, JOHNNY) == before["johnny"] - 5 * len(payments)
    assert await retry() is True  # landed: its answer; not landed: paid now, once
    assert loyalty_payments(world.xseries) == [Decimal(5)]
    assert balance(world.xseries, JOHNNY) == before["johnny"] - 5


async def check_kounta_earning(
    world: World, before: dict[str, Decimal], retry: Callable[[], Awaitable[bool]]
) -> None:
    async with world.runtime.db.read() as session:
        record = await session.get(
            IdempotencyRow, (world.gateway.merchant.id, f"earning:{JOHN_ORDER}")
        )
    assert record is not None and record.status == "COMPLETED"
    earned = balance(world.xseries, JOHN_SMITH) - before["john"]
    assert earned > 0
    run_gateway(world.env, "worker", "--once")  # again: nothing more
    assert balance(world.xseries, JOHN_SMITH) - before["john"] == earned


async def check_kounta_refund(
    world: World, before: dict[str, Decimal], retry: Callable[[], Awaitable[bool]]
) -> None:
    """The share taken back once, whether the dead process had moved it or not."""
    assert balance(world.xseries, JOHN_SMITH) == before["john"] + EARNED - SHARE
    async with world.runtime.db.read() as session:
        states = list(await session.scalars(select(TakeBackRow.status)))
    assert states == ["DONE"]
    run_gateway(world.env, "worker", "--once")  # again: nothing more
    assert balance(world.xseries, JOHN_SMITH) == before["john"] + EARNED - SHARE


CHECKS = {
    "kounta-redemption": check_kounta_redemption,
    "xseries-redemption": check_xseries_redemption,
    "pay-with-loyalty": check_pay_with_loyalty,
    "kounta-earning": check_kounta_earning,
    "kounta-refund": check_kounta_refund,
}

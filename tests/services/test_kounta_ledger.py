"""A Kounta-only merchant: the gateway's own ledger is the balance of record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.runtime import Runtime
from gateway.services.context import Services
from gateway.services.earning import earn_from_order
from gateway.store import ledger
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER, kounta_order
from tests.gateways import Gateway, KountaPos, make_kounta_gateway, reward_url
from tests.support import SandboxHandle


@pytest.fixture
async def café(runtime: Runtime, kounta: SandboxHandle) -> AsyncIterator[Gateway]:
    gw = await make_kounta_gateway(runtime, kounta, "Kounta Café")
    yield gw
    await gw.client.aclose()


async def balance(gw: Gateway, member: str = JOHN_KOUNTA) -> Decimal:
    async with gw.runtime.db.transaction() as session:
        return await ledger.balance(session, gw.merchant.id, member)


async def give(gw: Gateway, amount: str, key: str, member: str = JOHN_KOUNTA) -> None:
    async with gw.runtime.db.transaction() as session:
        await ledger.append(session, gw.merchant.id, member, Decimal(amount), key, "test")


async def test_kounta_only_merchants_keep_points_in_the_ledger(café: Gateway) -> None:
    data = await café.data("{ merchant { posSystems pointsSource loyaltyRatio } }")
    assert data["merchant"] == {
        "posSystems": ["KOUNTA"],
        "pointsSource": "LEDGER",
        "loyaltyRatio": "0.10",
    }


async def test_members_are_kounta_customers_with_ledger_balances(café: Gateway) -> None:
    await give(café, "12.5", "seed")
    members = (await KountaPos(café).search("John Smith")).json()["members"]
    assert list(members) == [JOHN_KOUNTA]
    assert members[JOHN_KOUNTA]["current_points"] == "12.50"
    found = (
        await café.data('{ customers(search: "john") { pos posId loyaltyEnabled loyaltyBalance } }')
    )["customers"]
    assert found == [
        {"pos": "KOUNTA", "posId": JOHN_KOUNTA, "loyaltyEnabled": True, "loyaltyBalance": "12.50"}
    ]


async def test_completed_order_is_earned_into_the_ledger_once(
    café: Gateway, kounta: SandboxHandle, runtime: Runtime
) -> None:
    kounta.post(f"/_sandbox/orders/{JOHN_ORDER}/complete", {"deliveries": 0})
    scope = Services(runtime).scope(café.merchant)
    results = await asyncio.gather(*(earn_from_order(scope, JOHN_ORDER) for _ in range(5)))
    assert {r.points for r in results} == {Decimal("3.30")}
    assert await balance(café) == Decimal("3.30")


async def test_redeeming_debits_the_ledger_and_pays_at_kounta(
    café: Gateway, kounta: SandboxHandle
) -> None:
    await give(café, "50", "seed")
    pos = KountaPos(café)
    member = (await pos.lookup(JOHN_KOUNTA, JOHN_KOUNTA)).json()
    assert member["current_points"] == "50.00"
    assert await pos.redeem(reward_url(member, "free-coffee"), JOHN_ORDER) == {"success": True}
    assert await balance(café) == Decimal("10")
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1


async def test_concurrent_redemptions_never_overspend_the_ledger(
    café: Gateway, kounta: SandboxHandle
) -> None:
    await give(café, "5", "seed")
    pos = KountaPos(café)
    urls = [
        reward_url((await pos.lookup(JOHN_KOUNTA, JOHN_KOUNTA)).json(), "pay-with-points")
        for _ in range(20)
    ]
    answers = await asyncio.gather(*(pos.redeem(url, JOHN_ORDER, quantity="1") for url in urls))
    assert sum(a["success"] for a in answers) == 5
    assert await balance(café) == Decimal("0")
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 5


async def test_the_ledger_takes_no_xseries_sale(café: Gateway) -> None:
    await give(café, "5", "seed")
    result = await café.data(
        """mutation($i: RedeemRewardInput!) { redeemReward(input: $i) { ... on Error { code } } }""",
        {"i": {"idempotencyKey": "k", "customerId": café.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA),
               "rewardId": ids.encode(Kind.REWARD, None, café.merchant.id, "pay-with-points"),
               "saleId": café.id(Kind.SALE, "x"), "quantity": "1"}},
    )  # fmt: skip
    assert result["redeemReward"]["code"] == "VALIDATION"

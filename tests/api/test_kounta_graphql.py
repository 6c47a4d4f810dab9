"""GraphQL over both POS: rewards, redeemReward, fan-out search, Kounta orders, OAuth."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from tests.api.test_graphql_sales import create
from tests.api.test_kounta_adapters import (
    JOHN_KOUNTA,
    JOHN_ORDER,
    john,
    kounta_order,
    xseries_balance,
)
from tests.demo_ids import JOHN_SMITH, JOHNNY, JOHNNY_SALE, TONY
from tests.gateways import KOUNTA_COMPANY, Gateway, KountaPos, reward_url
from tests.support import SandboxHandle

REDEEM = """
mutation Redeem($input: RedeemRewardInput!) {
  redeemReward(input: $input) {
    __typename
    ... on RedeemRewardSuccess { redemption {
      id status pointsDebited amountApplied
      reward { id title kind }
      customer { posId loyaltyBalance }
      sale { pos posId status amountDue payments { name amount isLoyalty } }
    } }
    ... on Error { code message }
  }
}"""


async def redeem(gw: Gateway, customer: str, reward: str, sale: str, pos: Pos,
                 quantity: str | None = None, key: str | None = None,
                 customer_pos: Pos = Pos.XSERIES) -> dict[str, Any]:  # fmt: skip
    variables = {
        "input": {
            "idempotencyKey": key or str(uuid.uuid4()),
            "customerId": ids.encode(Kind.CUSTOMER, customer_pos, gw.merchant.id, customer),
            "rewardId": ids.encode(Kind.REWARD, None, gw.merchant.id, reward),
            "saleId": ids.encode(Kind.SALE, pos, gw.merchant.id, sale),
            "quantity": quantity,
        }
    }
    result: dict[str, Any] = (await gw.data(REDEEM, variables))["redeemReward"]
    return result


async def test_rewards_catalogue_and_per_customer_availability(both: Gateway) -> None:
    catalogue = (
        await both.data(
            "{ rewards { id title kind pointsRequired value variableQuantity actionLabel available } }"
        )
    )["rewards"]
    assert [r["title"] for r in catalogue] == ["Pay with points", "Free coffee", "10% off"]
    assert all(r["available"] is None for r in catalogue)
    johnny = await both.data(
        "query($id: ID!) { customer(id: $id) { rewards { title pointsRequired available } } }",
        {"id": both.id(Kind.CUSTOMER, JOHNNY)},
    )
    offered = {r["title"]: r for r in johnny["customer"]["rewards"]}
    assert offered["Pay with points"] == {
        "title": "Pay with points",
        "pointsRequired": "12.00",
        "available": True,
    }
    assert offered["Free coffee"]["available"] is False  # 12 of 40
    assert offered["10% off"]["available"] is False


async def test_redeem_reward_on_a_kounta_order_is_the_redeem_url(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    result = await redeem(both, JOHN_SMITH, "free-coffee", JOHN_ORDER, Pos.KOUNTA, key="gql-1")
    assert result["__typename"] == "RedeemRewardSuccess"
    redemption = result["redemption"]
    assert (redemption["status"], redemption["pointsDebited"], redemption["amountApplied"]) == (
        "COMPLETED",
        "40.00",
        "4.60",
    )
    assert redemption["customer"] == {"posId": JOHN_SMITH, "loyaltyBalance": "80.00"}
    assert redemption["sale"]["pos"] == "KOUNTA" and redemption["sale"]["amountDue"] == "33.35"
    assert redemption["sale"]["payments"] == [
        {"name": "Loyalty Points", "amount": "4.60", "isLoyalty": True}
    ]
    # Same outcome as the POS's redeem URL: one payment with our ref, points once.
    payments = kounta_order(kounta, JOHN_ORDER)["payments"]
    assert len(payments) == 1 and payments[0]["ref"]
    again = await redeem(both, JOHN_SMITH, "free-coffee", JOHN_ORDER, Pos.KOUNTA, key="gql-1")
    assert again == result
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")

    pos_side = await KountaPos(both).redeem(
        reward_url(await john(KountaPos(both)), "free-coffee"), JOHN_ORDER
    )
    assert pos_side == {"success": True}
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("40")
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 2


async def test_redeem_reward_on_an_xseries_sale_is_a_loyalty_payment(
    both: Gateway, xseries: SandboxHandle
) -> None:
    result = await redeem(both, JOHNNY, "pay-with-points", JOHNNY_SALE, Pos.XSERIES, quantity="5")
    redemption = result["redemption"]
    assert redemption["status"] == "COMPLETED" and redemption["pointsDebited"] == "5.00"
    assert (
        redemption["sale"]["status"] == "ONACCOUNT" and redemption["sale"]["amountDue"] == "13.00"
    )
    assert {"name": "Loyalty", "amount": "5.00", "isLoyalty": True} in redemption["sale"][
        "payments"
    ]
    assert xseries_balance(xseries, JOHNNY) == Decimal("7")


async def test_a_fixed_reward_at_xseries_takes_its_points_not_its_value(
    both: Gateway, xseries: SandboxHandle
) -> None:
    sale = (await create(both, customer=TONY, status="SAVED"))["sale"]["posId"]
    result = await redeem(both, TONY, "free-coffee", sale, Pos.XSERIES)
    redemption = result["redemption"]
    assert (redemption["pointsDebited"], redemption["amountApplied"]) == ("40.00", "4.60")
    assert redemption["sale"]["amountDue"] == "18.40"
    assert xseries_balance(xseries, TONY) == Decimal("10")  # 50 - 40: 4.60 paid + 35.40 adjusted


async def test_redeem_reward_errors(both: Gateway, xseries: SandboxHandle) -> None:
    short = await redeem(both, JOHNNY, "free-coffee", JOHNNY_SALE, Pos.XSERIES)
    assert short["__typename"] == "InsufficientBalanceError"
    discount = await redeem(both, JOHN_SMITH, "ten-off", JOHNNY_SALE, Pos.XSERIES)
    assert discount["code"] == "VALIDATION"
    not_his = await redeem(
        both, JOHN_SMITH, "pay-with-points", JOHNNY_SALE, Pos.XSERIES, quantity="1"
    )
    assert not_his["code"] == "VALIDATION"
    unknown = await redeem(both, JOHN_SMITH, "no-such-reward", JOHN_ORDER, Pos.KOUNTA)
    assert unknown["code"] == "NOT_FOUND"
    gone = await redeem(both, JOHN_SMITH, "free-coffee", "1", Pos.KOUNTA)
    assert gone["code"] == "NOT_FOUND"
    no_quantity = await redeem(both, JOHN_SMITH, "pay-with-points", JOHN_ORDER, Pos.KOUNTA)
    assert no_quantity["code"] == "VALIDATION"
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")


async def test_kounta_order_as_a_sale(both: Gateway) -> None:
    data = await both.data(
        "query($id: ID!) { sale(id: $id) { pos posId status state total totalTax amountDue loyaltyEarned customer { posId pos firstName } lines { name quantity price tax } } }",
        {"id": both.id(Kind.SALE, JOHN_ORDER, Pos.KOUNTA)},
    )
    sale = data["sale"]
    assert (sale["pos"], sale["status"], sale["state"]) == ("KOUNTA", "ON_HOLD", "OPEN")
    assert (sale["total"], sale["totalTax"], sale["amountDue"]) == ("37.95", "4.95", "37.95")
    assert sale["loyaltyEarned"] == "3.30"  # 0.1 × (6 × 4.00 + 9.00), tax-exclusive account
    assert sale["customer"] == {"posId": JOHN_KOUNTA, "pos": "KOUNTA", "firstName": "John"}
    assert sale["lines"][0] == {
        "name": "Caffé Latte",
        "quantity": "6.00",
        "price": "4.00",
        "tax": "0.60",
    }


async def test_customers_search_spans_both_pos_each_person_once(both: Gateway) -> None:
    found = (
        await both.data('{ customers(search: "Stark") { pos posId firstName loyaltyBalance } }')
    )["customers"]
    assert found == [
        {"pos": "XSERIES", "posId": TONY, "firstName": "Tony", "loyaltyBalance": "50.00"}
    ]
    lucy = (
        await both.data('{ customers(search: "Lucy") { pos posId loyaltyEnabled loyaltyBalance } }')
    )["customers"]
    assert lucy == [
        {"pos": "KOUNTA", "posId": "3843", "loyaltyEnabled": False, "loyaltyBalance": "0.00"}
    ]
    smiths = (await both.data('{ customers(search: "john smith") { pos posId } }'))["customers"]
    assert smiths == [{"pos": "XSERIES", "posId": JOHN_SMITH}]


async def test_search_takes_as_long_as_the_slower_pos_not_the_sum(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    # Warm: auth, config, and X-Series' rate window (until a first answer has told it,
    # calls to one store go one at a time: gateway/pos/budget.py).
    await both.data('{ customers(search: "Stark") { id } }')
    xseries.faults(latency_ms=600)
    kounta.faults(latency_ms=600)
    started = time.perf_counter()
    found = (await both.data('{ customers(search: "Stark") { posId } }'))["customers"]
    elapsed = time.perf_counter() - started
    assert [c["posId"] for c in found] == [TONY]
    # 0.6 s each: asked one after the other it takes 1.2 s or more.
    assert elapsed < 1.0, f"{elapsed:.2f}s: the two POS were asked one after the other"


async def test_an_access_token_that_expires_mid_flow_is_refreshed_once(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    kounta.post("/_sandbox/oauth/expire", {})
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    assert kounta.count("POST /v1/token") == 1
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")


async def test_concurrent_flows_for_one_merchant_cause_one_refresh(
    both: Gateway, kounta: SandboxHandle
) -> None:
    kounta.post("/_sandbox/oauth/expire", {})
    queries = [
        both.data("query($id: ID!) { sale(id: $id) { posId } }",
                  {"id": both.id(Kind.SALE, order, Pos.KOUNTA)})
        for order in ("93824701", "93824702", "93824703") * 3
    ]  # fmt: skip
    results = await asyncio.gather(*queries)
    assert all(r["sale"] for r in results)
    assert kounta.count("POST /v1/token") == 1


async def test_a_refused_refresh_token_says_reconnect(both: Gateway, kounta: SandboxHandle) -> None:
    query = "query($id: ID!) { sale(id: $id) { posId } }"
    variables = {"id": both.id(Kind.SALE, JOHN_ORDER, Pos.KOUNTA)}
    kounta.post("/_sandbox/oauth/expire", {})
    assert (await both.data(query, variables))["sale"]  # refreshed: we now hold a new pair
    kounta.reset()  # the sandbox forgets that pair, as if the app had been disconnected
    body = (await both.post(query, variables)).json()
    assert body["errors"][0]["extensions"]["code"] == "POS_DISCONNECTED"
    assert "connected again" in body["errors"][0]["message"]
    merchant = (await both.data("{ merchant { posSystems } }"))["merchant"]
    assert merchant["posSystems"] == ["XSERIES", "KOUNTA"]  # still used, waiting to reconnect
    again = (await both.post(query, variables)).json()  # no POS call: it says so at once
    assert again["errors"][0]["extensions"]["code"] == "POS_DISCONNECTED"


@pytest.mark.parametrize("company", [KOUNTA_COMPANY])
async def test_merchant_lists_both_pos(both: Gateway, company: str) -> None:
    data = await both.data("{ merchant { posSystems pointsSource loyaltyEnabled loyaltyRatio } }")
    assert data["merchant"] == {"posSystems": ["XSERIES", "KOUNTA"], "pointsSource": "XSERIES",
                                "loyaltyEnabled": True, "loyaltyRatio": "0.10"}  # fmt: skip


async def test_a_token_about_to_expire_is_refreshed_before_use(
    both: Gateway, kounta: SandboxHandle
) -> None:
    from datetime import UTC, datetime, timedelta

    from gateway.store.merchants import Tokens, load_tokens, save_tokens

    async with both.runtime.db.transaction() as session:
        stored = await load_tokens(session, both.runtime.cipher, both.merchant.id, Pos.KOUNTA)
        soon = Tokens(
            stored.access_token, stored.refresh_token, datetime.now(UTC) + timedelta(seconds=30)
        )
        await save_tokens(session, both.runtime.cipher, both.merchant.id, Pos.KOUNTA, soon)
    data = await both.data("query($id: ID!) { sale(id: $id) { posId } }",
                           {"id": both.id(Kind.SALE, JOHN_ORDER, Pos.KOUNTA)})  # fmt: skip
    assert data["sale"]["posId"] == JOHN_ORDER
    responses = kounta.stats()["responses"]
    assert responses.get("POST /v1/token 200") == 1
    assert not any(key.endswith(" 401") for key in responses)  # never sent the old token
    async with both.runtime.db.read() as session:
        fresh = await load_tokens(session, both.runtime.cipher, both.merchant.id, Pos.KOUNTA)
    assert fresh.access_token != stored.access_token and fresh.refresh_token != stored.refresh_token
    assert fresh.expires_at is not None and fresh.expires_at > datetime.now(UTC) + timedelta(
        minutes=30
    )

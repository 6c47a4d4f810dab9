"""Freshness while caching (issue 11, Build 3; docs/architecture.md, "Caching and
freshness"): a customer shown from the cache is never older than the gateway's own last
write to their balance, in any process sharing the cache; a change made at the till shows
at once when its webhook comes, else within ``GATEWAY_CACHE_TTL_CUSTOMER_S``; what decides
which rewards may be redeemed reads the balance now.

The gateway's clock is a ``ManualClock``: the TTL passes when a test says so.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.runtime import Runtime
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from gateway.settings import Settings
from tests.api.test_graphql_sales import CREATE, PAY, give_points, line
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER, xseries_balance
from tests.api.test_kounta_graphql import REDEEM
from tests.conftest import Backend, fresh_runtime
from tests.demo_ids import CASH, JOHN_SMITH, REGISTER, USER
from tests.gateways import (
    KOUNTA_COMPANY,
    Gateway,
    KountaPos,
    make_kounta_gateway,
    reward_url,
)
from tests.services.test_order_afterlife import TOTAL, pay_cash, refund
from tests.services.test_review_findings import till_sale_paid_with_loyalty
from tests.support import ManualClock, SandboxHandle, free_port

TTL_S = 5.0
CUSTOMER_READS = "GET /api/customers"
BALANCE = "query($id: ID!) { customer(id: $id) { loyaltyBalance } }"
WITH_REWARDS = """
query($id: ID!) { customer(id: $id) { loyaltyBalance rewards { title available } } }"""
ADJUST = """
mutation($i: AdjustPointsInput!) {
  adjustPoints(input: $i) { __typename ... on Error { code message } }
}"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small TTL, and a public address (nothing listens there: the tests deliver the
    webhooks themselves) so that the merchant's webhooks are registered."""
    return settings.model_copy(
        update={
            "cache_ttl_customer_s": TTL_S,
            "public_url": f"http://127.0.0.1:{free_port()}",
        }
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def runtime(settings: Settings, clock: ManualClock) -> AsyncIterator[Runtime]:
    runtime = await fresh_runtime(settings, clock)
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def shop(
    runtime: Runtime, xseries: SandboxHandle, kounta: SandboxHandle
) -> AsyncIterator[Gateway]:
    """On both POS, the points at X-Series; John Smith is a member at both."""
    gw = await make_kounta_gateway(runtime, kounta, "Fresh Goods", xseries=xseries)
    yield gw
    await gw.client.aclose()


async def shown(gw: Gateway, customer: str = JOHN_SMITH) -> Decimal:
    """What a frontend shows: the balance alone, which the cache may serve."""
    data = await gw.data(BALANCE, {"id": gw.id(Kind.CUSTOMER, customer)})
    return Decimal(data["customer"]["loyaltyBalance"])


async def looked_up(gw: Gateway) -> dict[str, Any]:
    """What Kounta's till is offered for John Smith."""
    response = await KountaPos(gw).lookup(JOHN_KOUNTA, JOHN_SMITH)
    assert response.status_code == 200, response.text
    member: dict[str, Any] = response.json()
    return member


def offered(member: dict[str, Any]) -> set[str]:
    return {reward["id"] for reward in member["rewards"]}


async def customer_update(gw: Gateway, customer: str, balance: Decimal) -> None:
    """X-Series' ``customer.update`` webhook, as the sandbox would deliver it."""
    payload = {"id": customer, "loyalty_balance": f"{balance:.5f}"}
    body = {"type": "customer.update", "payload": json.dumps(payload)}
    response = await gw.client.post(await gw.xseries_hook(), data=body)
    assert response.status_code == 200, response.text


async def kounta_hook(gw: Gateway, kounta: SandboxHandle, order_id: str) -> None:
    """Kounta's webhook for the order, with the secret the gateway registered."""
    hooks = kounta.get(f"/v1/companies/{KOUNTA_COMPANY}/webhooks")
    secret = hooks[0]["headers"]["Authorization"]
    body = {"id": int(order_id), "company_id": int(KOUNTA_COMPANY)}
    response = await gw.client.post(
        "/webhooks/kounta", json=body, headers={"Authorization": secret}
    )
    assert response.status_code == 200, response.text


def till(kounta: SandboxHandle, order_id: str, act: str) -> None:
    """The till acts on the order and its webhooks are lost (a test delivers them)."""
    text = json.dumps({"deliveries": 0})
    headers = {"Authorization": f"Bearer {kounta.token}", "Content-Type": "application/json"}
    response = kounta._http.post(f"/_sandbox/orders/{order_id}/{act}", content=text,
                                 headers=headers)  # fmt: skip
    assert response.status_code == 200, response.text


async def open_sale(gw: Gateway) -> str:
    """A SAVED sale of John Smith's, made through the gateway."""
    sale_input = {
        "idempotencyKey": str(uuid.uuid4()),
        "registerId": REGISTER,
        "userId": USER,
        "customerId": gw.id(Kind.CUSTOMER, JOHN_SMITH),
        "lines": [line()],
        "status": "SAVED",
    }
    created = (await gw.data(CREATE, {"input": sale_input}))["createSale"]
    assert created["__typename"] == "CreateSaleSuccess", created
    sale_id: str = created["sale"]["id"]
    return sale_id


# --------------------------------------------------------------------------- each write

Warm = Callable[[], Awaitable[None]]


async def pay_with_loyalty(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    sale_id = await open_sale(gw)
    await warm()
    variables = {"input": {"idempotencyKey": "pay-1", "saleId": sale_id, "amount": "5"}}
    paid = (await gw.data(PAY, variables))["payWithLoyalty"]
    assert paid["__typename"] == "PayWithLoyaltySuccess", paid


async def create_sale_paid_with_loyalty(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    await warm()
    sale_input = {
        "idempotencyKey": "sale-1",
        "registerId": REGISTER,
        "userId": USER,
        "customerId": gw.id(Kind.CUSTOMER, JOHN_SMITH),
        "lines": [line()],
        "status": "SAVED",
        "loyaltyPayment": "7.50",
    }
    created = (await gw.data(CREATE, {"input": sale_input}))["createSale"]
    assert created["__typename"] == "CreateSaleSuccess", created


async def create_sale_that_earns(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    await warm()
    sale_input = {
        "idempotencyKey": "sale-2",
        "registerId": REGISTER,
        "userId": USER,
        "customerId": gw.id(Kind.CUSTOMER, JOHN_SMITH),
        "lines": [line()],
        "payments": [{"paymentTypeId": CASH, "amount": "23"}],
    }
    created = (await gw.data(CREATE, {"input": sale_input}))["createSale"]
    assert created["__typename"] == "CreateSaleSuccess", created


async def adjust_points(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    await warm()
    variables = {"i": {"idempotencyKey": "desk-1", "customerId": gw.id(Kind.CUSTOMER, JOHN_SMITH),
                       "points": "-7.25", "reason": "A mug returned"}}  # fmt: skip
    adjusted = (await gw.data(ADJUST, variables))["adjustPoints"]
    assert adjusted["__typename"] == "AdjustPointsSuccess", adjusted


async def kounta_redemption(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    await warm()
    url = reward_url(await looked_up(gw), "free-coffee")
    assert (await KountaPos(gw).redeem(url, JOHN_ORDER)) == {"success": True}


async def graphql_redemption_at_xseries(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    sale_id = await open_sale(gw)
    await warm()
    variables = {"input": {"idempotencyKey": "redeem-1",
                           "customerId": gw.id(Kind.CUSTOMER, JOHN_SMITH),
                           "rewardId": ids.encode(Kind.REWARD, None, gw.merchant.id,
                                                  "free-coffee"),
                           "saleId": sale_id}}  # fmt: skip
    redeemed = (await gw.data(REDEEM, variables))["redeemReward"]
    assert redeemed["__typename"] == "RedeemRewardSuccess", redeemed


async def kounta_earning_webhook(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    await warm()
    till(kounta, JOHN_ORDER, "complete")
    await kounta_hook(gw, kounta, JOHN_ORDER)


async def kounta_refund_webhook(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    pay_cash(kounta, JOHN_ORDER, TOTAL)
    till(kounta, JOHN_ORDER, "complete")
    await kounta_hook(gw, kounta, JOHN_ORDER)
    await warm()
    refund(kounta, JOHN_ORDER, TOTAL, deliveries=0)
    await kounta_hook(gw, kounta, JOHN_ORDER)


async def kounta_reject_gives_back(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    """Points redeemed on an order the till then rejects come back."""
    url = reward_url(await looked_up(gw), "free-coffee")
    assert (await KountaPos(gw).redeem(url, JOHN_ORDER)) == {"success": True}
    await warm()
    till(kounta, JOHN_ORDER, "reject")
    await kounta_hook(gw, kounta, JOHN_ORDER)


async def worker_reconciliation(gw: Gateway, kounta: SandboxHandle, warm: Warm) -> None:
    """No webhook: the worker's reconciliation finds the completed order and credits it."""
    await warm()
    till(kounta, JOHN_ORDER, "complete")
    report = await recover_once(Services(gw.runtime), reconcile=True)
    assert all(not done.failed for done in report.reconciled), report.reconciled


WRITES = [
    pay_with_loyalty,
    create_sale_paid_with_loyalty,
    create_sale_that_earns,
    adjust_points,
    kounta_redemption,
    graphql_redemption_at_xseries,
    kounta_earning_webhook,
    kounta_refund_webhook,
    kounta_reject_gives_back,
    worker_reconciliation,
]


@pytest.mark.parametrize("write", WRITES, ids=[w.__name__ for w in WRITES])
async def test_the_next_read_after_a_balance_moves_shows_the_new_balance(
    shop: Gateway,
    xseries: SandboxHandle,
    kounta: SandboxHandle,
    write: Callable[[Gateway, SandboxHandle, Warm], Awaitable[None]],
) -> None:
    warmed: list[Decimal] = []

    async def warm() -> None:
        """Both reads of the balance, so the cache holds it just before the write."""
        before = await shown(shop)
        assert before == xseries_balance(xseries, JOHN_SMITH)
        assert await shown(shop) == before  # served again, from the cache
        assert Decimal((await looked_up(shop))["current_points"]) == before
        warmed.append(before)

    await write(shop, kounta, warm)
    now = xseries_balance(xseries, JOHN_SMITH)
    assert warmed and now != warmed[-1]  # the write moved the balance
    assert await shown(shop) == now
    assert Decimal((await looked_up(shop))["current_points"]) == now
    with_rewards = await shop.data(WITH_REWARDS, {"id": shop.id(Kind.CUSTOMER, JOHN_SMITH)})
    assert with_rewards["customer"]["loyaltyBalance"] == f"{now:.2f}"


async def test_a_payment_whose_answer_was_lost_shows_at_once_when_it_landed(
    settings: Settings, clock: ManualClock, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    """OUTCOME_PENDING: the payment may have landed, so what is shown is read again."""
    runtime = await fresh_runtime(settings.model_copy(update={"upstream_settle_s": 60}), clock)
    gw = await make_kounta_gateway(runtime, kounta, "Late Goods", xseries=xseries)
    try:
        sale_id = await open_sale(gw)
        before = await shown(gw)
        assert await shown(gw) == before  # cached
        xseries.faults(
            status=503, fail_next=1, method="POST", path="/api/register_sales", after=True
        )
        variables = {"input": {"idempotencyKey": "lost-1", "saleId": sale_id, "amount": "5"}}
        assert (await gw.data(PAY, variables))["payWithLoyalty"]["code"] == "OUTCOME_PENDING"
        assert xseries_balance(xseries, JOHN_SMITH) == before - 5  # it landed
        assert await shown(gw) == before - 5
    finally:
        await gw.client.aclose()
        await runtime.aclose()


# --------------------------------------------------------------------------- the cache


async def test_a_displayed_balance_is_served_from_the_cache_within_the_ttl(
    shop: Gateway, xseries: SandboxHandle
) -> None:
    before = await shown(shop)
    calls = xseries.count(CUSTOMER_READS)
    assert await shown(shop) == before
    assert xseries.count(CUSTOMER_READS) == calls  # no call to X-Series


async def test_a_till_change_shows_after_the_ttl_without_a_webhook(
    shop: Gateway, xseries: SandboxHandle, clock: ManualClock
) -> None:
    before = await shown(shop)
    give_points(xseries, JOHN_SMITH, "10")  # at the till: the gateway does not know
    clock.advance(TTL_S - 0.5)
    assert await shown(shop) == before
    clock.advance(1)
    assert await shown(shop) == before + 10


async def test_a_till_change_shows_at_once_when_its_customer_update_arrives(
    shop: Gateway, xseries: SandboxHandle
) -> None:
    before = await shown(shop)
    give_points(xseries, JOHN_SMITH, "10")
    assert await shown(shop) == before  # within the TTL, no webhook yet
    await customer_update(shop, JOHN_SMITH, before + 10)
    assert await shown(shop) == before + 10


async def test_a_till_sale_shows_at_once_when_its_sale_update_arrives(
    shop: Gateway, xseries: SandboxHandle
) -> None:
    before = await shown(shop)
    till_sale_paid_with_loyalty(xseries, JOHN_SMITH, "4")
    assert await shown(shop) == before
    sales = xseries.get("/api/register_sales")["register_sales"]
    sale_id = next(s["id"] for s in sales if s["customer_id"] == JOHN_SMITH)
    body = {"type": "sale.update", "payload": json.dumps({"id": sale_id})}
    response = await shop.client.post(await shop.xseries_hook(), data=body)
    assert response.status_code == 200, response.text
    assert await shown(shop) == before - 4


async def test_what_may_be_redeemed_is_decided_on_the_balance_now(
    shop: Gateway, xseries: SandboxHandle
) -> None:
    """The till takes John down to 30 points (its webhook lost): GraphQL's display, balance
    and rewards alike, may still say 120 for the TTL, but Kounta's reward lookup no longer
    offers the free coffee (40), and redeeming it through GraphQL is refused on the balance
    read then."""
    assert await shown(shop) == Decimal(120)
    assert "free-coffee" in offered(await looked_up(shop))
    take = {"session_id": str(uuid.uuid4()),
            "adjustments": [{"customer_id": JOHN_SMITH, "debit": "90"}]}  # fmt: skip
    assert xseries.post("/api/2026-07/loyalty/adjustments/bulk", take).status_code == 200
    assert await shown(shop) == Decimal(120)  # the display, from the cache

    member = await looked_up(shop)
    assert member["current_points"] == "30.00"
    assert "free-coffee" not in offered(member)
    assert await shown(shop) == Decimal(30)  # the fresh read left itself for the display
    rewards = await shop.data(WITH_REWARDS, {"id": shop.id(Kind.CUSTOMER, JOHN_SMITH)})
    assert rewards["customer"]["loyaltyBalance"] == "30.00"  # shown with the rewards: agrees
    available = {r["title"]: r["available"] for r in rewards["customer"]["rewards"]}
    assert available["Free coffee"] is False


async def test_a_reward_shown_on_a_stale_balance_is_refused_when_redeemed(
    shop: Gateway, xseries: SandboxHandle
) -> None:
    """GraphQL's rewards are a display: within the TTL they may offer what the till already
    spent, and redeeming then decides on the balance read now."""
    customer = shop.id(Kind.CUSTOMER, JOHN_SMITH)
    assert await shown(shop) == Decimal(120)
    take = {"session_id": str(uuid.uuid4()),
            "adjustments": [{"customer_id": JOHN_SMITH, "debit": "90"}]}  # fmt: skip
    assert xseries.post("/api/2026-07/loyalty/adjustments/bulk", take).status_code == 200
    rewards = await shop.data(WITH_REWARDS, {"id": customer})
    assert rewards["customer"]["loyaltyBalance"] == "120.00"  # cached, and its rewards agree
    available = {r["title"]: r["available"] for r in rewards["customer"]["rewards"]}
    assert available["Free coffee"] is True
    kounta_customer = await shop.data(
        "query($id: ID!) { customer(id: $id) { rewards { title available } } }",
        {"id": shop.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)},
    )
    linked = {r["title"]: r["available"] for r in kounta_customer["customer"]["rewards"]}
    assert linked["Free coffee"] is True
    sale_id = await open_sale(shop)
    variables = {"input": {"idempotencyKey": "stale-1", "customerId": customer,
                           "rewardId": ids.encode(Kind.REWARD, None, shop.merchant.id,
                                                  "free-coffee"),
                           "saleId": sale_id}}  # fmt: skip
    refused = (await shop.data(REDEEM, variables))["redeemReward"]
    assert refused["code"] == "INSUFFICIENT_BALANCE", refused
    assert await shown(shop) == Decimal(30)  # the redemption's live read is shown next


async def test_customer_with_rewards_cache_warm_reads_nothing_of_x_series(
    shop: Gateway, xseries: SandboxHandle
) -> None:
    await shown(shop)
    calls = xseries.count(CUSTOMER_READS)
    await shop.data(WITH_REWARDS, {"id": shop.id(Kind.CUSTOMER, JOHN_SMITH)})
    assert xseries.count(CUSTOMER_READS) == calls


# --------------------------------------------------------------------------- processes


async def test_a_write_in_one_process_is_seen_by_the_next_read_in_another(
    shop: Gateway, kounta: SandboxHandle, settings: Settings, clock: ManualClock,
    backend: Backend,
) -> None:  # fmt: skip
    """Two gateways on one database and one cache (Redis): the one that did not make the
    write forgets the customer too. The memory cache is one process's own, so this is
    only a promise of the shared one (docs/architecture.md, "Caching and freshness")."""
    if backend.cache.startswith("memory"):
        pytest.skip("the memory cache serves one process")
    other = Runtime(settings, clock=clock)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime=other)),
                               base_url="http://gw")  # fmt: skip
    try:
        second = Gateway(client, other, shop.merchant, shop.key)
        before = await shown(second)
        assert await shown(second) == before  # cached in the shared cache
        await adjust_points(shop, kounta, _nothing)  # made by the first gateway
        assert await shown(second) == before - Decimal("7.25")
    finally:
        await client.aclose()
        await other.aclose()


async def _nothing() -> None:
    return None

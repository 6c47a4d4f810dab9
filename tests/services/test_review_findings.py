"""Review findings (branch review-7): each test fails because of a money defect.

Real sandboxes over HTTP, the settle window on a ManualClock, the worker run by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.rewards import Reward, RewardKind
from gateway.runtime import Runtime
from gateway.services import rewards
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from gateway.settings import Settings
from gateway.store.models import PosWriteRow, RedemptionRow
from tests.api.test_graphql_sales import CREATE, balance, give_points, line, pay
from tests.api.test_kounta_adapters import JOHN_ORDER, john, kounta_order, xseries_balance
from tests.api.test_kounta_graphql import redeem
from tests.conftest import fresh_runtime
from tests.demo_ids import (
    CASH,
    GST,
    JOHN_SMITH,
    JOHNNY,
    JOHNNY_SALE,
    LOYALTY,
    REGISTER,
    TONY,
    TSHIRT,
    USER,
)
from tests.gateways import KOUNTA_COMPANY, Gateway, KountaPos, make_kounta_gateway, reward_url
from tests.support import ManualClock, SandboxHandle, until

SETTLE_S = 60
SALES_POST = "POST /api/register_sales"
ORDERS = f"/v1/companies/{KOUNTA_COMPANY}/orders/"
KOUNTA_POST = "POST /v1/companies/{company_id}/orders/{order_id}/payments"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def windowed(settings: Settings, clock: ManualClock) -> AsyncIterator[Runtime]:
    runtime = await fresh_runtime(
        settings.model_copy(update={"upstream_settle_s": SETTLE_S}), clock
    )
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def shop(
    windowed: Runtime, kounta: SandboxHandle, xseries: SandboxHandle
) -> AsyncIterator[Gateway]:
    """Kounta + X-Series, points at X-Series; "big-treat": 10 points pay 15.00, so the
    X-Series redemption tops the balance up by 5 before its loyalty payment."""
    gw = await make_kounta_gateway(windowed, kounta, "Review Shop", xseries=xseries)
    reward = Reward("big-treat", "Big treat", RewardKind.PAYMENT, Decimal(10), Decimal(15))
    await rewards.add_reward(Services(windowed).scope(gw.merchant), reward)
    yield gw
    await gw.client.aclose()


async def statuses(runtime: Runtime) -> list[str]:
    async with runtime.db.read() as session:
        return [row.status for row in await session.scalars(select(RedemptionRow))]


async def age_redemptions(runtime: Runtime) -> None:
    """As if a lease's length had passed since each redemption last moved."""
    async with runtime.db.transaction() as session:
        await session.execute(
            update(RedemptionRow).values(updated_at=datetime.now(UTC) - timedelta(hours=1))
        )


async def create_sale(gw: Gateway, customer: str, key: str, **fields: Any) -> dict[str, Any]:
    sale_input: dict[str, Any] = {
        "idempotencyKey": key,
        "registerId": REGISTER,
        "userId": USER,
        "customerId": gw.id(Kind.CUSTOMER, customer),
        "status": "SAVED",  # nothing earned: balances move by the loyalty payment only
        "lines": [line()],  # 20 + 3 tax
        **fields,
    }
    result: dict[str, Any] = (await gw.data(CREATE, {"input": sale_input}))["createSale"]
    return result


def loyalty_paid_on_sales(xseries: SandboxHandle, customer: str) -> Decimal:
    sales = xseries.get("/api/register_sales")["register_sales"]
    return sum(
        (
            Decimal(str(p["amount"]))
            for s in sales
            if s["customer_id"] == customer
            for p in s["register_sale_payments"]
            if p["retailer_payment_type_id"] == LOYALTY
        ),
        Decimal(0),
    )


# --------------------------------------------------------------------------- finding 1


async def test_a_top_up_is_not_spendable_while_the_redemption_payment_is_unsettled(
    shop: Gateway, xseries: SandboxHandle, windowed: Runtime, clock: ManualClock
) -> None:
    """Johnny has 12 points. The X-Series redemption tops him up by 5 (to 17) and its
    loyalty payment's answer is lost (it did not land): OUTCOME_PENDING, and the balance
    lease is let go. A createSale through the gateway then spends all 17, top-up included.
    When the window has passed the payment is found missing, and giving the top-up back
    (a debit of 5) is refused: Johnny has spent 5 points that were never his, and the
    redemption is stuck in COMPENSATING (the refused debit replays its refusal forever)."""
    xseries.faults(status=503, fail_next=1, method="POST", path="/api/register_sales")
    first = await redeem(shop, JOHNNY, "big-treat", JOHNNY_SALE, Pos.XSERIES, key="r1")
    assert first["code"] == "OUTCOME_PENDING"
    assert balance(xseries, JOHNNY) == Decimal("17")  # 12 + the top-up, payment not landed

    # Another spend through the gateway, while the redemption is unsettled.
    spent = await create_sale(shop, JOHNNY, "spend-1", loyaltyPayment="17")
    assert spent["__typename"] != "CreateSaleSuccess", (
        "the top-up of an unsettled redemption was spent by another gateway payment"
    )

    clock.advance(SETTLE_S + 1)
    settled = await redeem(shop, JOHNNY, "big-treat", JOHNNY_SALE, Pos.XSERIES, key="r1")
    assert settled["code"] == "SALE_NOT_OPEN" and "given back" in settled["message"]
    assert await statuses(windowed) == ["FAILED"]
    assert balance(xseries, JOHNNY) == Decimal("12") - loyalty_paid_on_sales(xseries, JOHNNY)


# --------------------------------------------------------------------------- finding 2


def till_sale_paid_with_loyalty(xseries: SandboxHandle, customer: str, amount: str) -> None:
    """The shop's own till (not the gateway) takes a loyalty payment from the customer."""
    body = {
        "register_id": REGISTER,
        "user_id": USER,
        "status": "SAVED",
        "customer_id": customer,
        "register_sale_products": [
            {"product_id": TSHIRT, "quantity": 1, "price": "20", "tax": "3", "tax_id": GST}
        ],
        "register_sale_payments": [{"retailer_payment_type_id": LOYALTY, "amount": amount}],
    }
    response = xseries.post("/api/register_sales", body)
    assert response.status_code == 200, response.text


async def test_a_refused_undo_is_retried_until_it_succeeds(
    shop: Gateway, xseries: SandboxHandle, windowed: Runtime, clock: ManualClock
) -> None:
    """The redemption's payment did not land and its top-up (5) must be taken back. The
    first try is refused (Johnny spent the points at the till meanwhile). Johnny then earns
    100 points: the worker must now take the 5 back and finish. It never can: the undo is
    sent again with the same session_id, which X-Series answers with its first (refused)
    answer forever, so the redemption stays COMPENSATING and the 5 points stay created;
    the worker even counts it as finished each pass."""
    xseries.faults(status=503, fail_next=1, method="POST", path="/api/register_sales")
    first = await redeem(shop, JOHNNY, "big-treat", JOHNNY_SALE, Pos.XSERIES, key="r1")
    assert first["code"] == "OUTCOME_PENDING"
    till_sale_paid_with_loyalty(xseries, JOHNNY, "17")
    assert balance(xseries, JOHNNY) == Decimal(0)

    clock.advance(SETTLE_S + 1)
    refused = await redeem(shop, JOHNNY, "big-treat", JOHNNY_SALE, Pos.XSERIES, key="r1")
    assert refused["__typename"] != "RedeemRewardSuccess"
    assert await statuses(windowed) == ["COMPENSATING"]  # nothing to take the 5 from yet

    give_points(xseries, JOHNNY, "100")  # now the 5 can be taken back
    services = Services(windowed)
    for _ in range(3):
        await age_redemptions(windowed)
        await recover_once(services)
    assert await statuses(windowed) == ["FAILED"], "the undo can never succeed"
    assert balance(xseries, JOHNNY) == Decimal(95)  # 0 + 100 - the top-up taken back


# --------------------------------------------------------------------------- finding 3


async def test_a_sale_whose_answer_was_lost_is_found_when_read_back_late(
    shop: Gateway, xseries: SandboxHandle, clock: ManualClock
) -> None:
    """createSale's answer is lost but the sale (with a 10-point loyalty payment) landed.
    The retry with the same key comes 11 minutes later (an X-Series outage kept the worker
    from reading it back sooner). The read-back looks only 10 minutes back from *now*
    (create_sale.RECONCILE_WINDOW), misses the sale, calls it NOT_LANDED, and the retry
    posts a second sale: Tony pays 10 points twice for one request."""
    xseries.faults(status=503, fail_next=1, method="POST", path="/api/register_sales", after=True)
    first = await create_sale(shop, TONY, "sale-1", loyaltyPayment="10")
    assert first["code"] == "OUTCOME_PENDING"
    assert balance(xseries, TONY) == Decimal(40)  # it landed: 50 - 10

    clock.advance(11 * 60)
    again = await create_sale(shop, TONY, "sale-1", loyaltyPayment="10")
    assert again["__typename"] == "CreateSaleSuccess"
    assert xseries.count(SALES_POST) == 1, "the sale was posted a second time"
    assert balance(xseries, TONY) == Decimal(40)


# --------------------------------------------------------------------------- finding 4


TILL_LINE_KEYS = ("id", "product_id", "quantity", "price", "tax", "tax_id", "loyalty_value")


def close_at_the_till_with_cash(xseries: SandboxHandle, sale_id: str, cash: str) -> None:
    """The till takes the rest in cash and closes the sale (X-Series then credits what its
    lines earn)."""
    sale = xseries.get(f"/api/register_sales/{sale_id}")["register_sales"][0]
    body = {
        "id": sale_id,
        "register_id": sale["register_id"],
        "user_id": sale["user_id"],
        "customer_id": sale["customer_id"],
        "status": "CLOSED",
        "register_sale_products": [
            {k: item[k] for k in TILL_LINE_KEYS} for item in sale["register_sale_products"]
        ],
        "register_sale_payments": [
            *(
                {k: p[k] for k in ("id", "retailer_payment_type_id", "amount")}
                for p in sale["register_sale_payments"]
            ),
            {"retailer_payment_type_id": CASH, "amount": cash},
        ],
    }
    response = xseries.post("/api/register_sales", body)
    assert response.status_code == 200, response.text


async def test_loyalty_paid_in_steps_earns_nothing_on_the_part_paid_with_loyalty(
    shop: Gateway, xseries: SandboxHandle, windowed: Runtime
) -> None:
    """A sale of 100.00 whose lines earn 10.00 (1000 × 0.01). 99.53 of it is paid with
    loyalty in eight payWithLoyalty calls, each under half of what is left; the till takes
    the last 0.47 in cash and closes it, crediting the lines' 10.00. Rule 5: the sale earns
    10.00 × 0.47/100 ≈ 0.00. The lines are never rewritten (rounding would compound, and
    they may be read-only); the worker, following the open sale up, takes back the part
    paid with loyalty once the till has closed it."""
    give_points(xseries, JOHNNY, "188")  # 200 in all
    created = await create_sale(shop, JOHNNY, "big-sale", lines=[line(TSHIRT, "0.1", "0", "1000")])
    assert created["__typename"] == "CreateSaleSuccess"
    sale_id, pos_id = created["sale"]["id"], created["sale"]["posId"]
    steps = ["49", "24.99", "12.74", "6.50", "3.31", "1.69", "0.86", "0.44"]  # 99.53
    for n, amount in enumerate(steps):
        paid = await pay(shop, sale_id, amount, key=f"step-{n}")
        assert paid["__typename"] == "PayWithLoyaltySuccess", paid
    assert balance(xseries, JOHNNY) == Decimal("100.47")

    sale = xseries.get(f"/api/register_sales/{pos_id}")["register_sales"][0]
    assert Decimal(str(sale["register_sale_products"][0]["loyalty_value"])) == Decimal("0.01")

    close_at_the_till_with_cash(xseries, pos_id, "0.47")
    assert balance(xseries, JOHNNY) == Decimal("110.47")  # X-Series credits the lines' 10
    await recover_once(Services(windowed))  # not yet due: looked at every few minutes
    assert balance(xseries, JOHNNY) == Decimal("110.47")
    async with windowed.db.transaction() as session:
        await session.execute(update(PosWriteRow).values(follow_up_at=datetime.now(UTC)))
    await recover_once(Services(windowed))
    assert balance(xseries, JOHNNY) == Decimal("100.47")  # 0.47 of cash earns 0.00
    await recover_once(Services(windowed))
    assert balance(xseries, JOHNNY) == Decimal("100.47")  # once


# --------------------------------------------------------------------------- finding 5


async def test_a_landed_kounta_payment_is_never_given_back(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    """The reward's payment is POSTed to the order and answered 201 (it landed). The read of
    the order that follows, only to shape the answer, fails for good (a 404). That error
    comes out of redeem_kounta._write inside _apply's ``except GatewayError``, which takes
    any non-transient error for a refusal and gives the points back: the order keeps its
    4.60 loyalty payment and John keeps his 40 points."""
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")  # 40 points pay 4.60
    kounta.faults(late_ms=400, late_next=1, method="POST", path=ORDERS)  # answered in time
    redeeming = asyncio.create_task(pos.redeem(url, JOHN_ORDER))
    await until(lambda: kounta.count(KOUNTA_POST) == 1, what="the payment reaching Kounta")
    kounta.faults(status=404, fail_next=1, method="GET", path=f"{ORDERS}{JOHN_ORDER}")
    answer = await redeeming

    payments = kounta_order(kounta, JOHN_ORDER)["payments"]
    assert [Decimal(str(p["amount"])) for p in payments] == [Decimal("4.60")]  # it landed
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal(80), (
        f"paid on the order and the points given back too (answer: {answer})"
    )


# --------------------------------------------------------------------------- finding 6


async def test_an_unsettled_payment_on_an_order_that_is_gone_gives_the_points_back(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle, runtime: Runtime
) -> None:
    """The payment's answer is lost (it did not land), then the order disappears from
    Kounta (404). The read-back raises NotFound, which is not transient: the key's answer
    is recorded as NOT_FOUND, the redemption stays DEBITED, and the worker runs into the
    same NotFound on every pass (counting it "finished") without ever giving the 40 points
    back."""
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    kounta.faults(status=503, fail_next=1, method="POST", path=ORDERS)  # refused whole
    assert (await pos.redeem(url, JOHN_ORDER))["success"] is False
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal(80)

    kounta.faults(status=404, method="GET", path=f"{ORDERS}{JOHN_ORDER}")  # the order is gone
    answer = await pos.redeem(url, JOHN_ORDER)
    assert answer["success"] is False
    services = Services(runtime)
    for _ in range(3):
        await age_redemptions(runtime)
        await recover_once(services)
    assert await statuses(runtime) == ["FAILED"], "the redemption is stuck with the points"
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal(120)

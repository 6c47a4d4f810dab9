"""Writes whose answer was lost, landing late: after the gateway's timeout, after a retry.

The sandboxes hold a write (fault ``late_ms``) past the gateway's read timeout and then
apply it, as a real server finishes a request whose client went away. The gateway's
settle window is measured on a clock the test moves, so "before" and "after" the window
are exact without waiting it out; only the late write itself is waited for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from gateway.domain.ids import Kind
from gateway.runtime import Runtime
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from gateway.settings import Settings
from tests.api.test_graphql_sales import balance, give_points, pay
from tests.api.test_kounta_adapters import JOHN_ORDER, john, kounta_order, xseries_balance
from tests.conftest import fresh_runtime
from tests.demo_ids import JOHN_SMITH, JOHNNY, JOHNNY_SALE
from tests.gateways import (
    KOUNTA_COMPANY,
    Gateway,
    KountaPos,
    make_gateway,
    make_kounta_gateway,
    reward_url,
)
from tests.support import ManualClock, SandboxHandle, until

SETTLE_S = 60
PAYMENTS = f"/v1/companies/{KOUNTA_COMPANY}/orders/"
KOUNTA_POST = "POST /v1/companies/{company_id}/orders/{order_id}/payments"
SALES_POST = "POST /api/register_sales"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def slow_runtime(settings: Settings, clock: ManualClock) -> AsyncIterator[Runtime]:
    """A gateway that gives up on the POS after 0.3 s and reads a lost write back 60 s
    (on ``clock``) after sending it."""
    tuned = settings.model_copy(
        update={"upstream_read_timeout_s": 0.3, "upstream_settle_s": SETTLE_S}
    )
    runtime = await fresh_runtime(tuned, clock)
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def cafe(
    slow_runtime: Runtime, kounta: SandboxHandle, xseries: SandboxHandle
) -> AsyncIterator[Gateway]:
    gw = await make_kounta_gateway(slow_runtime, kounta, "Late Cafe", xseries=xseries)
    yield gw
    await gw.client.aclose()


@pytest.fixture
async def shop(slow_runtime: Runtime, xseries: SandboxHandle) -> AsyncIterator[Gateway]:
    gw = await make_gateway(slow_runtime, xseries, "Late Shop")
    yield gw
    await gw.client.aclose()


def sale_payments(xseries: SandboxHandle) -> list[Decimal]:
    sale = xseries.get(f"/api/register_sales/{JOHNNY_SALE}")["register_sales"][0]
    return [Decimal(str(p["amount"])) for p in sale["register_sale_payments"]]


async def test_a_late_kounta_payment_is_settled_never_paid_twice(
    cafe: Gateway, kounta: SandboxHandle, xseries: SandboxHandle, clock: ManualClock
) -> None:
    pos = KountaPos(cafe)
    url = reward_url(await john(pos), "free-coffee")  # 40 points pay 4.60
    kounta.faults(late_ms=1500, method="POST", path=PAYMENTS)

    first = await pos.redeem(url, JOHN_ORDER)  # the gateway times out; Kounta holds it
    assert first["success"] is False and "read back" in first["error"]
    retried = await pos.redeem(url, JOHN_ORDER)  # inside the window: no second write
    assert retried["success"] is False and "read back" in retried["error"]
    assert kounta.count(KOUNTA_POST) == 1

    await until(lambda: len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1, what="landing")
    kounta.clear_faults()
    assert (await pos.redeem(url, JOHN_ORDER))["success"] is False  # landed, window not over
    clock.advance(SETTLE_S + 1)
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}

    payments = kounta_order(kounta, JOHN_ORDER)["payments"]
    assert len(payments) == 1 and Decimal(str(payments[0]["amount"])) == Decimal("4.60")
    assert kounta.count(KOUNTA_POST) == 1
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")  # 120 - 40, once
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}


async def test_the_worker_settles_a_late_kounta_payment_on_its_own(
    cafe: Gateway,
    kounta: SandboxHandle,
    xseries: SandboxHandle,
    clock: ManualClock,
    slow_runtime: Runtime,
) -> None:
    pos = KountaPos(cafe)
    url = reward_url(await john(pos), "free-coffee")
    kounta.faults(late_ms=1500, method="POST", path=PAYMENTS)
    assert (await pos.redeem(url, JOHN_ORDER))["success"] is False
    await until(lambda: len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1, what="landing")
    kounta.clear_faults()

    services = Services(slow_runtime)
    early = await recover_once(services)
    assert early.finished == []  # the window is not over: nothing is decided yet
    clock.advance(SETTLE_S + 1)
    report = await recover_once(services)
    assert len(report.finished) == 1
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")


async def test_a_kounta_payment_that_never_lands_gives_the_points_back_after_the_window(
    cafe: Gateway, kounta: SandboxHandle, xseries: SandboxHandle, clock: ManualClock
) -> None:
    pos = KountaPos(cafe)
    url = reward_url(await john(pos), "free-coffee")
    kounta.faults(status=502, fail_next=1, method="POST", path=PAYMENTS)  # refused whole
    assert (await pos.redeem(url, JOHN_ORDER))["success"] is False
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")  # taken, not yet known
    pending = await pos.redeem(url, JOHN_ORDER)
    assert pending["success"] is False and "read back" in pending["error"]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")  # not given back early
    clock.advance(SETTLE_S + 1)
    settled = await pos.redeem(url, JOHN_ORDER)
    assert settled["success"] is False and "given back" in settled["error"]
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")
    assert kounta.count(KOUNTA_POST) == 1


async def test_a_late_loyalty_payment_is_settled_never_paid_twice(
    shop: Gateway, xseries: SandboxHandle, clock: ManualClock
) -> None:
    sale_id = shop.id(Kind.SALE, JOHNNY_SALE)
    xseries.faults(late_ms=1500, method="POST", path="/api/register_sales")

    first = await pay(shop, sale_id, "5", key="till-1")
    assert first["code"] == "OUTCOME_PENDING"
    retried = await pay(shop, sale_id, "5", key="till-1")
    assert retried["code"] == "OUTCOME_PENDING" and xseries.count(SALES_POST) == 1

    await until(lambda: len(sale_payments(xseries)) == 2, what="the late payment landing")
    xseries.clear_faults()
    assert (await pay(shop, sale_id, "5", key="till-1"))["code"] == "OUTCOME_PENDING"
    clock.advance(SETTLE_S + 1)
    settled = await pay(shop, sale_id, "5", key="till-1")
    assert settled["__typename"] == "PayWithLoyaltySuccess"
    assert settled["payment"]["amount"] == "5.00" and settled["payment"]["balanceAfter"] == "7.00"
    assert sale_payments(xseries) == [Decimal(5), Decimal(5)]
    assert balance(xseries, JOHNNY) == Decimal("7")  # 12 - 5, once
    assert xseries.count(SALES_POST) == 1
    assert await pay(shop, sale_id, "5", key="till-1") == settled


async def test_no_other_payment_touches_a_sale_while_one_is_unsettled(
    shop: Gateway, xseries: SandboxHandle, clock: ManualClock
) -> None:
    """Finding 2: key A's answer is lost, key B pays the same amount on the same sale; A's
    retry must never report B's payment as its own."""
    give_points(xseries, JOHNNY, "88")  # 100 in all
    sale_id = shop.id(Kind.SALE, JOHNNY_SALE)
    xseries.faults(status=503, fail_next=1, method="POST", path="/api/register_sales", after=True)
    assert (await pay(shop, sale_id, "3", key="A"))["code"] == "OUTCOME_PENDING"
    blocked = await pay(shop, sale_id, "3", key="B")
    assert blocked["code"] == "OUTCOME_PENDING"  # A is unsettled: B must wait
    assert sale_payments(xseries) == [Decimal(5), Decimal(3)]  # A's, landed

    clock.advance(SETTLE_S + 1)
    b = await pay(shop, sale_id, "3", key="B")  # settles A's first, then pays
    a = await pay(shop, sale_id, "3", key="A")
    assert a["__typename"] == b["__typename"] == "PayWithLoyaltySuccess"
    assert a["payment"]["id"] != b["payment"]["id"]
    assert sale_payments(xseries) == [Decimal(5), Decimal(3), Decimal(3)]
    assert balance(xseries, JOHNNY) == Decimal("94")


async def test_a_lost_payment_that_did_not_land_is_paid_by_the_retry(
    shop: Gateway, xseries: SandboxHandle, clock: ManualClock
) -> None:
    sale_id = shop.id(Kind.SALE, JOHNNY_SALE)
    xseries.faults(status=503, fail_next=1, method="POST", path="/api/register_sales")
    assert (await pay(shop, sale_id, "3", key="A"))["code"] == "OUTCOME_PENDING"
    assert sale_payments(xseries) == [Decimal(5)]
    clock.advance(SETTLE_S + 1)
    a = await pay(shop, sale_id, "3", key="A")  # read back: not there; paid now, once
    assert a["__typename"] == "PayWithLoyaltySuccess"
    assert sale_payments(xseries) == [Decimal(5), Decimal(3)]
    assert balance(xseries, JOHNNY) == Decimal("9")
    assert xseries.count(SALES_POST) == 2

"""Exactly-once when the POS committed but its answer was lost, or it refused for a while.

A write whose answer was lost is OUTCOME_PENDING: a retry with the same idempotency key
reads the POS back (here at once: the tests' settle window is 0) before writing again.
"""

from __future__ import annotations

from decimal import Decimal

from gateway.domain.ids import Kind
from tests.api.test_graphql_sales import balance, create, pay
from tests.demo_ids import CASH, JOHNNY, JOHNNY_SALE, TONY
from tests.gateways import Gateway
from tests.support import SandboxHandle

LOSE_THE_ANSWER = {
    "status": 503,
    "fail_next": 1,
    "method": "POST",
    "path": "/api/register_sales",
    "after": True,
}


async def test_payment_applied_but_answer_lost_is_not_applied_twice(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    sale_id = gateway.id(Kind.SALE, JOHNNY_SALE)
    xseries.faults(**LOSE_THE_ANSWER)
    lost = await pay(gateway, sale_id, "5", key="lost-answer")
    assert lost["code"] == "OUTCOME_PENDING"
    assert balance(xseries, JOHNNY) == Decimal("7")  # X-Series did take it

    retried = await pay(gateway, sale_id, "5", key="lost-answer")
    assert retried["__typename"] == "PayWithLoyaltySuccess"
    assert retried["payment"]["balanceAfter"] == "7.00"
    assert [p["amount"] for p in retried["sale"]["payments"]] == ["5.00", "5.00"]
    assert balance(xseries, JOHNNY) == Decimal("7")
    assert xseries.count("POST /api/register_sales") == 1
    assert await pay(gateway, sale_id, "5", key="lost-answer") == retried


async def test_payment_refused_by_an_outage_is_applied_by_the_retry(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    sale_id = gateway.id(Kind.SALE, JOHNNY_SALE)
    xseries.faults(status=503, fail_next=1, method="POST")
    # A 503 to a POST may hide a write that landed: pending until read back.
    assert (await pay(gateway, sale_id, "5", key="outage"))["code"] == "OUTCOME_PENDING"
    assert balance(xseries, JOHNNY) == Decimal("12")
    retried = await pay(gateway, sale_id, "5", key="outage")
    assert retried["__typename"] == "PayWithLoyaltySuccess"
    assert balance(xseries, JOHNNY) == Decimal("7")
    assert xseries.count("POST /api/register_sales") == 2


async def test_rate_limited_payment_is_not_resent_until_retried(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    sale_id = gateway.id(Kind.SALE, JOHNNY_SALE)
    xseries.faults(status=429, fail_next=1, method="POST", retry_after_s=3)
    limited = await pay(gateway, sale_id, "5", key="limited")
    assert limited["__typename"] == "RateLimitedError"
    assert limited["code"] == "RATE_LIMITED"
    assert xseries.count("POST /api/register_sales") == 1
    assert (await pay(gateway, sale_id, "5", key="limited"))[
        "__typename"
    ] == "PayWithLoyaltySuccess"
    assert balance(xseries, JOHNNY) == Decimal("7")


async def test_sale_created_but_answer_lost_is_found_not_duplicated(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    cash = [{"paymentTypeId": CASH, "amount": "23"}]
    xseries.faults(**LOSE_THE_ANSWER)
    lost = await create(gateway, key="lost-sale", payments=cash)
    assert lost["code"] == "OUTCOME_PENDING"
    found = await create(gateway, key="lost-sale", payments=cash)
    assert found["__typename"] == "CreateSaleSuccess"
    assert found["sale"]["status"] == "CLOSED"
    assert xseries.count("POST /api/register_sales") == 1
    assert xseries.get("/api/register_sales")["pagination"]["results"] == 3  # 2 demo + 1
    assert balance(xseries, TONY) == Decimal("52")  # earned once


async def test_a_retry_never_claims_another_callers_payment(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    from tests.api.test_graphql_sales import give_points

    give_points(xseries, JOHNNY, "88")  # 100 in all
    sale_id = gateway.id(Kind.SALE, JOHNNY_SALE)
    xseries.faults(status=503, fail_next=1, method="POST", path="/api/register_sales")
    assert (await pay(gateway, sale_id, "3", key="A"))["code"] == "OUTCOME_PENDING"
    b = await pay(gateway, sale_id, "7", key="B")
    assert b["payment"]["amount"] == "7.00"
    a = await pay(gateway, sale_id, "3", key="A")
    assert a["__typename"] == "PayWithLoyaltySuccess"
    assert a["payment"]["amount"] == "3.00" and a["payment"]["id"] != b["payment"]["id"]
    sale = xseries.get(f"/api/register_sales/{JOHNNY_SALE}")["register_sales"][0]
    assert [Decimal(str(p["amount"])) for p in sale["register_sale_payments"]] == [5, 7, 3]
    assert balance(xseries, JOHNNY) == Decimal("90")

"""Kounta orders as Kounta's own documentation shows them: lines with ids, numbers and
modifiers, payments known by id and method, no ``total`` or ``paid``, an order-wide
``price_variation`` (docs/pos-contracts.md, "Kounta")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.runtime import Runtime
from gateway.sandbox.kounta import DEMO_FIXTURES
from gateway.services.context import Services
from gateway.services.earning import earn_from_order
from tests.api.test_kounta_adapters import JOHN_ORDER, john, kounta_order, xseries_balance
from tests.demo_ids import JOHN_SMITH
from tests.gateways import KOUNTA_COMPANY, Gateway, KountaPos, make_kounta_gateway, reward_url
from tests.support import SandboxHandle, until

DOC_ORDER = "93824799"
ORDER_PATH = f"/v1/companies/{KOUNTA_COMPANY}/orders/{DOC_ORDER}"
GET_ORDER = "GET /v1/companies/{company_id}/orders/{order_id}"
PUT_ORDER = "PUT /v1/companies/{company_id}/orders/{order_id}"

# John's order as the documentation's example has it: no total, total_tax or paid; lines
# with ids, numbers and modifiers; a cash payment known by its id and method.
DOCUMENTED_ORDER = """{
  "id": 93824799, "status": "ON_HOLD", "notes": "Take away, gold member", "customer_id": 3842,
  "lines": [
    {"id": 37864193203, "number": 1, "product": {"id": 7302, "name": "Caffé Latte"},
     "quantity": 6, "notes": "Extra sugar please", "unit_price": 1.36, "unit_tax": 0.14,
     "modifiers": [-67, 4410]},
    {"id": 37864193204, "number": 2, "product": {"id": 5312, "name": "Salmon Sandwich"},
     "quantity": 1, "price_variation": 0.9, "unit_price": 9.09, "unit_tax": 0.91}
  ],
  "payments": [{"id": 19230990, "method": {"id": 1, "name": "Cash"}, "amount": 5.5}],
  "omit_fields": ["total", "total_tax", "paid"]
}"""
# 6 × (1.36 + 0.14) + 0.9 × (9.09 + 0.91), each rounded to cents: 18.00; 5.50 paid.
DOCUMENTED_OWING = Decimal("12.50")

SALE = """query($id: ID!) { sale(id: $id) {
  status amountDue totalPrice totalTax payments { name amount isLoyalty } } }"""


def with_documented_order(kounta: SandboxHandle, **changes: Any) -> None:
    """The demo data plus the documented order (numbers travel as the JSON text they are)."""
    fixtures = json.loads(DEMO_FIXTURES.read_text())
    fixtures["orders"].append({**json.loads(DOCUMENTED_ORDER), **changes})
    kounta.reset(fixtures)


def line_identities(order: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(ln["id"], ln["number"], ln["modifiers"]) for ln in order["lines"]]


def variations(order: dict[str, Any]) -> list[Decimal]:
    return [Decimal(str(ln["price_variation"])) for ln in order["lines"]]


# --------------------------------------------------------------------------- lines


async def test_a_percent_discount_keeps_every_lines_id_number_and_modifiers(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    with_documented_order(kounta)
    before = kounta_order(kounta, DOC_ORDER)
    pos = KountaPos(both)
    assert await pos.redeem(reward_url(await john(pos), "ten-off"), DOC_ORDER) == {"success": True}
    after = kounta_order(kounta, DOC_ORDER)
    assert (
        line_identities(after)
        == line_identities(before)
        == [
            (37864193203, 1, [-67, 4410]),
            (37864193204, 2, []),
        ]
    )
    assert variations(after) == [Decimal("0.9"), Decimal("0.81")]
    for old, new in zip(before["lines"], after["lines"], strict=True):
        unchanged = {k: v for k, v in old.items() if not k.startswith(("price", "line_total"))}
        assert {k: new[k] for k in unchanged} == unchanged
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("20")


async def test_a_discount_does_not_overwrite_what_the_register_changed_meanwhile(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    """The register adds a line between the gateway's read of the order and its write: the
    gateway writes nothing, keeps the points for a retry, and the retry discounts all three
    lines, the register's included."""
    with_documented_order(kounta)
    register_edit = kounta_order(kounta, DOC_ORDER)["lines"] + [
        {"product_id": 7302, "quantity": 1, "unit_price": 4.0, "unit_tax": 0.6}
    ]
    pos = KountaPos(both)
    url = reward_url(await john(pos), "ten-off")
    reads_before = kounta.count(GET_ORDER)
    # Every read of the order is held 400 ms; the register edits it while the gateway's
    # last read before its write (the third of the redemption) is held.
    kounta.faults(latency_ms=400, method="GET", path=ORDER_PATH)
    redemption = asyncio.create_task(pos.redeem(url, DOC_ORDER))
    await until(lambda: kounta.count(GET_ORDER) >= reads_before + 3, what="the last read")
    edited = kounta._http.put(
        ORDER_PATH,
        json={"lines": register_edit},
        headers={"Authorization": f"Bearer {kounta.token}", "Accept": "application/json"},
    )
    assert edited.status_code == 200, edited.text
    answer = await redemption
    kounta.clear_faults()
    assert answer["success"] is False and "changed at the register" in answer["error"]
    assert kounta.count(PUT_ORDER) == 1  # the register's; the gateway sent nothing
    order = kounta_order(kounta, DOC_ORDER)
    assert len(order["lines"]) == 3 and variations(order) == [1, Decimal("0.9"), 1]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("20")  # held for the retry

    assert await pos.redeem(url, DOC_ORDER) == {"success": True}
    order = kounta_order(kounta, DOC_ORDER)
    assert variations(order) == [Decimal("0.9"), Decimal("0.81"), Decimal("0.9")]
    assert line_identities(order)[:2] == [(37864193203, 1, [-67, 4410]), (37864193204, 2, [])]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("20")  # taken once


# --------------------------------------------------------------------------- totals


async def test_an_order_without_total_or_paid_takes_a_payment_reward(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    with_documented_order(kounta)
    assert not {"total", "total_tax", "paid"} & set(kounta_order(kounta, DOC_ORDER))
    pos = KountaPos(both)
    member = await john(pos)
    too_much = await pos.redeem(reward_url(member, "pay-with-points"), DOC_ORDER, quantity="12.51")
    assert too_much["success"] is False and "only 12.50 is due" in too_much["error"]
    assert await pos.redeem(reward_url(member, "free-coffee"), DOC_ORDER) == {"success": True}
    payments = kounta_order(kounta, DOC_ORDER)["payments"]
    assert [Decimal(str(p["amount"])) for p in payments] == [Decimal("5.5"), Decimal("4.6")]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")
    sale = (await both.data(SALE, {"id": both.id(Kind.SALE, DOC_ORDER, Pos.KOUNTA)}))["sale"]
    assert sale == {
        "status": "ON_HOLD",
        "amountDue": str(DOCUMENTED_OWING - Decimal("4.60")),
        "totalPrice": "16.34",
        "totalTax": "1.66",
        "payments": [
            {"name": "Cash", "amount": "5.50", "isLoyalty": False},
            {"name": "Loyalty Points", "amount": "4.60", "isLoyalty": True},
        ],
    }


@pytest.fixture
async def café(runtime: Runtime, kounta: SandboxHandle) -> AsyncIterator[Gateway]:
    gw = await make_kounta_gateway(runtime, kounta, "Kounta Café")
    yield gw
    await gw.client.aclose()


async def test_an_order_wide_price_variation_earns_ninety_percent(
    café: Gateway, kounta: SandboxHandle, runtime: Runtime
) -> None:
    fixtures = json.loads(DEMO_FIXTURES.read_text())
    fixtures["orders"][0]["price_variation"] = 0.9
    kounta.reset(fixtures)
    assert Decimal(str(kounta_order(kounta, JOHN_ORDER)["total"])) == Decimal("34.16")
    kounta.post(f"/_sandbox/orders/{JOHN_ORDER}/complete", {"deliveries": 0})
    earned = await earn_from_order(Services(runtime).scope(café.merchant), JOHN_ORDER)
    assert earned.points == Decimal("2.97")  # 90% of the 3.30 the same order earns at 1


async def test_an_order_without_totals_earns_from_its_lines_less_what_points_paid(
    café: Gateway, kounta: SandboxHandle, runtime: Runtime
) -> None:
    """Payments are known by their ``method`` (the documentation shows no ``method_id``),
    and the order-wide ``price_variation`` prices every line."""
    payments = [
        {"id": 19230990, "method": {"id": 1, "name": "Cash"}, "amount": 4.5},
        {"id": 19230991, "method": {"id": 12, "name": "Loyalty Points"}, "amount": 4.5},
    ]
    with_documented_order(kounta, payments=payments, price_variation=0.5)
    kounta.post(f"/_sandbox/orders/{DOC_ORDER}/complete", {"deliveries": 0})
    earned = await earn_from_order(Services(runtime).scope(café.merchant), DOC_ORDER)
    # At half price the order is 9.00, half of it paid with points, so each unit earns half
    # of 10% of its price: 6 × round(0.68 × 0.1 × 0.5) + round(4.0905 × 0.1 × 0.5).
    assert earned.points == Decimal("0.38")

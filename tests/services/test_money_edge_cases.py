"""Edge cases of redemption and earning where points could be lost, doubled or stranded."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import orjson
from sqlalchemy import select, update

from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.runtime import Runtime
from gateway.services import rewards
from gateway.services.context import Services
from gateway.services.earning import earn_from_order
from gateway.services.recovery import recover_once
from gateway.store import ledger
from gateway.store.models import IdempotencyRow, RedemptionRow
from tests.api.test_graphql_sales import CREATE, create, give_points, line
from tests.api.test_kounta_adapters import (
    JOHN_KOUNTA,
    JOHN_ORDER,
    john,
    kounta_order,
    xseries_balance,
)
from tests.demo_ids import JOHN_SMITH, REGISTER, USER
from tests.gateways import KOUNTA_COMPANY, Gateway, KountaPos, make_kounta_gateway, reward_url
from tests.support import SandboxHandle

ORDERS = "/v1/companies/5678/orders/"


async def redemption_rows(runtime: Runtime) -> list[RedemptionRow]:
    async with runtime.db.read() as session:
        return list(await session.scalars(select(RedemptionRow)))


async def test_an_archived_reward_does_not_strand_a_redemption_under_way(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle, runtime: Runtime
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    kounta.faults(status=503, method="POST", path=ORDERS, after=True)  # lands, answer lost
    assert (await pos.redeem(url, JOHN_ORDER))["success"] is False
    services = Services(runtime)
    await rewards.archive_reward(services.scope(both.merchant), "free-coffee")
    kounta.clear_faults()
    report = await recover_once(services)
    assert len(report.finished) == 1
    assert [r.status for r in await redemption_rows(runtime)] == ["COMPLETED"]
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")


async def test_the_worker_gives_back_points_whose_run_ended_without_applying(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle, runtime: Runtime
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    kounta.faults(status=503, method="POST", path=ORDERS)
    assert (await pos.redeem(url, JOHN_ORDER))["success"] is False
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")
    # A run that stored an answer but left its redemption unfinished (a fault of ours):
    stored = orjson.dumps(
        {"error": {"code": "VALIDATION", "message": "x", "field": None, "details": {}}}
    )
    async with runtime.db.transaction() as session:
        await session.execute(
            update(IdempotencyRow)
            .where(IdempotencyRow.operation == "redeemReward")
            .values(status="COMPLETED", result_json=stored.decode())
        )
    report = await recover_once(Services(runtime))
    assert len(report.finished) == 1
    assert [r.status for r in await redemption_rows(runtime)] == ["FAILED"]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []


async def test_two_discounts_on_one_order_both_apply(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    give_points(xseries, JOHN_SMITH, "200")
    pos = KountaPos(both)
    first = reward_url(await john(pos), "ten-off")
    second = reward_url(await john(pos), "ten-off")
    kounta.faults(latency_ms=100)
    answers = await asyncio.gather(pos.redeem(first, JOHN_ORDER), pos.redeem(second, JOHN_ORDER))
    kounta.clear_faults()
    assert list(answers) == [{"success": True}, {"success": True}]
    lines = kounta_order(kounta, JOHN_ORDER)["lines"]
    assert [Decimal(str(x["price_variation"])) for x in lines] == [Decimal("0.81")] * 2
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")  # 320 - 2 x 100


async def test_two_payments_cannot_together_pay_more_than_is_owed(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    pos = KountaPos(both)
    first = reward_url(await john(pos), "pay-with-points")
    second = reward_url(await john(pos), "pay-with-points")
    kounta.faults(latency_ms=100)
    answers = await asyncio.gather(
        pos.redeem(first, JOHN_ORDER, quantity="20"), pos.redeem(second, JOHN_ORDER, quantity="20")
    )
    kounta.clear_faults()
    assert sorted(a["success"] for a in answers) == [False, True]  # 37.95 owing
    assert [Decimal(str(p["amount"])) for p in kounta_order(kounta, JOHN_ORDER)["payments"]] == [20]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("100")  # the refused one given back


async def test_an_absurd_price_is_a_validation_error(gateway: Gateway) -> None:
    sale = {"idempotencyKey": str(uuid.uuid4()), "registerId": REGISTER, "userId": USER,
            "lines": [line(price="1e30")]}  # fmt: skip
    created = (await gateway.data(CREATE, {"input": sale}))["createSale"]
    assert (created["code"], created["field"]) == ("VALIDATION", "lines[0].price")


async def test_an_absurd_quantity_of_points_is_refused(both: Gateway) -> None:
    pos = KountaPos(both)
    answer = await pos.redeem(
        reward_url(await john(pos), "pay-with-points"), JOHN_ORDER, quantity="1e30"
    )
    assert answer["success"] is False and "quantity" in answer["error"]


async def test_fractional_quantities_credit_whole_cents(
    runtime: Runtime, kounta: SandboxHandle
) -> None:
    café = await make_kounta_gateway(runtime, kounta, "Ledger Café")
    order = kounta.post(
        f"/v1/companies/{KOUNTA_COMPANY}/orders",
        {"status": "ON_HOLD", "customer_id": int(JOHN_KOUNTA),
         "lines": [{"product_id": 7302, "quantity": 1.12345, "unit_price": 3.33}]},
    ).json()  # fmt: skip
    kounta.post(f"/_sandbox/orders/{order['id']}/complete", {"deliveries": 0})
    earned = await earn_from_order(Services(runtime).scope(café.merchant), str(order["id"]))
    assert earned.points == Decimal("0.37")  # 0.33 × 1.12345 = 0.3707...: rounded to cents
    async with runtime.db.read() as session:
        assert await ledger.balance(session, café.merchant.id, JOHN_KOUNTA) == Decimal("0.37")
    await café.client.aclose()


async def test_a_rejected_order_is_not_retried_forever(
    both: Gateway, kounta: SandboxHandle, runtime: Runtime
) -> None:
    kounta._http.put(
        f"/v1/companies/{KOUNTA_COMPANY}/orders/{JOHN_ORDER}",
        json={"status": "REJECTED"},
        headers={"Authorization": f"Bearer {kounta.token}", "Accept": "application/json"},
    ).raise_for_status()
    earned = await earn_from_order(Services(runtime).scope(both.merchant), JOHN_ORDER)
    assert earned.points == 0 and "REJECTED" in earned.outcome


async def test_caller_keys_cannot_collide_with_the_gateways_own(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle, runtime: Runtime
) -> None:
    created = await create(
        both,
        key=f"kounta-order:{JOHN_ORDER}",  # what the gateway once used internally
        payments=[{"paymentTypeId": "dc85058a-a683-11e5-e112-51cc5a8f0001", "amount": "23"}],
    )
    assert created["__typename"] == "CreateSaleSuccess"
    kounta.post(f"/_sandbox/orders/{JOHN_ORDER}/complete", {"deliveries": 0})
    earned = await earn_from_order(Services(runtime).scope(both.merchant), JOHN_ORDER)
    assert earned.outcome == "credited"


async def test_a_retry_with_the_same_numbers_spelled_differently_is_the_same_request(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    cash = "dc85058a-a683-11e5-e112-51cc5a8f0001"
    first = await create(
        gateway,
        key="spelled",
        lines=[line(quantity="1")],
        payments=[{"paymentTypeId": cash, "amount": "23"}],
    )
    again = await create(
        gateway,
        key="spelled",
        lines=[line(quantity="1.0", price="20.00")],
        payments=[{"paymentTypeId": cash, "amount": "23.00"}],
    )
    assert again == first
    assert xseries.count("POST /api/register_sales") == 1


async def test_a_linked_kounta_customer_shows_their_balance(both: Gateway) -> None:
    data = await both.data(
        "query($id: ID!) { customer(id: $id) { pos loyaltyEnabled loyaltyBalance } }",
        {"id": both.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)},
    )
    assert data["customer"] == {"pos": "KOUNTA", "loyaltyEnabled": True, "loyaltyBalance": "120.00"}

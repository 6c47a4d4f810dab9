"""The till's afterlife of a Kounta order in the sandbox: refunds (negative payments, also
after completion), rejects, deletes, the webhooks each sends (``TILL_TOPICS``), and the
order lists a poller reconciles with (``/orders/complete``, ``/orders/deleted``, the date
filters). docs/pos-contracts.md, "Refunds, voids, rejects, deletes (sandbox behaviour)"."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox.kounta import create_app
from tests.sandbox.conftest import TOKEN, FakeClock, RecordingSleep
from tests.sandbox.test_kounta_sandbox import (
    BASE,
    CARD,
    CASH,
    HOOK,
    JOHN_ORDER,
    LUCY_ORDER,
    TONY_ORDER,
    Deliveries,
    add_webhook,
    complete,
    data,
    get_order,
    line,
    pay,
)
from tests.support import ServerThread

UPDATED = "https://gw.example/webhooks/kounta/updated"
DELETED = "https://gw.example/webhooks/kounta/deleted"
LATER = "2026-11-21T10:05:00+00:00"


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries()


@pytest.fixture
def app(clock: FakeClock, sleeps: RecordingSleep, deliveries: Deliveries) -> Starlette:
    """Overrides the X-Series app of conftest, so its ``client`` fixture talks to Kounta."""
    return create_app(token=TOKEN, clock=clock, sleep=sleeps, deliver=deliveries)


async def act(client: httpx.AsyncClient, order_id: int, name: str, **body: Any) -> httpx.Response:
    return await client.post(f"/_sandbox/orders/{order_id}/{name}", json=body or None)


async def listed(client: httpx.AsyncClient, path: str = "", **params: str) -> list[int]:
    response = await client.get(f"{BASE}/orders{path}", params=params)
    assert response.status_code == 200, response.text
    return [order["id"] for order in response.json()]


async def subscribe_all(client: httpx.AsyncClient) -> None:
    """One webhook per order topic, each at its own address."""
    await add_webhook(client)
    await add_webhook(client, topic="orders/updated", address=UPDATED)
    await add_webhook(client, topic="orders/deleted", address=DELETED)


# -- refunds -------------------------------------------------------------------------------------


async def test_a_negative_payment_on_a_completed_order_is_a_refund(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(300)
    response = await pay(client, LUCY_ORDER, -3.35, method_id=CARD, ref="R-1")
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{BASE}/orders/{LUCY_ORDER}/payments/2"
    order = await get_order(client, LUCY_ORDER)
    assert order["status"] == "COMPLETE"
    assert [(p["method"]["id"], p["amount"], p["ref"]) for p in order["payments"]] == [
        (CASH, Decimal("10.35"), ""),
        (CARD, Decimal("-3.35"), "R-1"),
    ]
    assert (order["paid"], order["updated_at"]) == (7, LATER)
    assert order["payments"][1]["created_at"] == LATER


async def test_a_completed_order_still_takes_no_positive_payment(
    client: httpx.AsyncClient,
) -> None:
    await pay(client, LUCY_ORDER, -5)
    response = await pay(client, LUCY_ORDER, 1)
    assert (response.status_code, response.json()) == (400, {"error": "Order is complete"})
    assert (await get_order(client, LUCY_ORDER))["paid"] == Decimal("5.35")


async def test_refunds_add_up_to_at_most_what_was_paid_in_all(client: httpx.AsyncClient) -> None:
    assert (await pay(client, LUCY_ORDER, -10)).status_code == 201
    too_much = await pay(client, LUCY_ORDER, -0.36)
    assert (too_much.status_code, too_much.json()) == (
        400,
        {"error": "amount -0.36 refunds more than the 0.35 paid"},
    )
    assert (await pay(client, LUCY_ORDER, -0.35)).status_code == 201
    nothing_left = await pay(client, LUCY_ORDER, -0.01)
    assert nothing_left.status_code == 400
    assert nothing_left.json()["error"].startswith("amount ")
    order = await get_order(client, LUCY_ORDER)
    assert [p["amount"] for p in order["payments"]] == [Decimal("10.35"), -10, Decimal("-0.35")]
    assert order["paid"] == 0


async def test_a_refund_carries_no_tip(client: httpx.AsyncClient) -> None:
    response = await pay(client, LUCY_ORDER, -1, tip=1)
    assert (response.status_code, response.json()) == (400, {"error": "tip must be 0 on a refund"})
    assert len((await get_order(client, LUCY_ORDER))["payments"]) == 1


async def test_a_rejected_order_takes_no_refund(client: httpx.AsyncClient) -> None:
    assert (await pay(client, TONY_ORDER, 5)).status_code == 201
    assert (await act(client, TONY_ORDER, "reject")).status_code == 200
    response = await pay(client, TONY_ORDER, -5)
    assert (response.status_code, response.json()) == (400, {"error": "Order is rejected"})
    assert (await get_order(client, TONY_ORDER))["paid"] == 5


async def test_the_tills_refund_sends_orders_updated(
    client: httpx.AsyncClient, deliveries: Deliveries, clock: FakeClock
) -> None:
    await subscribe_all(client)
    clock.advance(300)
    response = await act(client, LUCY_ORDER, "refund", method_id=CASH, amount=-2, deliveries=2)
    assert response.status_code == 200, response.text
    result = data(response)
    order = await get_order(client, LUCY_ORDER)
    assert result["order"] == order
    assert ([p["amount"] for p in order["payments"]], order["paid"]) == (
        [Decimal("10.35"), -2],
        Decimal("8.35"),
    )
    assert [(d["topic"], d["address"], d["status"]) for d in result["deliveries"]] == [
        ("orders/updated", UPDATED, 200)
    ] * 2
    assert [call[0] for call in deliveries.calls] == [UPDATED, UPDATED]
    assert deliveries.calls[0][2] == (await client.get(f"{BASE}/orders/{LUCY_ORDER}")).content


@pytest.mark.parametrize(
    ("order_id", "body", "status", "message"),
    [
        (LUCY_ORDER, {"method_id": CASH, "amount": 2}, 400, "amount must be a negative number"),
        (LUCY_ORDER, {"method_id": CASH, "amount": "-2"}, 400, "amount must be a negative"),
        (LUCY_ORDER, {"method_id": CASH}, 400, "amount must be a negative number"),
        (LUCY_ORDER, {"method_id": CASH, "amount": -11}, 400, "amount -11.00 refunds more"),
        (LUCY_ORDER, {"method_id": 99, "amount": -1}, 400, "method_id"),
        (LUCY_ORDER, {"method_id": CASH, "amount": -1, "number": 2}, 400, "number"),
        (LUCY_ORDER, {"method_id": CASH, "amount": -1, "deliveries": -1}, 400, "deliveries"),
        (1, {"method_id": CASH, "amount": -1}, 404, "Order not found"),
    ],
)
async def test_the_tills_refund_checks_its_request(
    client: httpx.AsyncClient,
    deliveries: Deliveries,
    order_id: int,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    await subscribe_all(client)
    before = await get_order(client, LUCY_ORDER)
    response = await client.post(f"/_sandbox/orders/{order_id}/refund", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert await get_order(client, LUCY_ORDER) == before
    assert deliveries.calls == []


# -- completing ----------------------------------------------------------------------------------


async def test_completion_sends_orders_completed_then_orders_updated(
    client: httpx.AsyncClient, deliveries: Deliveries
) -> None:
    await subscribe_all(client)
    result = (await complete(client, JOHN_ORDER, deliveries=2)).json()
    topics = [(d["topic"], d["address"]) for d in result["deliveries"]]
    assert topics == [("orders/completed", HOOK), ("orders/updated", UPDATED)] * 2
    assert [call[0] for call in deliveries.calls] == [HOOK, UPDATED] * 2
    assert (await complete(client, JOHN_ORDER, deliveries=0)).json()["deliveries"] == []


# -- rejecting -----------------------------------------------------------------------------------


async def test_a_reject_closes_an_open_order_and_leaves_its_payments(
    client: httpx.AsyncClient, deliveries: Deliveries, clock: FakeClock
) -> None:
    await subscribe_all(client)
    assert (await pay(client, TONY_ORDER, 5, method_id=CARD)).status_code == 201
    clock.advance(300)
    response = await act(client, TONY_ORDER, "reject")
    assert response.status_code == 200, response.text
    result = data(response)
    order = await get_order(client, TONY_ORDER)
    assert result["order"] == order
    assert (order["status"], order["paid"], order["updated_at"]) == ("REJECTED", 5, LATER)
    assert [(p["method"]["id"], p["amount"]) for p in order["payments"]] == [(CARD, 5)]
    assert [(d["topic"], d["address"]) for d in result["deliveries"]] == [
        ("orders/updated", UPDATED)
    ]
    [(address, headers, body)] = deliveries.calls
    assert (address, headers) == (UPDATED, {"Content-Type": "application/json"})
    assert body == (await client.get(f"{BASE}/orders/{TONY_ORDER}")).content


async def test_rejecting_a_rejected_order_only_redelivers(
    client: httpx.AsyncClient, deliveries: Deliveries, clock: FakeClock
) -> None:
    await subscribe_all(client)
    await act(client, TONY_ORDER, "reject", deliveries=0)
    before = await get_order(client, TONY_ORDER)
    clock.advance(60)
    result = data(await act(client, TONY_ORDER, "reject", deliveries=3))
    assert result["order"] == before
    assert [call[0] for call in deliveries.calls] == [UPDATED] * 3


async def test_a_completed_order_can_be_rejected_and_then_takes_no_refund(
    client: httpx.AsyncClient, deliveries: Deliveries
) -> None:
    """The issue's till: an order that completed (and earned) may be rejected as a whole."""
    await subscribe_all(client)
    before = await get_order(client, LUCY_ORDER)
    response = await act(client, LUCY_ORDER, "reject")
    assert response.status_code == 200, response.text
    after = await get_order(client, LUCY_ORDER)
    assert after["status"] == "REJECTED"
    assert (after["payments"], after["paid"]) == (before["payments"], before["paid"])
    assert [call[0] for call in deliveries.calls] == [UPDATED]
    refund = await pay(client, LUCY_ORDER, -1)
    assert (refund.status_code, refund.json()) == (400, {"error": "Order is rejected"})


# -- deleting ------------------------------------------------------------------------------------


async def test_a_deleted_order_is_gone_except_from_the_deleted_list(
    client: httpx.AsyncClient, deliveries: Deliveries, clock: FakeClock
) -> None:
    await subscribe_all(client)
    assert (await pay(client, JOHN_ORDER, 5)).status_code == 201
    clock.advance(300)
    response = await act(client, JOHN_ORDER, "delete")
    assert response.status_code == 200, response.text
    result = data(response)
    order = result["order"]
    assert (order["status"], order["deleted_at"], order["updated_at"]) == ("ON_HOLD", LATER, LATER)
    assert (order["paid"], [p["amount"] for p in order["payments"]]) == (5, [5])
    for method, path, body in [
        ("GET", f"{BASE}/orders/{JOHN_ORDER}", None),
        ("PUT", f"{BASE}/orders/{JOHN_ORDER}", {"notes": "x"}),
        ("POST", f"{BASE}/orders/{JOHN_ORDER}/payments", {"method_id": CASH, "amount": -5}),
        ("PUT", f"{BASE}/orders/{JOHN_ORDER}/payments/1", {"ref": "x"}),
    ]:
        gone = await client.request(method, path, json=body)
        assert (gone.status_code, gone.json()) == (404, {"error": "Order not found"}), path
    assert JOHN_ORDER not in await listed(client)
    deleted = await client.get(f"{BASE}/orders/deleted")
    assert data(deleted) == [order]
    assert [(d["topic"], d["address"]) for d in result["deliveries"]] == [
        ("orders/deleted", DELETED)
    ]
    assert json.loads(deliveries.calls[0][2], parse_float=Decimal) == order


async def test_a_rejected_or_a_completed_order_can_be_deleted(
    client: httpx.AsyncClient,
) -> None:
    await act(client, TONY_ORDER, "reject")
    assert (await act(client, TONY_ORDER, "delete")).status_code == 200
    assert (await act(client, LUCY_ORDER, "delete")).status_code == 200
    assert sorted(await listed(client, "/deleted")) == sorted([TONY_ORDER, LUCY_ORDER])


@pytest.mark.parametrize("name", ["delete", "complete", "reject", "refund"])
async def test_a_deleted_order_takes_no_further_act(client: httpx.AsyncClient, name: str) -> None:
    await act(client, JOHN_ORDER, "delete")
    body = {"method_id": CASH, "amount": -1} if name == "refund" else {}
    response = await act(client, JOHN_ORDER, name, **body)
    assert (response.status_code, response.json()) == (404, {"error": "Order not found"})


# -- the options every act takes -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["complete", "reject", "delete", "refund"])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"deliveries": -1}, "deliveries must be 0 or more"),
        ({"deliveries": "2"}, "deliveries must be an integer"),
        ({"deliveries": True}, "deliveries must be an integer"),
        ({"concurrent": "yes"}, "concurrent must be true or false"),
        ({"times": 2}, "times"),
    ],
)
async def test_every_act_checks_its_delivery_options_and_changes_nothing(
    client: httpx.AsyncClient, name: str, options: dict[str, Any], message: str
) -> None:
    body = {"method_id": CASH, "amount": -1, **options} if name == "refund" else options
    before = await get_order(client, LUCY_ORDER if name == "refund" else JOHN_ORDER)
    order_id = before["id"]
    response = await client.post(f"/_sandbox/orders/{order_id}/{name}", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert await get_order(client, order_id) == before


@pytest.mark.parametrize(
    ("name", "order_id", "body"),
    [
        ("reject", TONY_ORDER, {}),
        ("delete", TONY_ORDER, {}),
        ("refund", LUCY_ORDER, {"method_id": CASH, "amount": -1}),
    ],
)
async def test_every_act_with_no_deliveries_loses_its_webhook(
    client: httpx.AsyncClient,
    deliveries: Deliveries,
    name: str,
    order_id: int,
    body: dict[str, Any],
) -> None:
    await subscribe_all(client)
    response = await act(client, order_id, name, **body, deliveries=0)
    assert response.status_code == 200, response.text
    assert response.json()["deliveries"] == []
    assert deliveries.calls == []


# -- lists for reconciliation --------------------------------------------------------------------


async def new_order(client: httpx.AsyncClient) -> int:
    response = await client.post(f"{BASE}/orders", json={"status": "PENDING", "lines": [line()]})
    assert response.status_code == 201, response.text
    order_id: int = response.json()["id"]
    return order_id


async def test_orders_filter_by_when_they_were_created(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = await new_order(client)  # 10:00
    clock.advance(600)
    second = await new_order(client)  # 10:10
    assert await listed(client, created_gte="2026-11-21T10:00:00Z") == [second, first]
    assert await listed(client, created_gt="2026-11-21T10:00:00Z") == [second]
    assert await listed(client, created_lte="2026-11-21T09:15:00+00:00") == [
        JOHN_ORDER,
        LUCY_ORDER,
    ]
    assert await listed(client, created_lt="2026-11-21T09:15:00Z") == [LUCY_ORDER]
    between = {"created_gt": "2026-11-21T09:00:00Z", "created_lt": "2026-11-21T10:05:00Z"}
    assert await listed(client, **between) == [first, TONY_ORDER, JOHN_ORDER]
    assert await listed(client, created_gte="2026-11-21", status="PENDING") == [second, first]


async def test_a_poller_finds_an_old_order_refunded_today_by_updated_gte(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(3600)
    assert (await pay(client, LUCY_ORDER, -1)).status_code == 201
    since = {"updated_gte": "2026-11-21T11:00:00Z"}
    assert await listed(client, **since) == [LUCY_ORDER]
    assert await listed(client, "/complete", **since) == [LUCY_ORDER]
    assert await listed(client, updated_lt="2026-11-21T11:00:00Z") == [TONY_ORDER, JOHN_ORDER]


async def test_updated_at_moves_with_every_act(client: httpx.AsyncClient, clock: FakeClock) -> None:
    stamps = []
    for name, order_id, body in [
        ("complete", JOHN_ORDER, {}),
        ("refund", LUCY_ORDER, {"method_id": CASH, "amount": -1}),
        ("reject", TONY_ORDER, {}),
        ("delete", TONY_ORDER, {}),
    ]:
        clock.advance(60)
        response = await act(client, order_id, name, **body)
        assert response.status_code == 200, response.text
        stamps.append(response.json()["order"]["updated_at"])
    assert stamps == [f"2026-11-21T10:0{minute}:00+00:00" for minute in (1, 2, 3, 4)]


async def test_orders_complete_lists_completed_orders_only(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(60)
    await complete(client, JOHN_ORDER, deliveries=0)
    assert await listed(client, "/complete") == [JOHN_ORDER, LUCY_ORDER]
    assert await listed(client, "/complete", created_gte="2026-11-21T00:00:00Z") == [JOHN_ORDER]
    suffixed = await client.get(f"{BASE}/orders/complete.json", headers={"Accept": "text/html"})
    assert [o["id"] for o in suffixed.json()] == [JOHN_ORDER, LUCY_ORDER]


async def test_orders_deleted_takes_the_same_filters(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await act(client, JOHN_ORDER, "delete")
    clock.advance(600)
    await act(client, TONY_ORDER, "delete")
    assert await listed(client, "/deleted") == [TONY_ORDER, JOHN_ORDER]
    assert await listed(client, "/deleted", updated_gte="2026-11-21T10:05:00Z") == [TONY_ORDER]
    assert await listed(client, "/deleted", status="ON_HOLD") == [JOHN_ORDER]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"created_gte": "yesterday"}, "created_gte must be an ISO 8601 date-time"),
        ({"updated_lt": ""}, "updated_lt must be an ISO 8601 date-time"),
        ({"created_after": "2026-11-21"}, "created_after is not an order filter"),
        ({"deleted_gte": "2026-11-21"}, "deleted_gte is not an order filter"),
        ({"value_gte": "10"}, "value_gte is not simulated by this sandbox"),
        ({"status": "DELETED"}, "status must be one of"),
        ({"page": "2"}, "page is not an order filter"),
    ],
)
@pytest.mark.parametrize("path", ["", "/complete", "/deleted"])
async def test_a_list_refuses_a_filter_it_cannot_apply(
    client: httpx.AsyncClient, path: str, params: dict[str, str], message: str
) -> None:
    response = await client.get(f"{BASE}/orders{path}", params=params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


# -- over real HTTP, to a real receiver ----------------------------------------------------------


async def test_a_refund_reaches_a_real_receiver() -> None:
    received: list[tuple[str, str, bytes]] = []

    async def hook(request: Request) -> Response:
        headers = request.headers
        received.append((headers["content-type"], headers["authorization"], await request.body()))
        return Response(status_code=204)

    receiver = ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    sandbox = ServerThread(create_app(token=TOKEN)).start()
    try:
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            address = f"{receiver.url}/hook"
            headers = {"Authorization": "per-merchant-secret"}
            await add_webhook(client, topic="orders/updated", address=address, headers=headers)
            body = {"method_id": CARD, "amount": -3}
            response = await client.post(f"/_sandbox/orders/{LUCY_ORDER}/refund", json=body)
            read = await client.get(f"{BASE}/orders/{LUCY_ORDER}")
    finally:
        sandbox.stop()
        receiver.stop()
    assert response.status_code == 200, response.text
    [delivery] = response.json()["deliveries"]
    assert (delivery["topic"], delivery["status"], delivery["error"]) == (
        "orders/updated",
        204,
        None,
    )
    [(content_type, authorization, body_bytes)] = received
    assert (content_type, authorization) == ("application/json", "per-merchant-secret")
    assert body_bytes == read.content
    assert json.loads(body_bytes, parse_float=Decimal)["paid"] == Decimal("7.35")

"""The till's afterlife of an X-Series sale in the sandbox: voids (``/_sandbox/register_sales/
{id}/void``), returns (a new sale with ``return_for`` and negative quantities), what each does
to loyalty (``XSeriesState._apply_loyalty``, ``_check_return``), the webhooks they send, and
the lists a poller reconciles with (0.9 ``since``, 2.0 ``after``). docs/pos-contracts.md,
"Refunds, voids, rejects, deletes (sandbox behaviour)"."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox.xseries import create_app
from tests.sandbox.conftest import TOKEN, FakeClock
from tests.sandbox.test_xseries_sandbox import (
    CARD,
    CASH,
    JOHN,
    JOHNNY,
    JOHNNY_SALE,
    LOYALTY,
    MUG,
    PEPPER,
    TONY,
    TONY_SALE,
    TSHIRT,
    WATCH,
    balance,
    data,
    get_sale,
    line,
    payment,
    post_sale,
    resend,
    sale,
    send,
)
from tests.sandbox.test_xseries_webhooks import Receiver, delivered, subscribe
from tests.support import ServerThread, until

LATER = "2026-11-21 10:05:00"


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def app(clock: FakeClock, receiver: Receiver) -> Starlette:
    """Overrides conftest's app: the same sandbox, its webhooks delivered to ``receiver``."""
    return create_app(token=TOKEN, clock=clock, deliver=receiver)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


async def void(client: httpx.AsyncClient, sale_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/_sandbox/register_sales/{sale_id}/void", json=body or None)


def returning(original: dict[str, Any], *lines: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A return of ``original`` as the till posts it: its customer, the lines given (negative
    quantities), a cash refund of what they come to."""
    refund = sum(
        (exact(item["quantity"]) * (exact(item["price"]) + exact(item["tax"])) for item in lines),
        Decimal(0),
    )
    body = sale(
        customer_id=original["customer_id"],
        return_for=original["id"],
        register_sale_products=list(lines),
        register_sale_payments=[payment(CASH, refund)],
    )
    return {**body, **fields}


def exact(value: Any) -> Decimal:
    """A test's number as the Decimal its JSON text says."""
    return Decimal(str(value))


def mug_back(quantity: Any = -1, **fields: Any) -> dict[str, Any]:
    """TONY_SALE's line, returned: the mug earned 1.2 a unit."""
    return line(MUG, quantity=quantity, loyalty_value="1.2", **fields)


async def sales_count(client: httpx.AsyncClient) -> int:
    count: int = (await client.get("/api/register_sales")).json()["pagination"]["results"]
    return count


# -- voids ---------------------------------------------------------------------------------------


async def test_the_till_voids_a_closed_sale_taking_back_its_earnings_and_loyalty_payments(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    closed = await post_sale(
        client,
        sale(
            customer_id=JOHN,
            register_sale_products=[line(WATCH, quantity=2, loyalty_value=7)],
            register_sale_payments=[payment(LOYALTY, 100), payment(CARD, 2200)],
        ),
    )
    assert await balance(client, JOHN) == "34.00000"
    clock.advance(300)
    response = await void(client, closed["id"])
    assert response.status_code == 200, response.text
    voided = data(response)["register_sale"]
    assert voided == await get_sale(client, closed["id"])
    assert (voided["status"], voided["state"], voided["updated_at"]) == ("VOIDED", "voided", LATER)
    assert voided["register_sale_payments"] == closed["register_sale_payments"]
    assert voided["register_sale_products"] == closed["register_sale_products"]
    assert await balance(client, JOHN) == "120.00000"


async def test_the_till_voids_an_open_sale_returning_its_loyalty_payments(
    client: httpx.AsyncClient,
) -> None:
    saved = await post_sale(
        client, sale(customer_id=TONY, status="SAVED", register_sale_payments=[payment(LOYALTY, 5)])
    )
    assert await balance(client, TONY) == "45.00000"
    assert (await void(client, saved["id"])).status_code == 200
    assert await balance(client, TONY) == "50.00000"


async def test_a_void_drops_the_on_account_attribute_with_the_status(
    client: httpx.AsyncClient,
) -> None:
    voided = data(await void(client, JOHNNY_SALE))["register_sale"]
    assert (voided["status"], voided["state"], voided["register_sale_attributes"]) == (
        "VOIDED",
        "voided",
        [],
    )
    assert await balance(client, JOHNNY) == "12.00000"


async def test_a_voided_sale_cannot_be_voided_again(client: httpx.AsyncClient) -> None:
    assert (await void(client, TONY_SALE)).status_code == 200
    assert await balance(client, TONY) == "48.80000"
    again = await void(client, TONY_SALE)
    assert (again.status_code, again.json()["error"]) == (400, "sale is voided")
    assert await balance(client, TONY) == "48.80000"


@pytest.mark.parametrize(
    ("sale_id", "body", "status", "error"),
    [
        ("unknown", {}, 404, "Not Found"),
        (TONY_SALE, {"status": "CLOSED"}, 400, "status is not an option of a void (it takes none)"),
    ],
)
async def test_the_void_control_checks_its_request(
    client: httpx.AsyncClient, app: Starlette, sale_id: str, body: Any, status: int, error: str
) -> None:
    await subscribe(client, "sale.update")
    before = await get_sale(client, TONY_SALE)
    response = await client.post(f"/_sandbox/register_sales/{sale_id}/void", json=body)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert await get_sale(client, TONY_SALE) == before
    assert await delivered(app) == []


async def test_a_void_delivers_sale_update_and_customer_update_when_a_balance_moves(
    client: httpx.AsyncClient, app: Starlette, receiver: Receiver
) -> None:
    await subscribe(client, "sale.update")
    await subscribe(client, "customer.update")
    voided = data(await void(client, TONY_SALE))["register_sale"]
    entries = await delivered(app)
    assert sorted((e["type"], e["object_id"]) for e in entries) == [
        ("customer.update", TONY),
        ("sale.update", TONY_SALE),
    ]
    payloads = {form["type"]: json.loads(form["payload"]) for form in receiver.forms()}
    assert payloads["sale.update"]["status"] == "VOIDED"
    assert payloads["sale.update"] == json.loads(json.dumps(voided, default=float))
    assert payloads["customer.update"]["loyalty_balance"] == "48.80000"
    receiver.calls.clear()
    await void(client, JOHNNY_SALE)  # earned nothing yet, paid no loyalty: no balance moves
    assert [e["type"] for e in (await delivered(app))[2:]] == ["sale.update"]


async def test_a_voided_sale_is_listed_as_changed_since(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(300)
    await void(client, JOHNNY_SALE)
    recent = await client.get("/api/register_sales", params={"since": "2026-11-21T10:05:00Z"})
    assert [s["id"] for s in recent.json()["register_sales"]] == [JOHNNY_SALE]


# -- returns -------------------------------------------------------------------------------------


async def test_a_return_is_a_new_sale_for_the_old_one_with_negative_quantities(
    client: httpx.AsyncClient,
) -> None:
    original = await get_sale(client, TONY_SALE)
    assert original["return_for"] == ""
    returned = await post_sale(client, returning(original, mug_back()))
    assert returned["id"] != TONY_SALE
    assert (returned["return_for"], returned["status"]) == (TONY_SALE, "CLOSED")
    assert [item["quantity"] for item in returned["register_sale_products"]] == [-1]
    assert [p["amount"] for p in returned["register_sale_payments"]] == [Decimal("-13.8")]
    assert returned["totals"]["total_price"] == -12
    assert await get_sale(client, returned["id"]) == returned
    assert await get_sale(client, TONY_SALE) == original
    search = await client.get("/api/2.0/search", params={"type": "sales", "customer_id": TONY})
    by_id = {found["id"]: found for found in search.json()["data"]}
    assert (by_id[returned["id"]]["return_for"], by_id[TONY_SALE]["return_for"]) == (
        TONY_SALE,
        None,
    )


async def test_closing_a_return_lowers_the_balance_by_its_lines_loyalty(
    client: httpx.AsyncClient,
) -> None:
    original = await get_sale(client, TONY_SALE)
    parked = await post_sale(client, returning(original, mug_back(), status="SAVED"))
    assert await balance(client, TONY) == "50.00000"
    closed = await post_sale(client, resend(parked, status="CLOSED"))
    assert (closed["status"], closed["return_for"]) == ("CLOSED", TONY_SALE)
    assert await balance(client, TONY) == "48.80000"


async def test_a_return_may_take_the_balance_below_zero(client: httpx.AsyncClient) -> None:
    original = await post_sale(
        client, sale(register_sale_products=[line(TSHIRT, quantity=2, loyalty_value=2)])
    )
    assert await balance(client, JOHNNY) == "16.00000"
    await post_sale(client, sale(register_sale_payments=[payment(LOYALTY, 16), payment(CASH, 7)]))
    assert await balance(client, JOHNNY) == "0.00000"
    returned = await post_sale(
        client, returning(original, line(TSHIRT, quantity=-2, loyalty_value=2))
    )
    assert returned["return_for"] == original["id"]
    assert await balance(client, JOHNNY) == "-4.00000"


async def test_loyalty_paid_on_the_returned_sale_stays_spent(client: httpx.AsyncClient) -> None:
    original = await post_sale(
        client,
        sale(
            customer_id=TONY,
            register_sale_products=[line(WATCH, loyalty_value=10)],
            register_sale_payments=[payment(LOYALTY, 20), payment(CARD, 1130)],
        ),
    )
    assert await balance(client, TONY) == "40.00000"
    returned = await post_sale(
        client, returning(original, line(WATCH, quantity=-1, loyalty_value=10))
    )
    assert returned["return_for"] == original["id"]
    assert await balance(client, TONY) == "30.00000"


async def test_a_return_cannot_refund_or_take_loyalty(client: httpx.AsyncClient) -> None:
    original = await get_sale(client, TONY_SALE)
    for payments, field in [
        ([payment(LOYALTY, "-13.8")], "register_sale_payments[0].amount"),
        ([payment(CASH, "-14.8"), payment(LOYALTY, 1)], "register_sale_payments[1]"),
    ]:
        body = returning(original, mug_back(), register_sale_payments=payments)
        response = await send(client, body)
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith(field)
    assert await balance(client, TONY) == "50.00000"
    assert await sales_count(client) == 2


async def test_a_sale_is_returned_no_more_than_it_sold(client: httpx.AsyncClient) -> None:
    original = await post_sale(
        client,
        sale(register_sale_products=[line(TSHIRT, quantity=2, loyalty_value=2), line(MUG)]),
    )
    first = await post_sale(client, returning(original, line(TSHIRT, quantity=-1)))
    too_many = await send(client, returning(original, line(TSHIRT, quantity="-1.5")))
    assert too_many.status_code == 400
    assert too_many.json()["error"] == (
        "register_sale_products[0].quantity returns more than the sale has left to return"
    )
    await post_sale(client, returning(original, line(TSHIRT, quantity=-1), line(MUG, quantity=-1)))
    assert (await send(client, returning(original, line(MUG, quantity=-1)))).status_code == 400
    assert (await void(client, first["id"])).status_code == 200
    await post_sale(client, returning(original, line(TSHIRT, quantity=-1)))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"return_for": "unknown"}, "return_for is not a known sale"),
        ({"return_for": JOHNNY_SALE}, "return_for names a ONACCOUNT sale: only a closed one"),
        ({"customer_id": JOHN}, "customer_id must be the customer of the sale returned"),
        ({"customer_id": ""}, "customer_id must be the customer of the sale returned"),
        (
            {"register_sale_products": [mug_back(quantity=1)]},
            "register_sale_products[0].quantity must be negative on a return",
        ),
        (
            {"register_sale_products": [mug_back(), line(TSHIRT, quantity=-1)]},
            "register_sale_products[1].product_id is not a product of the sale returned",
        ),
    ],
)
async def test_a_return_must_be_of_a_closed_sale_by_its_customer(
    client: httpx.AsyncClient, change: dict[str, Any], error: str
) -> None:
    original = await get_sale(client, TONY_SALE)
    response = await send(client, {**returning(original, mug_back()), **change})
    assert (response.status_code, response.json()["error"]) == (400, error)
    assert await sales_count(client) == 2
    assert await balance(client, TONY) == "50.00000"


async def test_a_voided_sale_or_a_return_cannot_be_returned(client: httpx.AsyncClient) -> None:
    original = await get_sale(client, TONY_SALE)
    returned = await post_sale(client, returning(original, mug_back(quantity="-0.5")))
    again = await send(client, returning(returned, line(MUG, quantity="0.5")))
    assert again.json()["error"] == "return_for names a return, which cannot be returned"
    await void(client, returned["id"])
    await void(client, TONY_SALE)
    voided = await send(client, returning(original, mug_back()))
    assert voided.json()["error"] == "return_for names a VOIDED sale: only a closed one"


async def test_return_for_is_set_once(client: httpx.AsyncClient) -> None:
    original = await get_sale(client, TONY_SALE)
    parked = await post_sale(client, returning(original, mug_back(), status="SAVED"))
    changed = await send(client, resend(parked, return_for=JOHNNY_SALE))
    assert changed.json()["error"] == "return_for cannot change"
    left_out = {k: v for k, v in resend(parked, status="CLOSED").items() if k != "return_for"}
    assert (await post_sale(client, left_out))["return_for"] == TONY_SALE
    plain = await post_sale(client, sale(status="SAVED"))
    assert (await send(client, resend(plain, return_for=TONY_SALE))).status_code == 400
    assert (await post_sale(client, resend(plain)))["return_for"] == ""


async def test_voiding_a_return_gives_back_what_it_took(client: httpx.AsyncClient) -> None:
    original = await get_sale(client, TONY_SALE)
    returned = await post_sale(client, returning(original, mug_back()))
    assert await balance(client, TONY) == "48.80000"
    assert (await void(client, returned["id"])).status_code == 200
    assert await balance(client, TONY) == "50.00000"


async def test_a_sale_with_a_standing_return_cannot_be_voided(client: httpx.AsyncClient) -> None:
    original = await get_sale(client, TONY_SALE)
    returned = await post_sale(client, returning(original, mug_back(quantity="-0.5")))
    by_control = await void(client, TONY_SALE)
    by_api = await send(client, resend(original, status="VOIDED"))
    for response in (by_control, by_api):
        assert (response.status_code, response.json()["error"]) == (400, "sale has returns")
        assert returned["id"] in response.json()["details"]
    assert await balance(client, TONY) == "49.40000"
    await void(client, returned["id"])
    assert (await void(client, TONY_SALE)).status_code == 200
    assert await balance(client, TONY) == "48.80000"


async def test_a_return_delivers_sale_update_and_customer_update(
    client: httpx.AsyncClient, app: Starlette, receiver: Receiver
) -> None:
    await subscribe(client, "sale.update")
    await subscribe(client, "customer.update")
    returned = await post_sale(client, returning(await get_sale(client, TONY_SALE), mug_back()))
    entries = await delivered(app)
    assert sorted((e["type"], e["object_id"]) for e in entries) == [
        ("customer.update", TONY),
        ("sale.update", returned["id"]),
    ]
    payloads = {form["type"]: json.loads(form["payload"]) for form in receiver.forms()}
    assert payloads["sale.update"]["return_for"] == TONY_SALE


async def test_a_return_is_listed_since_it_was_made(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(300)
    returned = await post_sale(client, returning(await get_sale(client, TONY_SALE), mug_back()))
    recent = await client.get("/api/register_sales", params={"since": "2026-11-21T10:05:00Z"})
    assert [s["id"] for s in recent.json()["register_sales"]] == [returned["id"]]


async def test_a_customer_without_loyalty_loses_nothing_by_a_return(
    client: httpx.AsyncClient,
) -> None:
    original = await post_sale(
        client, sale(customer_id=PEPPER, register_sale_products=[line(loyalty_value=2)])
    )
    returned = await post_sale(client, returning(original, line(quantity=-1, loyalty_value=2)))
    assert returned["return_for"] == original["id"]
    assert await balance(client, PEPPER) == "0.00000"


# -- the 2.0 list by version ---------------------------------------------------------------------


async def sales_after(client: httpx.AsyncClient, **params: Any) -> Any:
    response = await client.get("/api/2.0/sales", params=params)
    assert response.status_code == 200, response.text
    return data(response)


async def test_the_2_0_list_pages_by_version_and_shows_what_changed_after(
    client: httpx.AsyncClient,
) -> None:
    everything = await sales_after(client)
    assert [s["id"] for s in everything["data"]] == [JOHNNY_SALE, TONY_SALE]
    versions = [s["version"] for s in everything["data"]]
    assert everything["version"] == {"min": versions[0], "max": versions[1]}
    assert versions[0] < versions[1]
    top = everything["version"]["max"]
    assert await sales_after(client, after=top) == {"data": [], "version": None}
    await void(client, JOHNNY_SALE)
    returned = await post_sale(client, returning(await get_sale(client, TONY_SALE), mug_back()))
    changed = await sales_after(client, after=top)
    assert [(s["id"], s["status"]) for s in changed["data"]] == [
        (JOHNNY_SALE, "VOIDED"),
        (returned["id"], "CLOSED"),
    ]
    assert changed["data"][1]["return_for"] == TONY_SALE
    first = await sales_after(client, after=top, page_size=1)
    assert [s["id"] for s in first["data"]] == [JOHNNY_SALE]
    rest = await sales_after(client, after=first["version"]["max"])
    assert [s["id"] for s in rest["data"]] == [returned["id"]]
    below = await sales_after(client, before=changed["version"]["max"])
    assert [s["id"] for s in below["data"]] == [TONY_SALE, JOHNNY_SALE]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"after": "-1"}, "after must be an integer >= 0"),
        ({"after": "v3"}, "after must be an integer >= 0"),
        ({"page_size": "0"}, "page_size must be an integer >= 1"),
        ({"since": "2026-11-21"}, "since is not a parameter of this list"),
    ],
)
async def test_the_2_0_list_refuses_what_it_cannot_read(
    client: httpx.AsyncClient, params: dict[str, str], error: str
) -> None:
    response = await client.get("/api/2.0/sales", params=params)
    assert (response.status_code, response.json()["error"]) == (400, error)


# -- over real HTTP, to a real receiver ----------------------------------------------------------


async def test_a_void_reaches_a_real_receiver() -> None:
    received: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        form = await request.form()
        received.append({k: str(v) for k, v in form.items()})
        return Response(status_code=204)

    receiver = ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    sandbox = ServerThread(create_app(token=TOKEN)).start()
    try:
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            await subscribe(client, "sale.update", f"{receiver.url}/hook")
            voided = (await void(client, TONY_SALE)).json()["register_sale"]

            async def logged() -> bool:
                log = (await client.get("/_sandbox/webhooks/deliveries")).json()
                return bool(log["deliveries"])

            await until(logged, what="the delivery is logged")
            log = (await client.get("/_sandbox/webhooks/deliveries")).json()
    finally:
        sandbox.stop()
        receiver.stop()
    [form] = received
    assert form["type"] == "sale.update"
    assert json.loads(form["payload"]) == voided
    assert [(d["status"], d["error"]) for d in log["deliveries"]] == [(204, None)]

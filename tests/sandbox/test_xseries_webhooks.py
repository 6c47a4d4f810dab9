"""X-Series webhooks in the sandbox: the 0.9 ``/api/webhooks`` endpoints, and deliveries of
``sale.update``, ``customer.update`` and ``product.update``, form-encoded, in the background,
logged for tests, never retried."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox.xseries import create_app
from tests.sandbox.conftest import TOKEN, FakeClock
from tests.sandbox.test_xseries_sandbox import (
    JOHNNY,
    LOYALTY,
    TONY,
    TSHIRT,
    line,
    payment,
    resend,
    sale,
    send,
)
from tests.support import ServerThread, until

HOOK = "https://gw.example/webhooks/xseries"
RETAILER = "b1c50056-f019-11e3-a0f5-b8ca3a64f8f4"
FORM = "application/x-www-form-urlencoded"
SESSION = "6f1c1f0e-5b7a-4d0e-9a43-2d3c8f6a9b10"


class Receiver:
    """Stands in for the webhook sender: records each delivery, answers a chosen status,
    and can hold a delivery until the test releases it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self, address: str, headers: Mapping[str, str], body: bytes) -> int:
        if self.gate is not None:
            await self.gate.wait()
        self.calls.append((address, dict(headers), body))
        if self.error is not None:
            raise self.error
        return self.status

    def forms(self) -> list[dict[str, str]]:
        return [form_of(body) for _, _, body in self.calls]


def form_of(body: bytes) -> dict[str, str]:
    fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in fields.values())
    return {key: values[0] for key, values in fields.items()}


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def hooks_app(clock: FakeClock, receiver: Receiver) -> Starlette:
    return create_app(token=TOKEN, clock=clock, deliver=receiver)


@pytest.fixture
async def client(hooks_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=hooks_app),
        base_url="http://sandbox",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


async def delivered(app: Starlette) -> list[dict[str, Any]]:
    """Every delivery started so far, once ended, as the log shows them."""
    await app.state.sandbox.outbox.drain()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as admin:
        log = (await admin.get("/_sandbox/webhooks/deliveries")).json()
    assert log["pending"] == 0
    deliveries: list[dict[str, Any]] = log["deliveries"]
    return deliveries


async def subscribe(client: httpx.AsyncClient, kind: str, url: str = HOOK, **more: Any) -> Any:
    data = {"url": url, "active": True, "type": kind, **more}
    response = await client.post("/api/webhooks", data={"data": json.dumps(data)})
    assert response.status_code == 200, response.text
    return response.json()


def decimals(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


# -- the endpoints -------------------------------------------------------------------------------


async def test_create_list_get_update_and_delete_a_webhook(client: httpx.AsyncClient) -> None:
    created = await subscribe(client, "sale.update")
    assert set(created) == {"id", "retailer_id", "url", "active", "type"}
    assert created["retailer_id"] == RETAILER
    assert (created["url"], created["active"], created["type"]) == (HOOK, True, "sale.update")
    assert (await client.get("/api/webhooks")).json() == [created]
    hook = f"/api/webhooks/{created['id']}"
    assert (await client.get(hook)).json() == created
    updated = await client.put(hook, data={"data": json.dumps({"active": False})})
    assert updated.json() == {**created, "active": False}
    assert (await client.delete(hook)).json() == {"status": "success"}
    assert (await client.get("/api/webhooks")).json() == []
    gone = await client.get(hook)
    assert (gone.status_code, gone.json()["error"]) == (404, "Not Found")
    assert (await client.delete(hook)).status_code == 404


async def test_active_defaults_to_true(client: httpx.AsyncClient) -> None:
    data = json.dumps({"url": HOOK, "type": "customer.update"})
    created = (await client.post("/api/webhooks", data={"data": data})).json()
    assert created["active"] is True


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"data": "{not json"}, "data must be a JSON object"),
        ({"data": "[1]"}, "data must be a JSON object"),
        ({}, "data is required, once"),
        (
            [("data", '{"url": "https://a.example", "type": "sale.update"}')] * 2,
            "data is required, once",
        ),
        (
            {"data": '{"url": "https://a.example", "type": "sale.update"}', "x": "1"},
            "x is not a field",
        ),
        ({"data": '{"type": "sale.update"}'}, "data.url is required"),
        ({"data": '{"url": "https://a.example"}'}, "data.type is required"),
        ({"data": '{"url": "/hooks", "type": "sale.update"}'}, "data.url must be an absolute"),
        ({"data": '{"url": "ftp://a.example", "type": "sale.update"}'}, "data.url must be"),
        (
            {"data": '{"url": "https://a.example", "type": "sale.created"}'},
            "data.type must be one of",
        ),
        (
            {"data": '{"url": "https://a.example", "type": "sale.update", "active": "1"}'},
            "data.active must be true or false",
        ),
        (
            {"data": '{"url": "https://a.example", "type": "sale.update", "secret": "s"}'},
            "data.secret is not a webhook field",
        ),
    ],
)
async def test_a_bad_webhook_is_400_naming_the_field_and_creates_nothing(
    client: httpx.AsyncClient, form: Any, problem: str
) -> None:
    content = urlencode(form)
    response = await client.post("/api/webhooks", content=content, headers={"Content-Type": FORM})
    assert response.status_code == 400
    assert response.json()["error"].startswith(problem)
    assert (await client.get("/api/webhooks")).json() == []


async def test_a_webhook_is_sent_as_a_form_not_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/webhooks", json={"url": HOOK, "active": True, "type": "sale.update"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == f"Content-Type must be {FORM}"


async def test_the_same_type_and_url_twice_is_409(client: httpx.AsyncClient) -> None:
    first = await subscribe(client, "sale.update")
    again = await client.post(
        "/api/webhooks", data={"data": json.dumps({"url": HOOK, "type": "sale.update"})}
    )
    assert again.status_code == 409
    assert again.json()["error"] == "A webhook of this type already exists for this URL"
    other = await subscribe(client, "customer.update")  # another type, the same URL: fine
    clash = await client.put(
        f"/api/webhooks/{other['id']}", data={"data": json.dumps({"type": "sale.update"})}
    )
    assert clash.status_code == 409
    assert [h["id"] for h in (await client.get("/api/webhooks")).json()] == [
        first["id"],
        other["id"],
    ]


async def test_webhooks_need_the_webhooks_scope(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/scopes", json={"scopes": "sales:read sales:write"})
    for method in ("GET", "POST"):
        refused = await client.request(method, "/api/webhooks")
        assert (refused.status_code, refused.json()) == (403, {"error": "permission denied"})


async def test_each_app_lists_and_deletes_only_its_own_webhooks(
    client: httpx.AsyncClient,
) -> None:
    mine = await subscribe(client, "sale.update")
    other_app = {"client_id": "other-app", "client_secret": "other-secret"}
    assert (await client.post("/_sandbox/oauth/clients", json=other_app)).status_code == 200
    page = await client.get(
        "/connect",
        params={"response_type": "code", "client_id": "other-app", "scope": "webhooks",
                "redirect_uri": "https://other.example/cb", "state": "s"},
    )  # fmt: skip
    assert page.status_code == 200
    form = {"response_type": "code", "client_id": "other-app", "scope": "webhooks",
            "redirect_uri": "https://other.example/cb", "state": "s", "decision": "approve"}  # fmt: skip
    back = await client.post("/connect", data=form)
    code = parse_qs(back.headers["location"].partition("?")[2])["code"][0]
    exchange = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": "https://other.example/cb", **other_app}  # fmt: skip
    token = (await client.post("/api/1.0/token", data=exchange)).json()["access_token"]
    theirs = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/webhooks", headers=theirs)).json() == []
    mine_url = f"/api/webhooks/{mine['id']}"
    assert (await client.get(mine_url, headers=theirs)).status_code == 404
    assert (await client.delete(mine_url, headers=theirs)).status_code == 404
    data = {"data": json.dumps({"url": HOOK, "type": "sale.update"})}
    assert (await client.post("/api/webhooks", data=data, headers=theirs)).status_code == 200
    assert (await client.get("/api/webhooks")).json() == [mine]


# -- deliveries ----------------------------------------------------------------------------------


async def test_a_new_sale_is_delivered_as_sale_update_with_its_09_shape(
    client: httpx.AsyncClient, hooks_app: Starlette, receiver: Receiver
) -> None:
    hook = await subscribe(client, "sale.update")
    answer = await client.post("/api/register_sales", json=sale(status="SAVED"))
    stored = answer.json()["register_sale"]
    [entry] = await delivered(hooks_app)
    assert entry == {
        "webhook_id": hook["id"],
        "url": HOOK,
        "type": "sale.update",
        "object_id": stored["id"],
        "status": 200,
        "error": None,
    }
    [(address, headers, _)] = receiver.calls
    assert (address, headers) == (HOOK, {"Content-Type": FORM})
    [form] = receiver.forms()
    assert set(form) == {"payload", "type", "domain_prefix"}
    assert (form["type"], form["domain_prefix"]) == ("sale.update", "starkdemo")
    assert decimals(form["payload"]) == decimals(answer.text)["register_sale"]


async def test_a_changed_sale_and_the_balance_it_moves_are_both_delivered(
    client: httpx.AsyncClient, hooks_app: Starlette, receiver: Receiver
) -> None:
    await subscribe(client, "sale.update")
    await subscribe(client, "customer.update")
    body = sale(status="SAVED", register_sale_products=[line(TSHIRT, loyalty_value=2)])
    parked = decimals((await client.post("/api/register_sales", json=body)).text)
    assert [e["type"] for e in await delivered(hooks_app)] == ["sale.update"]
    receiver.calls.clear()
    closed = await send(client, resend(parked["register_sale"], status="CLOSED"))
    assert closed.status_code == 200, closed.text
    entries = await delivered(hooks_app)
    assert sorted((e["type"], e["object_id"]) for e in entries[-2:]) == [
        ("customer.update", JOHNNY),
        ("sale.update", parked["register_sale"]["id"]),
    ]
    by_type = {form["type"]: decimals(form["payload"]) for form in receiver.forms()}
    assert by_type["sale.update"]["status"] == "CLOSED"
    customer = (await client.get("/api/customers", params={"id": JOHNNY})).json()["customers"][0]
    assert by_type["customer.update"] == decimals(json.dumps(customer))


async def test_a_loyalty_payment_moves_the_balance_and_delivers_customer_update(
    client: httpx.AsyncClient, hooks_app: Starlette, receiver: Receiver
) -> None:
    await subscribe(client, "customer.update")
    body = sale(customer_id=TONY, status="SAVED", register_sale_payments=[payment(LOYALTY, 5)])
    assert (await client.post("/api/register_sales", json=body)).status_code == 200
    [entry] = await delivered(hooks_app)
    assert (entry["type"], entry["object_id"]) == ("customer.update", TONY)
    assert decimals(receiver.forms()[0]["payload"])["loyalty_balance"] == "45.00000"


async def test_a_customer_post_and_an_adjustment_deliver_customer_update(
    client: httpx.AsyncClient, hooks_app: Starlette, receiver: Receiver
) -> None:
    await subscribe(client, "customer.update")
    created = (await client.post("/api/customers", json={"first_name": "Happy"})).json()
    adjust = {"session_id": SESSION, "adjustments": [{"customer_id": TONY, "credit": 10}]}
    assert (await client.post("/api/2026-07/loyalty/adjustments/bulk", json=adjust)).is_success
    assert (await client.post("/api/2026-07/loyalty/adjustments/bulk", json=adjust)).is_success
    entries = await delivered(hooks_app)
    assert sorted(e["object_id"] for e in entries) == sorted([created["customer"]["id"], TONY])
    payloads = {decimals(f["payload"])["id"]: decimals(f["payload"]) for f in receiver.forms()}
    assert payloads[TONY]["loyalty_balance"] == "60.00000"
    assert payloads[created["customer"]["id"]]["first_name"] == "Happy"


async def test_a_product_changed_by_the_back_office_delivers_product_update(
    client: httpx.AsyncClient, hooks_app: Starlette, receiver: Receiver, clock: FakeClock
) -> None:
    await subscribe(client, "product.update")
    clock.advance(60)
    changed = await client.post(f"/_sandbox/products/{TSHIRT}", json={"name": "Iron T-shirt"})
    assert changed.status_code == 200
    product = changed.json()["product"]
    assert (product["name"], product["updated_at"]) == ("Iron T-shirt", "2026-11-21 10:01:00")
    read = (await client.get(f"/api/products/{TSHIRT}")).json()["products"][0]
    assert read == product
    since = await client.get("/api/products", params={"since": "2026-11-21T10:00:30Z"})
    assert [p["id"] for p in since.json()["products"]] == [TSHIRT]
    [entry] = await delivered(hooks_app)
    assert (entry["type"], entry["object_id"]) == ("product.update", TSHIRT)
    assert json.loads(receiver.forms()[0]["payload"]) == read


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (f"/_sandbox/products/{TSHIRT}", {"id": "other"}, 400),
        (f"/_sandbox/products/{TSHIRT}", {"updated_at": "2020-01-01 00:00:00"}, 400),
        (f"/_sandbox/products/{TSHIRT}", [1], 400),
        ("/_sandbox/products/nope", {"name": "x"}, 404),
    ],
)
async def test_the_product_control_checks_its_request(
    client: httpx.AsyncClient, hooks_app: Starlette, path: str, body: Any, status: int
) -> None:
    await subscribe(client, "product.update")
    before = (await client.get(f"/api/products/{TSHIRT}")).json()
    assert (await client.post(path, json=body)).status_code == status
    assert (await client.get(f"/api/products/{TSHIRT}")).json() == before
    assert await delivered(hooks_app) == []


async def test_only_active_webhooks_of_the_type_are_delivered_to(
    client: httpx.AsyncClient, hooks_app: Starlette
) -> None:
    await subscribe(client, "sale.update", "https://a.example/hook")
    await subscribe(client, "sale.update", "https://b.example/hook", active=False)
    await subscribe(client, "product.update", "https://c.example/hook")
    await subscribe(client, "inventory.update", "https://d.example/hook")
    await client.post("/api/register_sales", json=sale(status="SAVED"))
    assert [e["url"] for e in await delivered(hooks_app)] == ["https://a.example/hook"]


async def test_the_request_does_not_wait_for_its_deliveries(
    client: httpx.AsyncClient, hooks_app: Starlette, receiver: Receiver
) -> None:
    await subscribe(client, "customer.update")
    receiver.gate = asyncio.Event()
    answer = await client.post("/api/customers", json={"first_name": "Happy"})
    assert answer.status_code == 200
    log = (await client.get("/_sandbox/webhooks/deliveries")).json()
    assert log == {"pending": 1, "deliveries": []}
    receiver.gate.set()
    [entry] = await delivered(hooks_app)
    assert entry["status"] == 200


@pytest.mark.parametrize(
    ("status", "error", "logged"),
    [
        (500, None, (500, "the receiver answered 500")),
        (200, httpx.ConnectError("refused"), (None, "ConnectError: refused")),
    ],
)
async def test_a_failed_delivery_is_logged_and_not_retried(
    client: httpx.AsyncClient,
    hooks_app: Starlette,
    receiver: Receiver,
    status: int,
    error: Exception | None,
    logged: tuple[int | None, str],
) -> None:
    await subscribe(client, "customer.update")
    receiver.status, receiver.error = status, error
    assert (await client.post("/api/customers", json={"first_name": "Happy"})).is_success
    [entry] = await delivered(hooks_app)
    assert (entry["status"], entry["error"]) == logged
    assert len(receiver.calls) == 1


async def test_a_refused_write_delivers_nothing(
    client: httpx.AsyncClient, hooks_app: Starlette
) -> None:
    await subscribe(client, "sale.update")
    await subscribe(client, "customer.update")
    bad = sale(register_sale_payments=[payment(LOYALTY, 1000)], customer_id=TONY)
    assert (await client.post("/api/register_sales", json=bad)).status_code == 400
    assert (await client.post("/api/customers", json={"first_name": ""})).status_code == 400
    assert await delivered(hooks_app) == []


async def test_a_write_whose_answer_is_lost_still_delivers(
    client: httpx.AsyncClient, hooks_app: Starlette
) -> None:
    await subscribe(client, "customer.update")
    await client.post(
        "/_sandbox/faults", json={"status": 503, "after": True, "path": "/api/customers"}
    )
    assert (await client.post("/api/customers", json={"first_name": "Happy"})).status_code == 503
    [entry] = await delivered(hooks_app)
    assert entry["type"] == "customer.update"


async def test_reset_forgets_webhooks_and_the_log(
    client: httpx.AsyncClient, hooks_app: Starlette
) -> None:
    await subscribe(client, "customer.update")
    await client.post("/api/customers", json={"first_name": "Happy"})
    assert len(await delivered(hooks_app)) == 1
    assert (await client.post("/_sandbox/reset")).status_code == 200
    assert (await client.get("/api/webhooks")).json() == []
    assert await delivered(hooks_app) == []
    await client.post("/api/customers", json={"first_name": "Again"})
    assert await delivered(hooks_app) == []


async def test_the_log_can_be_cleared(client: httpx.AsyncClient, hooks_app: Starlette) -> None:
    await subscribe(client, "customer.update")
    await client.post("/api/customers", json={"first_name": "Happy"})
    assert len(await delivered(hooks_app)) == 1
    cleared = await client.delete("/_sandbox/webhooks/deliveries")
    assert cleared.json() == {"pending": 0, "deliveries": []}
    assert (await client.get("/api/webhooks")).json() != []


# -- over real HTTP, to a real receiver ----------------------------------------------------------


async def test_deliveries_reach_a_real_receiver_as_a_form() -> None:
    received: list[tuple[str, dict[str, str]]] = []

    async def hook(request: Request) -> Response:
        form = await request.form()
        received.append((request.headers["content-type"], {k: str(v) for k, v in form.items()}))
        return Response(status_code=204)

    receiver = ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    sandbox = ServerThread(create_app(token=TOKEN)).start()
    try:
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            await subscribe(client, "customer.update", f"{receiver.url}/hook")
            created = (await client.post("/api/customers", json={"first_name": "Happy"})).json()

            async def logged() -> bool:
                log = (await client.get("/_sandbox/webhooks/deliveries")).json()
                return bool(log["deliveries"])

            await until(logged, what="the delivery is logged")
            log = (await client.get("/_sandbox/webhooks/deliveries")).json()
    finally:
        sandbox.stop()
        receiver.stop()
    [(content_type, form)] = received
    assert content_type == FORM
    assert form["type"] == "customer.update" and form["domain_prefix"] == "starkdemo"
    assert json.loads(form["payload"]) == created["customer"]
    assert [(d["status"], d["error"]) for d in log["deliveries"]] == [(204, None)]

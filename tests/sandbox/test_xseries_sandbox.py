"""The X-Series sandbox over HTTP, as our client will meet it: endpoints, validation, loyalty."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from gateway.sandbox.xseries import (
    DEMO_FIXTURES,
    ROUTE_SCOPES,
    SCOPES,
    UNSCOPED_ROUTES,
    FixtureError,
    create_app,
    load_fixtures,
)
from tests.sandbox.conftest import TOKEN, FakeClock

TONY = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b01"
JOHNNY = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b02"
PEPPER = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b03"
JOHN = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b04"
ALL_CUSTOMERS = "0adfd74a-153e-11e9-fa42-67b5781ba1fb"
VIP = "0adfd74a-153e-11e9-fa42-67b5781bb2a4"
REGISTER = "0adfd74a-153e-11e9-fa42-67b5781c0001"
OUTLET = "0adfd74a-153e-11e9-fa42-67b5781c0100"
USER = "0adfd74a-153e-11e9-fa42-67b5781c0200"
CASH = "dc85058a-a683-11e5-e112-51cc5a8f0001"
CARD = "dc85058a-a683-11e5-e112-51cc5a8f0003"
LOYALTY = "dc85058a-a683-11e5-e112-51cc5a8ffc96"
GST = "0adfd74a-153e-11e9-fa42-67b5781c0300"
TSHIRT = "b8ca3a65-0183-11e4-fbb5-6ba391393b01"
MUG = "b8ca3a65-0183-11e4-fbb5-6ba391393b02"
WATCH = "b8ca3a65-0183-11e4-fbb5-6ba391393b03"
JOHNNY_SALE = "3b0e8c1a-0000-4000-8000-00000000a001"
TONY_SALE = "3b0e8c1a-0000-4000-8000-00000000a002"
SESSION = "6f1c1f0e-5b7a-4d0e-9a43-2d3c8f6a9b10"


def data(response: httpx.Response) -> Any:
    """Money parsed as Decimal, so assertions compare exact amounts."""
    return json.loads(response.content, parse_float=Decimal)


def demo() -> dict[str, Any]:
    """The demo fixtures as plain JSON values, ready to edit and POST to /_sandbox/reset."""
    fixtures: dict[str, Any] = json.loads(DEMO_FIXTURES.read_text())
    return fixtures


def line(product_id: str = TSHIRT, **fields: Any) -> dict[str, Any]:
    prices = {TSHIRT: (20, 3), MUG: (12, 1.8), WATCH: (1000, 150)}
    price, tax = prices[product_id]
    item = {"product_id": product_id, "quantity": 1, "price": price, "tax": tax, "tax_id": GST}
    return {**item, **fields}


def payment(type_id: str = CASH, amount: Any = 23) -> dict[str, Any]:
    return {"retailer_payment_type_id": type_id, "amount": amount}


def sale(**fields: Any) -> dict[str, Any]:
    body = {
        "register_id": REGISTER,
        "user_id": USER,
        "customer_id": JOHNNY,
        "status": "CLOSED",
        "register_sale_products": [line()],
        "register_sale_payments": [payment()],
    }
    return {**body, **fields}


async def balance(client: httpx.AsyncClient, customer_id: str) -> str:
    response = await client.get("/api/customers", params={"id": customer_id})
    return str(data(response)["customers"][0]["loyalty_balance"])


async def send(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """POST a sale; Decimals read back from the sandbox go out again as JSON numbers."""
    return await client.post("/api/register_sales", content=json.dumps(body, default=float))


async def post_sale(client: httpx.AsyncClient, body: dict[str, Any]) -> Any:
    response = await send(client, body)
    assert response.status_code == 200, response.text
    return data(response)["register_sale"]


async def get_sale(client: httpx.AsyncClient, sale_id: str) -> Any:
    response = await client.get(f"/api/register_sales/{sale_id}")
    assert response.status_code == 200, response.text
    return data(response)["register_sales"][0]


def resend(stored: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What a client POSTs back to edit a sale: the whole object, minus the read-only parts.
    A new status goes without the state read (which would contradict it): X-Series takes
    the state from the status then."""
    body = {k: v for k, v in stored.items() if k not in ("totals", "taxes")}
    if "status" in changes:
        body.pop("state", None)
        body.pop("register_sale_attributes", None)
    return {**body, **changes}


# -- auth and routing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
)
async def test_requests_without_the_token_are_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    client.headers.pop("Authorization")
    response = await client.get("/api/config", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Access token is not valid"}


async def test_without_a_configured_token_any_bearer_token_is_accepted() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        assert (await client.get("/api/config", headers={"Authorization": "Bearer x"})).is_success
        empty = await client.get("/api/config", headers={"Authorization": "Bearer "})
        assert empty.status_code == 401


# -- scopes --------------------------------------------------------------------------------------


def _requests_needing(scope: str) -> list[tuple[str, str, dict[str, str]]]:
    """Every route the scope table gives ``scope``, as a concrete request."""
    found: list[tuple[str, str, dict[str, str]]] = []
    for (method, path), needs in ROUTE_SCOPES.items():
        url = path.replace("{id}", TSHIRT if "products" in path else JOHNNY_SALE)
        if isinstance(needs, str):
            if needs == scope:
                found.append((method, url, {}))
            continue
        found += [(method, url, {"type": kind}) for kind, need in needs.items() if need == scope]
    return found


SCOPED_REQUESTS = [(scope, *request) for scope in SCOPES for request in _requests_needing(scope)]


def test_every_route_needs_a_documented_scope() -> None:
    served = {(method, route.path) for route in create_app().routes
              if isinstance(route, Route) and not route.path.startswith("/_sandbox/")
              for method in route.methods or () if method != "HEAD"}  # fmt: skip
    assert served == set(ROUTE_SCOPES) | UNSCOPED_ROUTES
    assert not set(ROUTE_SCOPES) & UNSCOPED_ROUTES
    named = {n for needs in ROUTE_SCOPES.values()
             for n in ([needs] if isinstance(needs, str) else needs.values())}  # fmt: skip
    assert named <= set(SCOPES)
    assert {scope for scope, *_ in SCOPED_REQUESTS} == set(SCOPES)


@pytest.mark.parametrize(("scope", "method", "url", "params"), SCOPED_REQUESTS)
async def test_a_route_answers_403_without_its_scope_and_passes_with_it_alone(
    client: httpx.AsyncClient, scope: str, method: str, url: str, params: dict[str, str]
) -> None:
    others = " ".join(s for s in SCOPES if s != scope)
    assert (await client.post("/_sandbox/scopes", json={"scopes": others})).status_code == 200
    refused = await client.request(method, url, params=params, json={})
    assert refused.status_code == 403
    assert refused.json() == {"error": "permission denied"}
    assert (await client.post("/_sandbox/scopes", json={"scopes": scope})).status_code == 200
    allowed = await client.request(method, url, params=params, json={})
    assert allowed.status_code not in (401, 403), allowed.text


async def test_a_bad_token_is_401_before_any_scope(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        assert (await client.post("/_sandbox/scopes", json={"scopes": ""})).status_code == 200
        response = await client.get("/api/config", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.json() == {"error": "Access token is not valid"}


@pytest.mark.parametrize(
    "content",
    [b'{"session_id": "6f1c1f0e-5b7a-4d0e-9a43-2d3c8f6a9b10", "adjustments": []}', b"{not json"],
)
async def test_the_scope_is_checked_before_the_body_is_read(
    client: httpx.AsyncClient, content: bytes
) -> None:
    """An empty adjustments list is how the gateway asks, moving nothing, whether it may
    write loyalty: 403 without the scope, the validation's 400 with it."""
    assert (await client.post(ADJUST, content=content)).status_code == 400
    await client.post("/_sandbox/scopes", json={"scopes": "customers:read"})
    assert (await client.post(ADJUST, content=content)).status_code == 403


async def test_a_refused_write_changes_nothing(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/scopes", json={"scopes": "customers:read"})
    credit = {"session_id": SESSION, "adjustments": [{"customer_id": TONY, "credit": 10}]}
    assert (await client.post(ADJUST, json=credit)).status_code == 403
    created = await client.post("/api/customers", json={"first_name": "New"})
    assert created.status_code == 403
    assert await balance(client, TONY) == "50.00000"
    assert (await client.get("/api/customers")).json()["pagination"]["results"] == 4
    await client.post(
        "/_sandbox/scopes", json={"scopes": "customers:read loyalty.transaction.write"}
    )
    assert (await client.post(ADJUST, json=credit)).status_code == 200  # not a spent session
    assert await balance(client, TONY) == "60.00000"


async def test_scopes_are_set_shown_and_restored_at_run_time(client: httpx.AsyncClient) -> None:
    everything = {"scopes": " ".join(SCOPES)}
    assert (await client.get("/_sandbox/scopes")).json() == everything
    narrowed = await client.post("/_sandbox/scopes", json={"scopes": "sales:read retailer:read"})
    assert narrowed.json() == {"scopes": "retailer:read sales:read"}
    assert (await client.get("/api/customers")).status_code == 403
    assert (await client.delete("/_sandbox/scopes")).json() == everything
    assert (await client.get("/api/customers")).status_code == 200
    await client.post("/_sandbox/scopes", json={"scopes": ""})
    assert (await client.post("/_sandbox/reset")).status_code == 200
    assert (await client.get("/_sandbox/scopes")).json() == everything


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": "customers:read loyalty.write"},
        {"scopes": ["customers:read"]},
        {"scope": "customers:read"},
        {},
    ],
)
async def test_bad_scopes_are_refused_and_change_nothing(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/_sandbox/scopes", json=body)
    assert response.status_code == 400 and response.json()["error"] == "Invalid scopes"
    assert (await client.get("/_sandbox/scopes")).json() == {"scopes": " ".join(SCOPES)}


async def test_scopes_given_at_startup_restrict_its_tokens() -> None:
    app = create_app(token=TOKEN, scopes="retailer:read customers:read")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox", headers=headers
    ) as client:
        assert (await client.get("/api/config")).status_code == 200
        assert (await client.get("/api/2.0/search", params={"type": "customers"})).is_success
        assert (await client.get("/api/2.0/search", params={"type": "sales"})).status_code == 403
        assert (await client.get("/api/register_sales")).status_code == 403
        await client.post("/_sandbox/scopes", json={"scopes": " ".join(SCOPES)})
        assert (await client.post("/_sandbox/reset")).status_code == 200
        assert (await client.get("/api/register_sales")).status_code == 403  # startup's again


def test_unknown_startup_scopes_are_refused() -> None:
    with pytest.raises(ValueError, match="loyalty:write"):
        create_app(scopes="customers:read loyalty:write")


async def test_unknown_paths_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/nothing_here")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Not Found"
    wrong_method = await client.delete("/api/customers")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "Method Not Allowed"


# -- config, payment types, registers, users -----------------------------------------------------


async def test_config_is_the_fixture_config(client: httpx.AsyncClient) -> None:
    config = data(await client.get("/api/config"))["config"]
    assert config["retailer_id"] == "b1c50056-f019-11e3-a0f5-b8ca3a64f8f4"
    assert config["enable_loyalty"] is True
    assert config["loyalty_ratio"] == Decimal("0.1")
    assert config["display_retail_price_tax_inclusive"] == "0"
    assert config["default_customer_group_id"] == ALL_CUSTOMERS


async def test_config_flags_pass_through_unnormalised(client: httpx.AsyncClient) -> None:
    fixtures = demo()
    fixtures["config"].update(enable_loyalty="1", display_retail_price_tax_inclusive=1)
    assert (await client.post("/_sandbox/reset", json=fixtures)).status_code == 200
    config = (await client.get("/api/config")).json()["config"]
    assert config["enable_loyalty"] == "1"
    assert config["display_retail_price_tax_inclusive"] == 1


async def test_payment_types_registers_and_users(client: httpx.AsyncClient) -> None:
    types = (await client.get("/api/payment_types")).json()["payment_types"]
    loyalty = next(t for t in types if t["payment_type_id"] == 106)
    assert loyalty["id"] == LOYALTY
    assert loyalty["name"] == "Loyalty"
    assert {"id", "name", "payment_type_id", "config"} <= set(loyalty)
    registers = (await client.get("/api/registers")).json()["registers"]
    assert [(r["id"], r["name"], r["outlet_id"]) for r in registers] == [
        (REGISTER, "Main Register", OUTLET)
    ]
    users = (await client.get("/api/users")).json()["users"]
    assert [(u["id"], u["name"]) for u in users] == [(USER, "Sam Cashier")]


# -- products and pagination ---------------------------------------------------------------------


async def test_products_carry_price_book_entries(client: httpx.AsyncClient) -> None:
    body = data(await client.get("/api/products"))
    assert body["pagination"] == {"results": 3, "page": 1, "page_size": 100, "pages": 1}
    watch = next(p for p in body["products"] if p["id"] == WATCH)
    assert (watch["price"], watch["tax"], watch["tax_rate"]) == (1000, 150, Decimal("0.15"))
    by_group = {e["customer_group_id"]: e for e in watch["price_book_entries"]}
    assert by_group[ALL_CUSTOMERS]["loyalty_value"] == 7
    assert by_group[ALL_CUSTOMERS]["price_book_name"] == "General Price Book (All Products)"
    assert by_group[VIP]["loyalty_value"] == 333
    assert all(e["tax_name"] == "GST" for e in watch["price_book_entries"])


async def test_product_filters_and_single_product(client: httpx.AsyncClient) -> None:
    by_sku = data(await client.get("/api/products", params={"sku": "MUG-001"}))["products"]
    assert [p["id"] for p in by_sku] == [MUG]
    by_handle = data(await client.get("/api/products", params={"handle": "tshirt"}))["products"]
    assert [p["id"] for p in by_handle] == [TSHIRT]
    inactive = data(await client.get("/api/products", params={"active": "0"}))["products"]
    assert inactive == []
    later = await client.get("/api/products", params={"since": "2026-11-02T00:00:00Z"})
    assert data(later)["products"] == []
    one = data(await client.get(f"/api/products/{MUG}"))
    assert [p["name"] for p in one["products"]] == ["Coffee mug"]
    assert (await client.get("/api/products/nope")).status_code == 404


async def test_pagination_walks_every_page(client: httpx.AsyncClient) -> None:
    seen = []
    for page in (1, 2):
        body = data(await client.get("/api/products", params={"page": page, "page_size": 2}))
        assert body["pagination"] == {"results": 3, "page": page, "page_size": 2, "pages": 2}
        seen += [p["id"] for p in body["products"]]
    assert seen == [TSHIRT, MUG, WATCH]
    past_end = data(await client.get("/api/products", params={"page": 3, "page_size": 2}))
    assert past_end["products"] == []
    clamped = data(await client.get("/api/customers", params={"page_size": 500}))
    assert clamped["pagination"]["page_size"] == 200


@pytest.mark.parametrize(
    "params", [{"page": "0"}, {"page": "two"}, {"page_size": "0"}, {"page_size": "1.5"}]
)
async def test_bad_pagination_is_400(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get("/api/customers", params=params)
    assert response.status_code == 400
    assert next(iter(params)) in response.json()["error"]


# -- customers -----------------------------------------------------------------------------------


async def test_customers_in_the_0_9_shape(client: httpx.AsyncClient) -> None:
    body = data(await client.get("/api/customers"))
    assert body["pagination"]["results"] == 4
    tony = body["customers"][0]
    assert tony["id"] == TONY
    assert tony["customer_code"] == "TONY"
    assert tony["name"] == "Tony Stark"
    assert tony["customer_group_id"] == VIP
    assert tony["customer_group_name"] == "VIP"
    assert tony["enable_loyalty"] == 1
    assert tony["loyalty_balance"] == "50.00000"
    pepper = body["customers"][2]
    assert (pepper["enable_loyalty"], pepper["email"]) == (0, "")


async def test_customer_pagination_across_pages(client: httpx.AsyncClient) -> None:
    first = data(await client.get("/api/customers", params={"page_size": 3}))
    second = data(await client.get("/api/customers", params={"page_size": 3, "page": 2}))
    assert first["pagination"]["pages"] == 2
    ids = [c["id"] for c in first["customers"] + second["customers"]]
    assert ids == [TONY, JOHNNY, PEPPER, JOHN]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"id": JOHNNY}, [JOHNNY]),
        ({"code": "PEPPER"}, [PEPPER]),
        ({"email": "JOHN@Example.com"}, [JOHN]),
        ({"email": "john@example"}, []),
        ({"since": "2026-11-01T09:00:00Z"}, [TONY, JOHNNY, PEPPER, JOHN]),
        ({"since": "2026-11-01T09:00:01Z"}, []),
    ],
)
async def test_customer_filters(
    client: httpx.AsyncClient, params: dict[str, str], expected: list[str]
) -> None:
    customers = (await client.get("/api/customers", params=params)).json()["customers"]
    assert [c["id"] for c in customers] == expected


@pytest.mark.parametrize(
    "params",
    [{"id": TONY, "code": "TONY"}, {"code": "TONY", "email": "x"}, {"id": TONY, "email": "x"}],
)
async def test_id_code_and_email_are_mutually_exclusive(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/api/customers", params=params)
    assert response.status_code == 400
    assert "cannot be combined" in response.json()["error"]


@pytest.mark.parametrize("params", [{"since": "yesterday"}, {"email": ""}, {"code": ""}])
async def test_bad_customer_filters_are_400(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/api/customers", params=params)
    assert response.status_code == 400


async def test_create_customer(client: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await client.post(
        "/api/customers",
        json={
            "first_name": "Happy",
            "last_name": "Hogan",
            "email": "happy@stark.example",
            "enable_loyalty": True,
            "loyalty_balance": "1000.00000",
        },
    )
    assert response.status_code == 200
    customer = response.json()["customer"]
    assert customer["customer_code"] == "HAPPYHOGAN"
    assert customer["enable_loyalty"] == 1
    assert customer["loyalty_balance"] == "0.00000"
    assert customer["customer_group_id"] == ALL_CUSTOMERS
    assert customer["updated_at"] == "2026-11-21 10:00:00"
    found = await client.get("/api/customers", params={"email": "happy@stark.example"})
    assert found.json()["customers"] == [customer]


async def test_update_customer_keeps_the_balance(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/customers",
        json={"id": TONY, "mobile": "+1 555 0199", "enable_loyalty": 0, "loyalty_balance": 9},
    )
    assert response.status_code == 200
    tony = response.json()["customer"]
    assert (tony["mobile"], tony["enable_loyalty"], tony["first_name"]) == (
        "+1 555 0199",
        0,
        "Tony",
    )
    assert tony["loyalty_balance"] == "50.00000"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"email": "nameless@example.com"}, 400, "first_name"),
        ({"first_name": "Copy", "customer_code": "tony"}, 400, "customer_code"),
        ({"first_name": 5}, 400, "first_name"),
        ({"first_name": "X", "enable_loyalty": "yes"}, 400, "enable_loyalty"),
        ({"first_name": "X", "customer_group_id": "nope"}, 400, "customer_group_id"),
        ({"id": "00000000-0000-4000-8000-000000000000", "first_name": "X"}, 404, "Not Found"),
    ],
)
async def test_bad_customer_posts(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, message: str
) -> None:
    response = await client.post("/api/customers", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    total = (await client.get("/api/customers")).json()["pagination"]["results"]
    assert total == 4


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"", b'{"a": NaN}'])
async def test_malformed_bodies_are_400(client: httpx.AsyncClient, content: bytes) -> None:
    for path in ("/api/customers", "/api/register_sales", "/api/2026-07/loyalty/adjustments/bulk"):
        response = await client.post(path, content=content)
        assert response.status_code == 400, path
        assert set(response.json()) == {"error", "details"}


# -- register sales: reading ---------------------------------------------------------------------


async def test_fixture_sale_in_the_0_9_shape(client: httpx.AsyncClient) -> None:
    sold = await get_sale(client, JOHNNY_SALE)
    assert (sold["status"], sold["customer_id"], sold["customer_name"]) == (
        "ONACCOUNT",
        JOHNNY,
        "Johnny Bravo",
    )
    assert sold["totals"] == {
        "total_price": 20,
        "total_tax": 3,
        "total_payment": 5,
        "total_to_pay": 18,
    }
    [item] = sold["register_sale_products"]
    assert (item["name"], item["sku"], item["loyalty_value"], item["tax_name"]) == (
        "T-shirt",
        "TSHIRT-001",
        2,
        "GST",
    )
    [paid] = sold["register_sale_payments"]
    assert (paid["payment_type_id"], paid["name"], paid["amount"]) == ("1", "Cash", 5)
    assert (await client.get("/api/register_sales/unknown")).status_code == 404


async def test_listing_sales_with_filters(client: httpx.AsyncClient) -> None:
    everything = data(await client.get("/api/register_sales"))
    assert everything["pagination"]["results"] == 2
    closed = await client.get("/api/register_sales", params={"status[]": ["CLOSED", "LAYBY"]})
    assert [s["id"] for s in closed.json()["register_sales"]] == [TONY_SALE]
    both = await client.get("/api/register_sales", params={"status[]": ["CLOSED", "ONACCOUNT"]})
    assert len(both.json()["register_sales"]) == 2
    elsewhere = await client.get("/api/register_sales", params={"outlet_id": "other"})
    assert elsewhere.json()["register_sales"] == []
    here = await client.get("/api/register_sales", params={"outlet_id": OUTLET})
    assert len(here.json()["register_sales"]) == 2
    recent = await client.get("/api/register_sales", params={"since": "2026-11-11T00:00:00Z"})
    assert [s["id"] for s in recent.json()["register_sales"]] == [TONY_SALE]
    paged = await client.get("/api/register_sales", params={"page": 2, "page_size": 1})
    assert [s["id"] for s in paged.json()["register_sales"]] == [TONY_SALE]
    bad = await client.get("/api/register_sales", params={"status[]": "DONE"})
    assert bad.status_code == 400


# -- register sales: creating and validation -----------------------------------------------------


async def test_create_sale_computes_totals_and_taxes(client: httpx.AsyncClient) -> None:
    created = await post_sale(
        client,
        sale(
            status="SAVED",
            register_sale_products=[line(quantity=2), line(MUG, quantity="1.5")],
            register_sale_payments=[payment(amount="25.30")],
            note="two shirts",
            total_price=1,
            totals={"total_price": 1},
        ),
    )
    assert created["total_price"] == 58
    assert created["total_tax"] == Decimal("8.7")
    assert created["totals"] == {
        "total_price": 58,
        "total_tax": Decimal("8.7"),
        "total_payment": Decimal("25.3"),
        "total_to_pay": Decimal("41.4"),
    }
    assert created["taxes"] == [
        {"id": GST, "name": "GST", "rate": Decimal("0.15"), "tax": Decimal("8.7")}
    ]
    shirts, mugs = created["register_sale_products"]
    assert (shirts["price_total"], shirts["tax_total"], shirts["sequence"]) == (40, 6, 0)
    assert (mugs["quantity"], mugs["price_total"], mugs["tax_total"]) == (
        Decimal("1.5"),
        18,
        Decimal("2.7"),
    )
    assert created["invoice_number"] == "SI-3"
    assert created["sale_date"] == "2026-11-21 10:00:00"
    assert created["user_name"] == "sam"
    assert len(created["short_code"]) == 6
    assert created["register_sale_payments"][0]["payment_date"] == "2026-11-21 10:00:00"
    assert await get_sale(client, created["id"]) == created


async def test_money_serialises_as_exact_json_numbers(client: httpx.AsyncClient) -> None:
    body = sale(register_sale_products=[line(price=22, tax=3.3)], register_sale_payments=[])
    response = await send(client, body)
    assert '"total_tax":3.3' in response.text
    assert '"total_to_pay":25.3' in response.text
    assert '"total_price":22,' in response.text


async def test_sale_date_accepts_both_formats(client: httpx.AsyncClient) -> None:
    rfc = await post_sale(client, sale(sale_date="2026-11-20T23:00:00+13:00"))
    assert rfc["sale_date"] == "2026-11-20 10:00:00"
    plain = await post_sale(client, sale(sale_date="2026-11-19 08:30:00"))
    assert plain["sale_date"] == "2026-11-19 08:30:00"


def _without(body: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


def _with(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


REQUIRED = [
    ("user_id",),
    ("status",),
    ("register_id",),
    ("register_sale_products", 0, "product_id"),
    ("register_sale_products", 0, "quantity"),
    ("register_sale_products", 0, "price"),
    ("register_sale_products", 0, "tax"),
    ("register_sale_products", 0, "tax_id"),
    ("register_sale_payments", 0, "retailer_payment_type_id"),
    ("register_sale_payments", 0, "amount"),
]


@pytest.mark.parametrize("path", REQUIRED, ids=lambda p: ".".join(map(str, p)))
async def test_each_missing_required_field_is_400(
    client: httpx.AsyncClient, path: tuple[Any, ...]
) -> None:
    response = await send(client, _without(sale(), path))
    assert response.status_code == 400
    assert str(path[-1]) in response.json()["error"]
    assert "is required" in response.json()["error"]
    total = (await client.get("/api/register_sales")).json()["pagination"]["results"]
    assert total == 2


INVALID = [
    (("status",), "DONE", "status"),
    (("register_id",), "nope", "register_id"),
    (("user_id",), "nope", "user_id"),
    (("customer_id",), "nope", "customer_id"),
    (("sale_date",), "next tuesday", "sale_date"),
    (("note",), 12, "note"),
    (("register_sale_products",), {"product_id": TSHIRT}, "register_sale_products"),
    (("register_sale_products", 0), "shirt", "register_sale_products[0]"),
    (("register_sale_products", 0, "product_id"), "nope", "product_id"),
    (("register_sale_products", 0, "quantity"), 0, "quantity"),
    (("register_sale_products", 0, "quantity"), "two", "quantity"),
    (("register_sale_products", 0, "quantity"), True, "quantity"),
    (("register_sale_products", 0, "price"), [20], "price"),
    (("register_sale_products", 0, "price"), "NaN", "price"),
    (("register_sale_products", 0, "tax"), None, "tax"),
    (("register_sale_products", 0, "tax_id"), "", "tax_id"),
    (("register_sale_products", 0, "loyalty_value"), -1, "loyalty_value"),
    (("register_sale_products", 0, "sequence"), 1.5, "sequence"),
    (("register_sale_products", 0, "id"), "not-a-line", "register_sale_products[0].id"),
    (("register_sale_payments", 0, "retailer_payment_type_id"), "nope", "payment type"),
    (("register_sale_payments", 0, "amount"), "lots", "amount"),
    (("register_sale_payments", 0, "id"), "not-a-payment", "register_sale_payments[0].id"),
]


@pytest.mark.parametrize(("path", "value", "named"), INVALID, ids=lambda v: str(v))
async def test_invalid_values_are_400_naming_the_field(
    client: httpx.AsyncClient, path: tuple[Any, ...], value: Any, named: str
) -> None:
    response = await send(client, _with(sale(), path, value))
    assert response.status_code == 400
    assert named in response.json()["error"]
    total = (await client.get("/api/register_sales")).json()["pagination"]["results"]
    assert total == 2


async def test_updating_an_unknown_sale_is_404(client: httpx.AsyncClient) -> None:
    response = await send(client, sale(id="nope"))
    assert response.status_code == 404


# -- register sales: editing ---------------------------------------------------------------------


async def test_update_keeps_sent_lines_adds_new_and_deletes_omitted(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    editable = [{**item, "status": "SAVED"} for item in (line(), line(MUG), line(WATCH))]
    created = await post_sale(client, sale(status="SAVED", register_sale_products=editable))
    shirt, _mug, watch = created["register_sale_products"]
    clock.advance(60)
    body = resend(
        created,
        register_sale_products=[{**shirt, "quantity": 3}, watch, line(MUG, quantity=2)],
    )
    updated = await post_sale(client, body)
    ids = [item["id"] for item in updated["register_sale_products"]]
    assert ids[:2] == [shirt["id"], watch["id"]]
    assert ids[2] not in {item["id"] for item in created["register_sale_products"]}
    assert [item["quantity"] for item in updated["register_sale_products"]] == [3, 1, 2]
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] == "2026-11-21 10:01:00"
    assert updated["invoice_number"] == created["invoice_number"]
    assert updated["totals"]["total_price"] == 60 + 1000 + 24


async def test_a_confirmed_line_cannot_change_or_go(client: httpx.AsyncClient) -> None:
    """The spec: CONFIRMED on a pending sale makes a line read-only; the sandbox refuses a
    change to it (and its removal) rather than ignore it, so a client that rewrites such a
    line learns of it. Lines sent without a status are CONFIRMED (the strict reading)."""
    created = await post_sale(client, sale(status="SAVED"))
    (shirt,) = created["register_sale_products"]
    assert shirt["status"] == "CONFIRMED"
    changed = await send(client, resend(created, register_sale_products=[
        {**shirt, "loyalty_value": shirt["loyalty_value"] + 1}]))  # fmt: skip
    assert changed.status_code == 400
    assert "register_sale_products[0].loyalty_value" in changed.json()["error"]
    gone = await send(client, resend(created, register_sale_products=[line(MUG)]))
    assert gone.status_code == 400 and "cannot be removed" in gone.json()["error"]
    same = await post_sale(client, resend(created))
    assert same["register_sale_products"][0]["loyalty_value"] == shirt["loyalty_value"]


async def test_state_and_attributes_follow_the_status_and_must_agree(
    client: httpx.AsyncClient,
) -> None:
    johnny = await get_sale(client, JOHNNY_SALE)
    assert (johnny["state"], johnny["register_sale_attributes"]) == ("pending", ["onaccount"])
    contradiction = {**resend(johnny), "status": "ONACCOUNT_CLOSED"}  # state still "pending"
    assert (await send(client, contradiction)).status_code == 400
    delivery = await post_sale(
        client, resend(johnny, register_sale_attributes=["onaccount", "delivery"])
    )
    assert delivery["register_sale_attributes"] == ["onaccount", "delivery"]
    forgotten = {k: v for k, v in resend(delivery).items() if k != "register_sale_attributes"}
    assert (await post_sale(client, forgotten))["register_sale_attributes"] == ["onaccount"]


async def test_a_line_of_another_sale_cannot_be_sent(client: httpx.AsyncClient) -> None:
    other_line = (await get_sale(client, TONY_SALE))["register_sale_products"][0]
    johnny = await get_sale(client, JOHNNY_SALE)
    response = await send(client, resend(johnny, register_sale_products=[other_line]))
    assert response.status_code == 400
    assert "is not a line of this sale" in response.json()["error"]


async def test_a_payment_cannot_be_removed_or_changed(client: httpx.AsyncClient) -> None:
    johnny = await get_sale(client, JOHNNY_SALE)
    removed = await send(client, resend(johnny, register_sale_payments=[]))
    assert removed.status_code == 400
    assert "cannot be removed" in removed.json()["error"]
    [cash] = johnny["register_sale_payments"]
    changed = await send(client, resend(johnny, register_sale_payments=[{**cash, "amount": 4}]))
    assert changed.status_code == 400
    assert "cannot be changed" in changed.json()["error"]
    assert await get_sale(client, JOHNNY_SALE) == johnny


async def test_adding_a_payment_and_closing_an_account_sale(client: httpx.AsyncClient) -> None:
    johnny = await get_sale(client, JOHNNY_SALE)
    body = resend(
        johnny,
        status="ONACCOUNT_CLOSED",
        register_sale_payments=[*johnny["register_sale_payments"], payment(amount=18)],
    )
    closed = await post_sale(client, body)
    assert closed["status"] == "ONACCOUNT_CLOSED"
    assert closed["totals"]["total_to_pay"] == 0
    assert [p["amount"] for p in closed["register_sale_payments"]] == [5, 18]
    assert await balance(client, JOHNNY) == "14.00000"


@pytest.mark.parametrize("status", ["SAVED", "CLOSED", "ONACCOUNT", "LAYBY", "LAYBY_CLOSED"])
async def test_a_closed_sale_can_only_be_voided(client: httpx.AsyncClient, status: str) -> None:
    tony = await get_sale(client, TONY_SALE)
    response = await send(client, resend(tony, status=status))
    assert response.status_code == 400
    assert response.json()["error"] == "sale is closed"


async def test_a_voided_sale_cannot_change(client: httpx.AsyncClient) -> None:
    tony = await get_sale(client, TONY_SALE)
    voided = await post_sale(client, resend(tony, status="VOIDED"))
    assert voided["status"] == "VOIDED"
    for status in ("VOIDED", "SAVED", "CLOSED"):
        response = await send(client, resend(voided, status=status))
        assert response.status_code == 400
        assert response.json()["error"] == "sale is voided"


# -- loyalty -------------------------------------------------------------------------------------


async def test_closing_a_sale_earns_loyalty_value_times_quantity(
    client: httpx.AsyncClient,
) -> None:
    lines = [line(WATCH, quantity=2, loyalty_value=7), line(loyalty_value="2.5")]
    await post_sale(client, sale(register_sale_products=lines))
    assert await balance(client, JOHNNY) == "28.50000"


async def test_an_open_sale_earns_only_when_it_closes(client: httpx.AsyncClient) -> None:
    saved = await post_sale(
        client, sale(status="SAVED", register_sale_products=[line(loyalty_value=2)])
    )
    assert await balance(client, JOHNNY) == "12.00000"
    layby = await post_sale(client, resend(saved, status="LAYBY"))
    assert await balance(client, JOHNNY) == "12.00000"
    await post_sale(client, resend(layby, status="LAYBY_CLOSED"))
    assert await balance(client, JOHNNY) == "14.00000"


async def test_a_customer_without_loyalty_earns_nothing(client: httpx.AsyncClient) -> None:
    await post_sale(
        client, sale(customer_id=PEPPER, register_sale_products=[line(loyalty_value=2)])
    )
    assert await balance(client, PEPPER) == "0.00000"


@pytest.mark.parametrize("flag", [False, 0, "0"])
async def test_an_account_without_loyalty_earns_nothing(
    client: httpx.AsyncClient, flag: object
) -> None:
    fixtures = demo()
    fixtures["config"]["enable_loyalty"] = flag
    assert (await client.post("/_sandbox/reset", json=fixtures)).status_code == 200
    await post_sale(client, sale(register_sale_products=[line(loyalty_value=2)]))
    assert await balance(client, JOHNNY) == "12.00000"


async def test_a_sale_without_customer_is_fine_but_earns_nothing(
    client: httpx.AsyncClient,
) -> None:
    created = await post_sale(
        client, sale(customer_id="", register_sale_products=[line(loyalty_value=2)])
    )
    assert (created["customer_id"], created["customer_name"]) == ("", "")


async def test_a_loyalty_payment_lowers_the_balance(client: httpx.AsyncClient) -> None:
    created = await post_sale(
        client,
        sale(
            customer_id=TONY,
            status="SAVED",
            register_sale_payments=[payment(LOYALTY, "20.50")],
        ),
    )
    assert await balance(client, TONY) == "29.50000"
    [paid] = created["register_sale_payments"]
    assert (paid["payment_type_id"], paid["name"], paid["amount"]) == (
        "106",
        "Loyalty",
        Decimal("20.5"),
    )
    again = resend(
        created, register_sale_payments=[*created["register_sale_payments"], payment(LOYALTY, 2)]
    )
    await post_sale(client, again)
    assert await balance(client, TONY) == "27.50000"


@pytest.mark.parametrize(
    "payments",
    [[payment(LOYALTY, "50.01")], [payment(LOYALTY, 30), payment(LOYALTY, 21)]],
)
async def test_loyalty_payments_above_the_balance_are_refused(
    client: httpx.AsyncClient, payments: list[dict[str, Any]]
) -> None:
    response = await send(client, sale(customer_id=TONY, register_sale_payments=payments))
    assert response.status_code == 400
    assert response.json()["error"] == "Insufficient loyalty balance"
    assert await balance(client, TONY) == "50.00000"
    assert (await client.get("/api/register_sales")).json()["pagination"]["results"] == 2


async def test_a_loyalty_payment_needs_a_customer(client: httpx.AsyncClient) -> None:
    body = sale(customer_id="", register_sale_payments=[payment(LOYALTY, 1)])
    response = await send(client, body)
    assert response.status_code == 400
    assert response.json()["error"] == "Insufficient loyalty balance"


async def test_a_loyalty_payment_must_be_positive(client: httpx.AsyncClient) -> None:
    body = sale(customer_id=TONY, register_sale_payments=[payment(LOYALTY, -5)])
    response = await send(client, body)
    assert response.status_code == 400
    assert "amount" in response.json()["error"]


async def test_a_loyalty_payment_and_earning_in_one_closed_sale(
    client: httpx.AsyncClient,
) -> None:
    body = sale(
        customer_id=JOHN,
        register_sale_products=[line(WATCH, loyalty_value="6.65")],
        register_sale_payments=[payment(LOYALTY, 100), payment(CARD, 1050)],
    )
    await post_sale(client, body)
    assert await balance(client, JOHN) == "26.65000"


async def test_voiding_reverses_earnings_and_returns_loyalty_payments(
    client: httpx.AsyncClient,
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
    await post_sale(client, resend(closed, status="VOIDED"))
    assert await balance(client, JOHN) == "120.00000"


async def test_voiding_an_open_sale_returns_its_loyalty_payments(
    client: httpx.AsyncClient,
) -> None:
    saved = await post_sale(
        client, sale(customer_id=TONY, status="SAVED", register_sale_payments=[payment(LOYALTY, 5)])
    )
    assert await balance(client, TONY) == "45.00000"
    await post_sale(client, resend(saved, status="VOIDED"))
    assert await balance(client, TONY) == "50.00000"


async def test_voiding_a_closed_fixture_sale_reverses_what_it_earned(
    client: httpx.AsyncClient,
) -> None:
    tony = await get_sale(client, TONY_SALE)
    await post_sale(client, resend(tony, status="VOIDED"))
    assert await balance(client, TONY) == "48.80000"


async def test_the_customer_of_a_sale_with_loyalty_cannot_change(
    client: httpx.AsyncClient,
) -> None:
    saved = await post_sale(
        client, sale(customer_id=TONY, status="SAVED", register_sale_payments=[payment(LOYALTY, 5)])
    )
    response = await send(client, resend(saved, customer_id=JOHN))
    assert response.status_code == 400
    assert "customer_id" in response.json()["error"]


# -- 2.0 search ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"first_name": "jo"}, [JOHNNY, JOHN]),
        ({"first_name": "jo", "last_name": "SM"}, [JOHN]),
        ({"company_name": "stark"}, [TONY, PEPPER]),
        ({"customer_code": "JBRAVO"}, [JOHNNY]),
        ({"customer_code": "jbravo"}, []),
        ({}, [TONY, JOHNNY, PEPPER, JOHN]),
        ({"offset": 1, "page_size": 2}, [JOHNNY, PEPPER]),
        ({"order_by": "last_name"}, [JOHNNY, PEPPER, JOHN, TONY]),
        ({"order_by": "first_name", "order_direction": "desc"}, [TONY, PEPPER, JOHNNY, JOHN]),
    ],
)
async def test_search_customers(
    client: httpx.AsyncClient, params: dict[str, Any], expected: list[str]
) -> None:
    response = await client.get("/api/2.0/search", params={"type": "customers", **params})
    assert [c["id"] for c in response.json()["data"]] == expected


async def test_search_customers_uses_the_2_0_shape(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/2.0/search", params={"type": "customers", "customer_code": "TONY"}
    )
    [tony] = data(response)["data"]
    assert tony["enable_loyalty"] is True
    assert tony["loyalty_balance"] == 50
    assert tony["updated_at"] == "2026-11-01T09:00:00Z"
    assert isinstance(tony["version"], int)
    assert {"id", "customer_code", "customer_group_id", "first_name", "last_name", "email"} <= set(
        tony
    )


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"type": "planets"},
        {"type": "customers", "first_name": ""},
        {"type": "customers", "offset": "-1"},
        {"type": "customers", "order_by": "email"},
        {"type": "customers", "order_by": "last_name", "order_direction": "up"},
        {"type": "sales", "order_by": "total_price"},
        {"type": "sales", "order_direction": "up"},
        {"type": "sales", "date_from": "soon"},
    ],
)
async def test_bad_searches_are_400(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    assert (await client.get("/api/2.0/search", params=params)).status_code == 400


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("customers", "email"),
        ("customers", "mobile"),
        ("customers", "phone"),
        ("customers", "customer_id"),
        ("sales", "first_name"),
        ("sales", "register_id"),
    ],
)
async def test_a_search_field_the_spec_does_not_list_is_a_400_naming_it(
    client: httpx.AsyncClient, kind: str, field: str
) -> None:
    """The 2.0 search documents customer_code, first_name, last_name and company_name for
    customers (no email: 0.9 /customers?email= is the lookup that documents it)."""
    value = TONY if field.endswith("_id") else "tony@stark.example"
    response = await client.get("/api/2.0/search", params={"type": kind, field: value})
    assert response.status_code == 400
    assert field in response.json()["error"]


@pytest.mark.parametrize("field", ["_id", "-_id", "deleted"])
async def test_a_documented_search_parameter_the_sandbox_does_not_play_is_refused(
    client: httpx.AsyncClient, field: str
) -> None:
    """Refused, not ignored: ignored, it would answer more than the real API."""
    response = await client.get("/api/2.0/search", params={"type": "customers", field: TONY})
    assert response.status_code == 400
    assert field in response.json()["error"]


async def test_search_sales(client: httpx.AsyncClient) -> None:
    def ids(response: httpx.Response) -> list[str]:
        return [s["id"] for s in response.json()["data"]]

    search = {"type": "sales"}
    assert ids(await client.get("/api/2.0/search", params=search)) == [TONY_SALE, JOHNNY_SALE]
    oldest_first = {**search, "order_direction": "asc"}
    assert ids(await client.get("/api/2.0/search", params=oldest_first)) == [
        JOHNNY_SALE,
        TONY_SALE,
    ]
    by_created = {**search, "order_by": "created_at", "order_direction": "asc"}
    assert ids(await client.get("/api/2.0/search", params=by_created))[0] == JOHNNY_SALE
    mine = {**search, "customer_id": JOHNNY}
    assert ids(await client.get("/api/2.0/search", params=mine)) == [JOHNNY_SALE]
    statuses = {**search, "status": ["CLOSED", "LAYBY"]}
    assert ids(await client.get("/api/2.0/search", params=statuses)) == [TONY_SALE]
    window = {**search, "date_from": "2026-11-10T00:00:00Z", "date_to": "2026-11-11T00:00:00Z"}
    assert ids(await client.get("/api/2.0/search", params=window)) == [JOHNNY_SALE]


async def test_search_sales_uses_the_2_0_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/2.0/search", params={"type": "sales", "customer_id": TONY})
    [found] = data(response)["data"]
    assert (found["total_price"], found["total_tax"], found["total_loyalty"]) == (
        12,
        Decimal("1.8"),
        Decimal("1.2"),
    )
    assert found["sale_date"] == "2026-11-12T11:30:00Z"
    [item] = found["line_items"]
    assert (item["product_id"], item["loyalty_value"], item["total_loyalty_value"]) == (
        MUG,
        Decimal("1.2"),
        Decimal("1.2"),
    )
    [paid] = found["payments"]
    assert (paid["retailer_payment_type_id"], paid["payment_type_id"], paid["amount"]) == (
        CARD,
        "3",
        Decimal("13.8"),
    )


# -- loyalty adjustments (2026-07 beta) ----------------------------------------------------------


ADJUST = "/api/2026-07/loyalty/adjustments/bulk"


async def test_adjustments_apply_once_per_session(client: httpx.AsyncClient) -> None:
    body = {
        "session_id": SESSION,
        "adjustments": [
            {"customer_id": TONY, "credit": 10, "reason": "birthday"},
            {"customer_id": JOHNNY, "debit": "2.50"},
        ],
    }
    first = await client.post(ADJUST, json=body)
    assert first.status_code == 200
    assert data(first) == {
        "applied": [
            {"customer_id": TONY, "balance": 60},
            {"customer_id": JOHNNY, "balance": Decimal("9.5")},
        ],
        "errors": [],
    }
    replay = await client.post(ADJUST, json=body)
    assert (replay.status_code, replay.json()) == (200, first.json())
    assert await balance(client, TONY) == "60.00000"
    assert await balance(client, JOHNNY) == "9.50000"


async def test_a_session_reused_with_other_adjustments_is_409(client: httpx.AsyncClient) -> None:
    body = {"session_id": SESSION, "adjustments": [{"customer_id": TONY, "credit": 10}]}
    assert (await client.post(ADJUST, json=body)).status_code == 200
    other = {"session_id": SESSION, "adjustments": [{"customer_id": TONY, "credit": 11}]}
    response = await client.post(ADJUST, json=other)
    assert response.status_code == 409
    assert "error" in response.json()
    assert await balance(client, TONY) == "60.00000"


async def test_partly_failed_adjustments_are_207(client: httpx.AsyncClient) -> None:
    body = {
        "session_id": SESSION,
        "adjustments": [
            {"customer_id": "00000000-0000-4000-8000-000000000000", "credit": 1},
            {"customer_id": JOHNNY, "debit": "12.01"},
            {"customer_id": JOHNNY, "debit": 12},
        ],
    }
    response = await client.post(ADJUST, json=body)
    assert response.status_code == 207
    result = data(response)
    assert result["applied"] == [{"customer_id": JOHNNY, "balance": 0}]
    assert [e["customer_id"] for e in result["errors"]] == [
        "00000000-0000-4000-8000-000000000000",
        JOHNNY,
    ]
    assert await balance(client, JOHNNY) == "0.00000"


@pytest.mark.parametrize(
    "body",
    [
        {"session_id": "not-a-uuid", "adjustments": [{"customer_id": TONY, "credit": 1}]},
        {"adjustments": [{"customer_id": TONY, "credit": 1}]},
        {"session_id": SESSION, "adjustments": []},
        {"session_id": SESSION},
        {"session_id": SESSION, "adjustments": [{"customer_id": TONY, "credit": 1, "debit": 1}]},
        {"session_id": SESSION, "adjustments": [{"customer_id": TONY}]},
        {"session_id": SESSION, "adjustments": [{"customer_id": TONY, "credit": 0}]},
        {"session_id": SESSION, "adjustments": [{"customer_id": TONY, "debit": -1}]},
        {"session_id": SESSION, "adjustments": [{"credit": 1}]},
        {"session_id": SESSION, "adjustments": [{"customer_id": TONY, "credit": 5}, "x"]},
    ],
)
async def test_invalid_adjustments_are_400_and_apply_nothing(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post(ADJUST, json=body)
    assert response.status_code == 400
    assert await balance(client, TONY) == "50.00000"


# -- fixtures ------------------------------------------------------------------------------------


def test_load_fixtures_reads_the_demo() -> None:
    fixtures = load_fixtures(DEMO_FIXTURES)
    assert set(fixtures) == {
        "config",
        "products",
        "customers",
        "customer_groups",
        "payment_types",
        "register_sales",
        "registers",
        "users",
    }
    assert fixtures["config"]["loyalty_ratio"] == Decimal("0.1")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"planets": []}', "unknown fixture keys: planets"),
        ('{"customers": {}}', "customers must be an array"),
        ('{"customers": [{"first_name": "X"}]}', "customers[0]"),
        ('{"customers": [{"id": "c", "loyalty_balance": "lots"}]}', "loyalty_balance"),
    ],
)
def test_bad_fixture_files_fail_clearly(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "fixtures.json"
    path.write_text(content)
    with pytest.raises(FixtureError, match="fixtures") as raised:
        load_fixtures(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_missing_fixture_file_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="cannot read"):
        load_fixtures(tmp_path / "missing.json")


async def test_fixtures_given_as_python_objects_with_floats() -> None:
    fixtures = demo()
    fixtures["customers"][0]["loyalty_balance"] = 12.3
    app = create_app(fixtures, token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers=headers
    ) as client:
        assert await balance(client, TONY) == "12.30000"


# -- robustness ----------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
SALE_PATHS = [
    (key,)
    for key in (
        "id",
        "user_id",
        "status",
        "register_id",
        "customer_id",
        "sale_date",
        "note",
        "register_sale_products",
        "register_sale_payments",
        "return_for",
    )
] + [
    ("register_sale_products", 0, key)
    for key in ("id", "product_id", "quantity", "price", "tax", "tax_id", "loyalty_value",
                "sequence", "discount", "price_set", "status")
] + [
    ("register_sale_payments", 0, key)
    for key in ("id", "retailer_payment_type_id", "amount", "payment_date", "register_id")
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(SALE_PATHS), value=JSON_VALUES, loyalty=st.booleans())
async def test_no_sale_body_makes_the_sandbox_fail(
    path: tuple[Any, ...], value: Any, loyalty: bool
) -> None:
    base = sale(customer_id=TONY, register_sale_payments=[payment(LOYALTY if loyalty else CASH)])
    transport = httpx.ASGITransport(app=create_app(token=TOKEN))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers=headers
    ) as client:
        response = await send(client, _with(base, path, value))
        assert response.status_code in (200, 400, 404), response.text
        assert "error" in response.json() or response.status_code == 200


@settings(max_examples=200, deadline=None)
@given(body=JSON_VALUES, endpoint=st.sampled_from(["customers", "adjustments", "search"]))
async def test_no_body_or_query_makes_the_sandbox_fail(body: Any, endpoint: str) -> None:
    transport = httpx.ASGITransport(app=create_app(token=TOKEN))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers=headers
    ) as client:
        if endpoint == "search":
            params = body if isinstance(body, dict) else {"type": str(body)}
            response = await client.get(
                "/api/2.0/search", params={k: str(v) for k, v in params.items()}
            )
        elif endpoint == "customers":
            response = await client.post("/api/customers", content=json.dumps(body))
        else:
            response = await client.post(ADJUST, content=json.dumps(body))
        assert response.status_code in (200, 207, 400, 404, 409), response.text

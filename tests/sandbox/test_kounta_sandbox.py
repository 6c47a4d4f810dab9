"""The Kounta sandbox over HTTP, as our Kounta client will meet it: negotiation, OAuth, company
scoping, paging, customers, orders, payments, webhooks, completion and the shared controls."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from gateway.sandbox.kounta import (
    DEMO_FIXTURES,
    FixtureError,
    create_app,
    deliver_over_http,
    load_fixtures,
)
from tests.sandbox.conftest import START, TOKEN, FakeClock, RecordingSleep

COMPANY = 5678
BASE = f"/v1/companies/{COMPANY}"
SITE = 2301
JOHN, LUCY, TONY = 3842, 3843, 3844
JOHN_ORDER, TONY_ORDER, LUCY_ORDER = 93824701, 93824702, 93824703
CASH, CARD, POINTS = 1, 7, 12
LATTE, SALMON = 7302, 5312
# The ids the sandbox gives the demo orders' lines and payments, in fixture order.
JOHN_LATTE_LINE, JOHN_SALMON_LINE, TONY_LINE, LUCY_LINE = range(41000000001, 41000000005)
LUCY_PAYMENT = 21000001
JOHN_REF = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b04"
TONY_REF = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b01"
DEMO_ACCESS, DEMO_REFRESH = "demo-kounta-access", "demo-kounta-refresh"
NOW = "2026-11-21T10:00:00+00:00"
EXPIRED = "The access token provided has expired"
HOOK = "https://gw.example/webhooks/kounta"


class Deliveries:
    """Stands in for the webhook sender: records each delivery and answers a chosen status."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        self.error: Exception | None = None

    async def __call__(self, address: str, headers: Mapping[str, str], body: bytes) -> int:
        self.calls.append((address, dict(headers), body))
        if self.error is not None:
            raise self.error
        return self.status


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries()


@pytest.fixture
def app(clock: FakeClock, sleeps: RecordingSleep, deliveries: Deliveries) -> Starlette:
    """Overrides the X-Series app of conftest, so its ``client`` fixture talks to Kounta."""
    return create_app(token=TOKEN, clock=clock, sleep=sleeps, deliver=deliveries)


@asynccontextmanager
async def connect(app: Starlette, token: str | None = TOKEN) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers=headers
    ) as client:
        yield client


def data(response: httpx.Response) -> Any:
    """Money parsed as Decimal, so assertions compare exact amounts."""
    return json.loads(response.content, parse_float=Decimal)


def demo() -> dict[str, Any]:
    """The demo fixtures as plain JSON values, ready to edit and POST to /_sandbox/reset."""
    fixtures: dict[str, Any] = json.loads(DEMO_FIXTURES.read_text())
    return fixtures


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# The app the sandbox knows by default: the gateway's development defaults.
APP = {"client_id": "gateway-sandbox", "client_secret": "gateway-sandbox-secret"}


async def refresh(client: httpx.AsyncClient, token: str, **form: str) -> httpx.Response:
    body = {"grant_type": "refresh_token", "refresh_token": token, **APP, **form}
    return await client.post("/v1/token", data=body)


async def issue(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/_sandbox/oauth/issue", json=body)
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


async def get_order(client: httpx.AsyncClient, order_id: int) -> Any:
    response = await client.get(f"{BASE}/orders/{order_id}")
    assert response.status_code == 200, response.text
    return data(response)


async def pay(
    client: httpx.AsyncClient, order_id: int, amount: Any, **fields: Any
) -> httpx.Response:
    body = {"method_id": CASH, "amount": amount, **fields}
    return await client.post(f"{BASE}/orders/{order_id}/payments", json=body)


async def put_lines(client: httpx.AsyncClient, order_id: int, lines: list[Any]) -> httpx.Response:
    return await client.put(f"{BASE}/orders/{order_id}", json={"lines": lines})


async def add_webhook(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"topic": "orders/completed", "address": HOOK, **fields}
    response = await client.post(f"{BASE}/webhooks", json=body)
    assert response.status_code == 201, response.text
    webhook: dict[str, Any] = response.json()
    return webhook


async def complete(client: httpx.AsyncClient, order_id: int, **options: Any) -> httpx.Response:
    return await client.post(f"/_sandbox/orders/{order_id}/complete", json=options or None)


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    result: dict[str, Any] = (await client.get("/_sandbox/stats")).json()
    return result


def line(product_id: int = LATTE, quantity: Any = 1, **fields: Any) -> dict[str, Any]:
    prices = {LATTE: (4, 0.6), SALMON: (9, 1.35)}
    price, tax = prices.get(product_id, (1, 0))
    item = {"product_id": product_id, "quantity": quantity, "unit_price": price, "unit_tax": tax}
    return {**item, **fields}


# -- content negotiation and request bodies -----------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/json", 200),
        ("*/*", 200),
        ("application/*", 200),
        ("text/html, application/json;q=0.5", 200),
        ("application/json; charset=utf-8", 200),
        ("text/html", 406),
        ("application/xml", 406),
        ("application/json;q=0", 406),
        ("", 406),
    ],
)
async def test_json_needs_an_accept_header_that_allows_it(
    client: httpx.AsyncClient, accept: str, status: int
) -> None:
    response = await client.get("/v1/companies/me", headers={"Accept": accept})
    assert response.status_code == status
    if status == 406:
        assert "application/json" in response.json()["error"]


async def test_no_accept_header_at_all_is_406(client: httpx.AsyncClient) -> None:
    del client.headers["Accept"]
    assert (await client.get("/v1/companies/me")).status_code == 406
    assert (await client.get("/v1/companies/me.json")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/companies/me.json", None, 200),
        ("GET", f"{BASE}.json", None, 200),
        ("GET", f"{BASE}/sites.json", None, 200),
        ("GET", f"{BASE}/payment_methods.json", None, 200),
        ("GET", f"{BASE}/customers.json", None, 200),
        ("GET", f"{BASE}/customers/{JOHN}.json", None, 200),
        ("PUT", f"{BASE}/customers/{JOHN}.json", {"last_name": "Smyth"}, 200),
        ("POST", f"{BASE}/customers.json", {"first_name": "Pepper", "email": "p@x.example"}, 201),
        ("GET", f"{BASE}/orders.json", None, 200),
        ("GET", f"{BASE}/orders/{JOHN_ORDER}.json", None, 200),
        ("PUT", f"{BASE}/orders/{JOHN_ORDER}.json", {"notes": "Eat in"}, 200),
        ("POST", f"{BASE}/orders.json", {"status": "PENDING", "lines": [line()]}, 201),
        ("POST", f"{BASE}/orders/{JOHN_ORDER}/payments.json", {"method_id": 1, "amount": 1}, 201),
        ("GET", f"{BASE}/webhooks.json", None, 200),
        ("POST", f"{BASE}/webhooks.json", {"topic": "orders/completed", "address": HOOK}, 201),
    ],
)
async def test_every_route_answers_with_a_json_suffix_whatever_the_accept_header(
    client: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    response = await client.request(method, path, json=body, headers={"Accept": "text/html"})
    assert response.status_code == status, response.text


async def test_json_suffix_on_the_payment_and_webhook_item_routes(
    client: httpx.AsyncClient,
) -> None:
    assert (await pay(client, JOHN_ORDER, 1)).status_code == 201
    payment = f"{BASE}/orders/{JOHN_ORDER}/payments/1.json"
    assert (await client.put(payment, json={"ref": "R1"})).status_code == 200
    webhook = await add_webhook(client)
    path = f"{BASE}/webhooks/{webhook['id']}.json"
    assert (await client.get(path)).status_code == 200
    assert (await client.put(path, json={"headers": {}})).status_code == 200
    assert (await client.delete(path)).status_code == 204


async def test_both_spellings_count_under_one_route_template(client: httpx.AsyncClient) -> None:
    await client.get(f"{BASE}/orders/{JOHN_ORDER}")
    await client.get(f"{BASE}/orders/{JOHN_ORDER}.json")
    await client.get("/v1/companies/me.json")
    counted = await stats(client)
    assert counted["requests"] == {
        "GET /v1/companies/{company_id}/orders/{order_id}": 2,
        "GET /v1/companies/me": 1,
    }


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_post_and_put_need_a_json_content_type(
    client: httpx.AsyncClient, content_type: str
) -> None:
    body = json.dumps({"last_name": "Smyth"})
    headers = {"Content-Type": content_type}
    put = await client.put(f"{BASE}/customers/{JOHN}", content=body, headers=headers)
    assert put.status_code == 400
    assert put.json() == {"error": "Content-Type must be application/json"}
    post = await client.post(f"{BASE}/webhooks", content=body, headers=headers)
    assert post.status_code == 400
    john = data(await client.get(f"{BASE}/customers/{JOHN}"))
    assert john["last_name"] == "Smith"


async def test_a_charset_parameter_is_fine(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    body = json.dumps({"last_name": "Smyth"})
    response = await client.put(f"{BASE}/customers/{JOHN}", content=body, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("body", [b"", b"{", b"[1]", b'"x"', b'{"a": NaN}'])
async def test_bodies_that_are_not_a_json_object_are_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    response = await client.put(f"{BASE}/customers/{JOHN}", content=body, headers=headers)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


async def test_unknown_paths_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing_here")
    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    wrong = await client.delete(f"{BASE}/customers")
    assert (wrong.status_code, wrong.json()) == (405, {"error": "Method Not Allowed"})


# -- OAuth2 --------------------------------------------------------------------------------------


async def test_refresh_gives_a_new_pair_and_the_old_access_token_stays_valid(
    client: httpx.AsyncClient,
) -> None:
    response = await refresh(client, DEMO_REFRESH)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    pair = response.json()
    assert set(pair) == {"access_token", "refresh_token", "expires_in", "token_type"}
    assert (pair["expires_in"], pair["token_type"]) == (3600, "Bearer")
    assert pair["access_token"] not in (DEMO_ACCESS, TOKEN)
    assert pair["refresh_token"] != DEMO_REFRESH
    for token in (pair["access_token"], DEMO_ACCESS):
        assert (await client.get("/v1/companies/me", headers=bearer(token))).status_code == 200
    again = await refresh(client, pair["refresh_token"])
    assert again.status_code == 200
    assert again.json()["access_token"] != pair["access_token"]


async def test_a_refresh_token_works_once(client: httpx.AsyncClient) -> None:
    assert (await refresh(client, DEMO_REFRESH)).status_code == 200
    second = await refresh(client, DEMO_REFRESH)
    assert second.status_code == 400
    assert second.json() == {
        "error": "invalid_grant",
        "error_description": "refresh token is invalid or already used",
    }
    unknown = await refresh(client, "never-issued")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_grant")


async def test_the_token_endpoint_answers_with_a_json_suffix_and_is_counted(
    client: httpx.AsyncClient,
) -> None:
    body = {"grant_type": "refresh_token", "refresh_token": DEMO_REFRESH, **APP}
    response = await client.post("/v1/token.json", data=body, headers={"Accept": "text/html"})
    assert response.status_code == 200
    await refresh(client, DEMO_REFRESH)
    counted = await stats(client)
    assert counted["requests"] == {"POST /v1/token": 2}
    assert counted["responses"] == {"POST /v1/token 200": 1, "POST /v1/token 400": 1}


async def test_configured_client_credentials_must_match(clock: FakeClock) -> None:
    app = create_app(token=TOKEN, client_id="cid", client_secret="secret", clock=clock)
    async with connect(app) as client:
        for form in (
            {"client_id": "cid", "client_secret": "wrong"},
            {"client_id": "other", "client_secret": "secret"},
            {"client_id": "cid", "client_secret": ""},
            {"client_id": "", "client_secret": ""},
        ):
            refused = await refresh(client, DEMO_REFRESH, **form)
            assert refused.status_code == 401
            assert refused.json() == {"error": "invalid_client"}
        accepted = await refresh(client, DEMO_REFRESH, client_id="cid", client_secret="secret")
        assert accepted.status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "u"}, "unsupported_grant_type"),
        ({"refresh_token": DEMO_REFRESH}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": ""}, "invalid_request"),
        (
            {"grant_type": "authorization_code", "redirect_uri": "https://a.example/"},
            "invalid_request",
        ),
        ({"grant_type": "authorization_code", "code": "x"}, "invalid_request"),
    ],
)
async def test_bad_token_requests_are_400(
    client: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    response = await client.post("/v1/token", data={**APP, **form})
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_the_token_endpoint_wants_a_form(client: httpx.AsyncClient) -> None:
    body = {"grant_type": "refresh_token", "refresh_token": DEMO_REFRESH, **APP}
    response = await client.post("/v1/token", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert (await refresh(client, DEMO_REFRESH)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong"), {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}],
)
async def test_api_requests_need_a_known_bearer_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    del client.headers["Authorization"]
    response = await client.get(f"{BASE}/orders", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_access_token_expires_with_the_clock(clock: FakeClock) -> None:
    app = create_app(token=TOKEN, token_lifetime_s=600, clock=clock)
    async with connect(app) as client:
        pair = (await refresh(client, DEMO_REFRESH)).json()
        assert pair["expires_in"] == 600
        clock.advance(599)
        ok = await client.get("/v1/companies/me", headers=bearer(pair["access_token"]))
        assert ok.status_code == 200
        clock.advance(1)
        expired = await client.get("/v1/companies/me", headers=bearer(pair["access_token"]))
        assert expired.status_code == 401
        assert expired.json() == {"error": EXPIRED}
        renewed = await refresh(client, pair["refresh_token"])
        assert renewed.status_code == 200
        fresh = await client.get("/v1/companies/me", headers=bearer(renewed.json()["access_token"]))
        assert fresh.status_code == 200


async def test_fixture_tokens_expire_after_their_own_expires_in(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(3599)
    assert (await client.get("/v1/companies/me", headers=bearer(DEMO_ACCESS))).status_code == 200
    clock.advance(1)
    expired = await client.get("/v1/companies/me", headers=bearer(DEMO_ACCESS))
    assert (expired.status_code, expired.json()) == (401, {"error": EXPIRED})


async def test_the_expire_control_expires_every_issued_token_now(
    client: httpx.AsyncClient,
) -> None:
    pair = await issue(client)
    response = await client.post("/_sandbox/oauth/expire")
    assert response.json() == {"expired": 2}
    for token in (DEMO_ACCESS, pair["access_token"]):
        expired = await client.get(f"{BASE}/orders", headers=bearer(token))
        assert (expired.status_code, expired.json()) == (401, {"error": EXPIRED})
    assert (await client.get(f"{BASE}/orders")).status_code == 200
    renewed = (await refresh(client, pair["refresh_token"])).json()
    assert (
        await client.get("/v1/companies/me", headers=bearer(renewed["access_token"]))
    ).is_success


async def test_the_issue_control_hands_out_pairs(client: httpx.AsyncClient) -> None:
    pair = await issue(client, expires_in=0)
    assert (pair["expires_in"], pair["token_type"]) == (0, "Bearer")
    expired = await client.get("/v1/companies/me", headers=bearer(pair["access_token"]))
    assert expired.json() == {"error": EXPIRED}
    default = (await client.post("/_sandbox/oauth/issue")).json()
    assert default["expires_in"] == 3600
    assert (
        await client.get("/v1/companies/me", headers=bearer(default["access_token"]))
    ).is_success
    assert (await refresh(client, default["refresh_token"])).status_code == 200
    assert (await stats(client))["requests"] == {"GET /v1/companies/me": 2, "POST /v1/token": 1}


@pytest.mark.parametrize("body", [{"expires_in": -1}, {"expires_in": "60"}, {"ttl": 60}, [1]])
async def test_the_issue_control_checks_its_body(client: httpx.AsyncClient, body: Any) -> None:
    response = await client.post("/_sandbox/oauth/issue", json=body)
    assert response.status_code == 400
    assert "error" in response.json()


async def test_the_static_token_is_always_valid(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await client.post("/_sandbox/oauth/expire")
    clock.advance(365 * 24 * 3600)
    await client.post("/_sandbox/reset")
    assert (await client.get("/v1/companies/me")).status_code == 200


# -- company, sites, payment methods --------------------------------------------------------------


async def test_the_company_by_me_and_by_id(client: httpx.AsyncClient) -> None:
    me = (await client.get("/v1/companies/me")).json()
    assert {k: me[k] for k in ("id", "name", "business_name", "currency")} == {
        "id": COMPANY,
        "name": "Stark Café",
        "business_name": "Stark Industries Café",
        "currency": "USD",
    }
    assert (await client.get(BASE)).json() == me


@pytest.mark.parametrize(
    "path",
    [
        "/v1/companies/1234",
        "/v1/companies/1234/sites",
        "/v1/companies/1234/customers",
        f"/v1/companies/1234/customers/{JOHN}",
        f"/v1/companies/1234/orders/{JOHN_ORDER}",
        "/v1/companies/1234/webhooks",
        "/v1/companies/stark/orders",
    ],
)
async def test_another_company_is_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert (response.status_code, response.json()) == (404, {"error": "Company not found"})


async def test_writes_to_another_company_are_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/companies/1/webhooks", json={"topic": "x"})
    assert (response.status_code, response.json()) == (404, {"error": "Company not found"})


async def test_sites_and_payment_methods(client: httpx.AsyncClient) -> None:
    sites = (await client.get(f"{BASE}/sites")).json()
    assert [(s["id"], s["name"]) for s in sites] == [(SITE, "Stark Café CBD")]
    methods = (await client.get(f"{BASE}/payment_methods")).json()
    assert methods == [
        {"id": CASH, "name": "Cash", "ledger_code": "200"},
        {"id": CARD, "name": "Card", "ledger_code": "210"},
        {"id": POINTS, "name": "Loyalty Points", "ledger_code": "290"},
    ]


# -- pagination ----------------------------------------------------------------------------------


def many_customers(count: int) -> dict[str, Any]:
    fixtures = demo()
    fixtures["customers"] += [
        {"id": 5000 + i, "first_name": f"Guest {i}", "email": f"guest{i}@example.com"}
        for i in range(count - len(fixtures["customers"]))
    ]
    return fixtures


async def test_customers_come_25_to_a_page(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/reset", json=many_customers(60))
    seen: list[int] = []
    for page in (0, 1, 2):
        response = await client.get(f"{BASE}/customers", headers={"X-Page": str(page)})
        assert response.headers["X-Pages"] == "3"
        assert response.headers["X-Page"] == str(page)
        seen += [c["id"] for c in response.json()]
        assert len(response.json()) == (25 if page < 2 else 10)
    assert seen == [JOHN, LUCY, TONY, *range(5000, 5057)]
    default = await client.get(f"{BASE}/customers")
    assert default.headers["X-Page"] == "0"
    assert [c["id"] for c in default.json()] == seen[:25]
    past_end = await client.get(f"{BASE}/customers", headers={"X-Page": "3"})
    assert (past_end.status_code, past_end.json(), past_end.headers["X-Pages"]) == (200, [], "3")


async def test_a_short_list_is_one_page(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/webhooks")
    assert (response.json(), response.headers["X-Pages"], response.headers["X-Page"]) == (
        [],
        "1",
        "0",
    )


@pytest.mark.parametrize("page", ["-1", "one", "1.5", "", "99999999999"])
async def test_a_bad_x_page_is_400(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(f"{BASE}/orders", headers={"X-Page": page})
    assert response.status_code == 400
    assert "X-Page" in response.json()["error"]


async def test_orders_page_newest_first(client: httpx.AsyncClient, clock: FakeClock) -> None:
    created = []
    for _ in range(27):
        clock.advance(60)
        response = await client.post(
            f"{BASE}/orders", json={"status": "PENDING", "lines": [line()]}
        )
        created.append(response.json()["id"])
    first = await client.get(f"{BASE}/orders")
    second = await client.get(f"{BASE}/orders", headers={"X-Page": "1"})
    assert first.headers["X-Pages"] == second.headers["X-Pages"] == "2"
    ids = [o["id"] for o in first.json() + second.json()]
    assert ids == [*reversed(created), TONY_ORDER, JOHN_ORDER, LUCY_ORDER]


# -- customers -----------------------------------------------------------------------------------


async def test_a_customer_in_kounta_shape(client: httpx.AsyncClient) -> None:
    john = (await client.get(f"{BASE}/customers/{JOHN}")).json()
    assert john == {
        "id": JOHN,
        "first_name": "John",
        "last_name": "Smith",
        "email": "john@example.com",
        "phone": "021 555 0101",
        "mobile": "",
        "reference_id": JOHN_REF,
        "image": "",
        "tags": ["gold"],
        "primary_address": None,
        "shipping_address": None,
        "accepts_marketing": False,
        "created_at": "2026-01-20T09:00:00+00:00",
        "updated_at": "2026-11-01T09:00:00+00:00",
    }
    lucy = (await client.get(f"{BASE}/customers/{LUCY}")).json()
    assert lucy["reference_id"] == ""


@pytest.mark.parametrize("customer_id", ["9999", "abc", "-1"])
async def test_an_unknown_customer_is_404(client: httpx.AsyncClient, customer_id: str) -> None:
    response = await client.get(f"{BASE}/customers/{customer_id}")
    assert (response.status_code, response.json()) == (404, {"error": "Customer not found"})


async def test_reference_id_search_is_always_an_array(client: httpx.AsyncClient) -> None:
    found = await client.get(f"{BASE}/customers", params={"reference_id": JOHN_REF})
    assert found.status_code == 200
    assert [c["id"] for c in found.json()] == [JOHN]
    assert "X-Pages" not in found.headers
    none = await client.get(f"{BASE}/customers", params={"reference_id": "nobody"})
    assert (none.status_code, none.json()) == (200, [])
    await client.put(f"{BASE}/customers/{LUCY}", json={"reference_id": JOHN_REF})
    shared = await client.get(f"{BASE}/customers", params={"reference_id": JOHN_REF})
    assert [c["id"] for c in shared.json()] == [JOHN, LUCY]


async def test_email_search_redirects_to_the_customer(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/customers", params={"email": "TONY@Stark.example"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"{BASE}/customers/{TONY}"
    assert response.content == b""
    followed = await client.get(response.headers["Location"])
    assert followed.json()["email"] == "tony@stark.example"
    missing = await client.get(f"{BASE}/customers", params={"email": "pepper@stark.example"})
    assert (missing.status_code, missing.json()) == (404, {"error": "Customer not found"})


async def test_name_and_phone_search_redirects(client: httpx.AsyncClient) -> None:
    params = {"first_name": "john", "last_name": "SMITH", "phone": "021 555 0101"}
    response = await client.get(f"{BASE}/customers", params=params)
    assert response.status_code == 302
    assert response.headers["Location"] == f"{BASE}/customers/{JOHN}"
    wrong_phone = await client.get(f"{BASE}/customers", params={**params, "phone": "021 555"})
    assert wrong_phone.status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"first_name": "John", "last_name": "Smith"},
        {"phone": "021 555 0101"},
        {"first_name": "John", "last_name": "", "phone": "021 555 0101"},
        {"email": ""},
        {"reference_id": ""},
        {"email": "john@example.com", "reference_id": JOHN_REF},
        {"email": "john@example.com", "first_name": "J", "last_name": "S", "phone": "1"},
    ],
)
async def test_bad_customer_searches_are_400(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get(f"{BASE}/customers", params=params)
    assert response.status_code == 400
    assert "error" in response.json()


async def test_put_changes_every_writable_field(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(60)
    changes = {
        "first_name": "Johnny",
        "last_name": "Smyth",
        "phone": "021 555 0199",
        "email": "johnny@example.com",
        "mobile": "+64 21 555 0101",
        "tags": ["gold", "regular"],
        "image": "https://img.example/johnny.png",
        "primary_address": {"address": "1 Queen St", "city": "Auckland", "country": "NZ"},
        "shipping_address": None,
        "reference_id": "member-42",
        "accepts_marketing": True,
    }
    response = await client.put(f"{BASE}/customers/{JOHN}", json=changes)
    assert response.status_code == 200
    john = response.json()
    assert {k: john[k] for k in changes} == changes
    assert john["updated_at"] == "2026-11-21T10:01:00+00:00"
    assert john["created_at"] == "2026-01-20T09:00:00+00:00"
    assert (await client.get(f"{BASE}/customers/{JOHN}")).json() == john


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"id": JOHN}, "id"),
        ({"first_name": "J", "created_at": NOW}, "created_at"),
        ({"points": 5}, "points"),
        ({"balance": 1, "company": "x"}, "balance, company"),
    ],
)
async def test_put_refuses_fields_that_cannot_change(
    client: httpx.AsyncClient, body: dict[str, Any], named: str
) -> None:
    response = await client.put(f"{BASE}/customers/{JOHN}", json=body)
    assert response.status_code == 400
    assert named in response.json()["error"]
    assert (await client.get(f"{BASE}/customers/{JOHN}")).json()["first_name"] == "John"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": ""}, "first_name"),
        ({"first_name": 5}, "first_name"),
        ({"email": "", "phone": ""}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"tags": "gold"}, "tags"),
        ({"tags": [1]}, "tags"),
        ({"accepts_marketing": "yes"}, "accepts_marketing"),
        ({"primary_address": "1 Queen St"}, "primary_address"),
    ],
)
async def test_put_checks_values(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.put(f"{BASE}/customers/{JOHN}", json=body)
    assert response.status_code == 400
    assert field in response.json()["error"]


async def test_mobile_is_unique_in_the_company(client: httpx.AsyncClient) -> None:
    taken = await client.put(f"{BASE}/customers/{JOHN}", json={"mobile": "+1 555 0100"})
    assert (taken.status_code, taken.json()) == (
        400,
        {"error": "mobile is already used by another customer"},
    )
    new = {"first_name": "Happy", "mobile": "+1 555 0100"}
    assert (await client.post(f"{BASE}/customers", json=new)).status_code == 400
    own = await client.put(f"{BASE}/customers/{TONY}", json={"mobile": "+1 555 0100"})
    assert own.status_code == 200


async def test_post_creates_a_customer(client: httpx.AsyncClient) -> None:
    body = {"first_name": "Pepper", "last_name": "Potts", "mobile": "+1 555 0300"}
    response = await client.post(f"{BASE}/customers", json=body)
    assert response.status_code == 201
    assert response.headers["Location"] == f"{BASE}/customers/3845"
    created = response.json()
    assert created["id"] == 3845
    assert (created["reference_id"], created["email"], created["tags"]) == ("", "", [])
    assert (created["created_at"], created["updated_at"]) == (NOW, NOW)
    assert (await client.get(response.headers["Location"])).json() == created


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"email": "x@example.com"}, "first_name is required"),
        ({"first_name": "Happy"}, "One of email, phone or mobile is required"),
        ({"first_name": "Happy", "last_name": "Hogan"}, "One of email, phone or mobile"),
        ({"id": 1, "first_name": "Happy", "phone": "1"}, "id"),
    ],
)
async def test_post_needs_a_first_name_and_a_contact(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post(f"{BASE}/customers", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


# -- orders --------------------------------------------------------------------------------------


async def test_a_completed_order_in_kounta_shape(client: httpx.AsyncClient) -> None:
    assert await get_order(client, LUCY_ORDER) == {
        "id": LUCY_ORDER,
        "company_id": COMPANY,
        "status": "COMPLETE",
        "sale_number": "1000",
        "notes": "",
        "site_id": SITE,
        "register_id": None,
        "customer_id": LUCY,
        "customer": {
            "id": LUCY,
            "first_name": "Lucy",
            "last_name": "Lavender",
            "email": "lucy@kounta.example",
        },
        "lines": [
            {
                "id": LUCY_LINE,
                "number": 1,
                "product": {"id": SALMON, "name": "Salmon Sandwich"},
                "quantity": 1,
                "unit_price": 9,
                "unit_tax": Decimal("1.35"),
                "price_variation": 1,
                "notes": "",
                "modifiers": [],
                "line_total_ex_tax": 9,
                "line_total_tax": Decimal("1.35"),
            }
        ],
        "payments": [
            {
                "id": LUCY_PAYMENT,
                "method": {"id": CASH, "name": "Cash"},
                "amount": Decimal("10.35"),
                "ref": "",
                "tip": 0,
                "created_at": "2026-11-20T12:31:00+00:00",
            }
        ],
        "price_variation": 1,
        "total": Decimal("10.35"),
        "total_tax": Decimal("1.35"),
        "paid": Decimal("10.35"),
        "placed_at": "2026-11-20T12:30:00+00:00",
        "created_at": "2026-11-20T12:30:00+00:00",
        "updated_at": "2026-11-20T12:31:00+00:00",
    }


async def test_demo_order_totals(client: httpx.AsyncClient) -> None:
    john = await get_order(client, JOHN_ORDER)
    assert (john["status"], john["customer_id"], john["site_id"]) == ("ON_HOLD", JOHN, SITE)
    assert [(ln["number"], ln["product"]["name"], ln["quantity"]) for ln in john["lines"]] == [
        (1, "Caffé Latte", 6),
        (2, "Salmon Sandwich", 1),
    ]
    assert [(ln["line_total_ex_tax"], ln["line_total_tax"]) for ln in john["lines"]] == [
        (24, Decimal("3.6")),
        (9, Decimal("1.35")),
    ]
    assert (john["total"], john["total_tax"], john["paid"]) == (
        Decimal("37.95"),
        Decimal("4.95"),
        0,
    )
    tony = await get_order(client, TONY_ORDER)
    assert (tony["status"], tony["total"], tony["payments"]) == ("SUBMITTED", Decimal("9.2"), [])


async def test_money_is_serialised_as_json_numbers(client: httpx.AsyncClient) -> None:
    raw = (await client.get(f"{BASE}/orders/{JOHN_ORDER}")).text
    assert '"total":37.95' in raw
    assert '"unit_price":4,' in raw
    assert '"line_total_tax":3.6}' in raw


async def test_orders_filter_by_status(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/orders", params={"status": "COMPLETE"})
    assert [o["id"] for o in response.json()] == [LUCY_ORDER]
    bad = await client.get(f"{BASE}/orders", params={"status": "complete"})
    assert bad.status_code == 400


@pytest.mark.parametrize("order_id", ["1", "abc"])
async def test_an_unknown_order_is_404(client: httpx.AsyncClient, order_id: str) -> None:
    for response in (
        await client.get(f"{BASE}/orders/{order_id}"),
        await client.put(f"{BASE}/orders/{order_id}", json={"notes": "x"}),
        await pay(client, int(order_id) if order_id.isdigit() else 1, 1),
    ):
        assert (response.status_code, response.json()) == (404, {"error": "Order not found"})


async def test_create_an_order(client: httpx.AsyncClient) -> None:
    body = {
        "status": "SUBMITTED",
        "customer_id": TONY,
        "notes": "Online order",
        "lines": [
            line(LATTE, 2, notes="Oat milk"),
            {"product": {"id": 9001, "name": "Brownie"}, "quantity": 1, "unit_price": 3.5},
        ],
    }
    response = await client.post(f"{BASE}/orders", json=body)
    assert response.status_code == 201
    order = data(response)
    assert response.headers["Location"] == f"{BASE}/orders/{order['id']}"
    assert order["id"] == LUCY_ORDER + 1
    assert (order["status"], order["site_id"], order["notes"]) == (
        "SUBMITTED",
        SITE,
        "Online order",
    )
    assert order["customer"] == {
        "id": TONY,
        "first_name": "Tony",
        "last_name": "Stark",
        "email": "tony@stark.example",
    }
    brownie = order["lines"][1]
    assert brownie["product"] == {"id": 9001, "name": "Brownie"}
    assert (brownie["unit_tax"], brownie["price_variation"], brownie["notes"]) == (0, 1, "")
    assert order["lines"][0]["product"]["name"] == "Caffé Latte"
    assert (order["total"], order["total_tax"], order["paid"]) == (
        Decimal("12.7"),
        Decimal("1.2"),
        0,
    )
    assert (order["created_at"], order["placed_at"], order["updated_at"]) == (NOW, NOW, NOW)
    assert await get_order(client, order["id"]) == order


async def test_an_order_without_a_customer(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{BASE}/orders", json={"status": "ON_HOLD", "lines": [line()]})
    order = response.json()
    assert (order["customer_id"], order["customer"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"lines": [line()]}, "status must be one of SUBMITTED, ON_HOLD, PENDING"),
        ({"status": "COMPLETE", "lines": [line()]}, "status must be one of"),
        ({"status": "ACCEPTED", "lines": [line()]}, "status must be one of"),
        ({"status": "PENDING"}, "lines must be a non-empty array"),
        ({"status": "PENDING", "lines": []}, "lines must be a non-empty array"),
        ({"status": "PENDING", "lines": [line(quantity=0)]}, "lines[0].quantity must be greater"),
        ({"status": "PENDING", "lines": [line(quantity=-1)]}, "lines[0].quantity"),
        ({"status": "PENDING", "lines": [line(unit_price=-1)]}, "lines[0].unit_price"),
        ({"status": "PENDING", "lines": [line(unit_price="4")]}, "lines[0].unit_price must be a"),
        ({"status": "PENDING", "lines": [{"quantity": 1, "unit_price": 1}]}, "product_id is req"),
        ({"status": "PENDING", "lines": [line(modifiers="shot")]}, "lines[0].modifiers must be"),
        ({"status": "PENDING", "lines": [line(modifiers=[0])]}, "lines[0].modifiers must be"),
        ({"status": "PENDING", "lines": [line()], "customer_id": 1}, "customer_id is not a known"),
        ({"status": "PENDING", "lines": [line()], "customer_id": "3842"}, "customer_id must be"),
        ({"status": "PENDING", "lines": [line()], "site_id": 1}, "site_id is not a known site"),
        ({"status": "PENDING", "lines": [line()], "register_id": 409}, "register_id"),
    ],
)
async def test_create_order_checks_the_body(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post(f"{BASE}/orders", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert len((await client.get(f"{BASE}/orders")).json()) == 3


async def test_put_lines_keeps_ids_and_numbers_and_numbers_new_lines_after(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(30)
    lines = [
        line(SALMON, 2, id=JOHN_SALMON_LINE, price_variation=0.9),
        {"id": JOHN_LATTE_LINE, "product_id": LATTE, "quantity": 1, "unit_price": 4},
        line(LATTE, 1, modifiers=[-67, 12]),
    ]
    response = await put_lines(client, JOHN_ORDER, lines)
    assert response.status_code == 200, response.text
    order = data(response)
    assert [(ln["id"], ln["number"], ln["product"]["name"]) for ln in order["lines"]] == [
        (JOHN_SALMON_LINE, 2, "Salmon Sandwich"),
        (JOHN_LATTE_LINE, 1, "Caffé Latte"),
        (LUCY_LINE + 1, 3, "Caffé Latte"),
    ]
    assert order["lines"][2]["modifiers"] == [-67, 12]
    salmon = order["lines"][0]
    assert (salmon["price_variation"], salmon["line_total_ex_tax"], salmon["line_total_tax"]) == (
        Decimal("0.9"),
        Decimal("16.2"),
        Decimal("2.43"),
    )
    assert (order["total"], order["total_tax"]) == (Decimal("27.23"), Decimal("3.03"))
    assert order["updated_at"] == "2026-11-21T10:00:30+00:00"
    assert order["notes"] == "Take away, gold member"
    assert await get_order(client, JOHN_ORDER) == order


async def test_lines_can_be_put_back_as_they_were_read(client: httpx.AsyncClient) -> None:
    order = await get_order(client, JOHN_ORDER)
    for item in order["lines"]:
        item["price_variation"] = Decimal("0.9")
    body = json.dumps({"lines": order["lines"]}, default=float)
    headers = {"Content-Type": "application/json"}
    response = await client.put(f"{BASE}/orders/{JOHN_ORDER}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    updated = data(response)
    assert [ln["line_total_ex_tax"] for ln in updated["lines"]] == [Decimal("21.6"), Decimal("8.1")]
    assert updated["total"] == Decimal("34.16")


DOC_ORDER = 93824799


def documented_order() -> dict[str, Any]:
    """An order shaped like the one in Kounta's own documentation: lines with ids, numbers
    and modifiers, payments with ids, and no total, tax total or paid."""
    return {
        "id": DOC_ORDER,
        "status": "ON_HOLD",
        "notes": "Take away, gold member",
        "customer_id": LUCY,
        "lines": [
            {"id": 37864193203, "number": 1, "product": {"id": LATTE, "name": "Caffé Latte"},
             "quantity": 6, "notes": "Extra sugar please", "unit_price": Decimal("1.36"),
             "unit_tax": Decimal("0.14"), "modifiers": [-67, 4410]},
            {"id": 37864193204, "number": 2, "product": {"id": SALMON, "name": "Salmon Sandwich"},
             "quantity": 1, "price_variation": Decimal("0.9"), "unit_price": Decimal("9.09"),
             "unit_tax": Decimal("0.91")},
        ],
        "payments": [
            {"id": 19230990, "method": {"id": CASH, "name": "Cash"}, "amount": Decimal("5.5")},
        ],
        "omit_fields": ["total", "total_tax", "paid"],
    }  # fmt: skip


def with_documented_order(**changes: Any) -> dict[str, Any]:
    fixtures = demo()
    fixtures["orders"].append({**documented_order(), **changes})
    return fixtures


def as_json(body: Any) -> str:
    """Decimals as the JSON numbers they spell (a float's repr is its shortest decimal)."""
    return json.dumps(body, default=float)


async def reset_to(client: httpx.AsyncClient, fixtures: dict[str, Any]) -> httpx.Response:
    return await client.post("/_sandbox/reset", content=as_json(fixtures))


async def put_back(client: httpx.AsyncClient, order_id: int, lines: list[Any]) -> httpx.Response:
    """PUT lines as a client writing back what it read sends them."""
    headers = {"Content-Type": "application/json"}
    content = as_json({"lines": lines})
    return await client.put(f"{BASE}/orders/{order_id}", content=content, headers=headers)


async def test_an_order_as_documented_keeps_line_ids_numbers_and_modifiers(
    client: httpx.AsyncClient,
) -> None:
    reset = await reset_to(client, with_documented_order())
    assert reset.status_code == 200, reset.text
    order = await get_order(client, DOC_ORDER)
    assert "total" not in order and "paid" not in order and "total_tax" not in order
    assert [(ln["id"], ln["number"], ln["modifiers"]) for ln in order["lines"]] == [
        (37864193203, 1, [-67, 4410]),
        (37864193204, 2, []),
    ]
    assert order["payments"][0]["id"] == 19230990
    for item in order["lines"]:
        item["price_variation"] = Decimal("0.9")
    response = await put_back(client, DOC_ORDER, order["lines"])
    assert response.status_code == 200, response.text
    after = await get_order(client, DOC_ORDER)
    assert [(ln["id"], ln["number"], ln["modifiers"]) for ln in after["lines"]] == [
        (37864193203, 1, [-67, 4410]),
        (37864193204, 2, []),
    ]
    assert [ln["price_variation"] for ln in after["lines"]] == [Decimal("0.9")] * 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("leave out the second line", "lines must keep every line of the order: line id 3786419"),
        ("drop the ids", "lines must keep every line of the order"),
        ("drop the modifiers", "lines[0].modifiers left out"),
        ("alter the modifiers", "lines[0].modifiers cannot change"),
        ("empty the modifiers", "lines[0].modifiers cannot change"),
        ("renumber", "lines[0].number cannot change"),
        ("a foreign id", "lines[0].id 1 is not a line of this order"),
        ("the same id twice", "lines[1].id 37864193203 appears twice"),
    ],
)
async def test_a_put_that_would_lose_a_line_its_id_or_its_modifiers_is_refused(
    client: httpx.AsyncClient, change: str, message: str
) -> None:
    assert (await reset_to(client, with_documented_order())).status_code == 200
    before = await get_order(client, DOC_ORDER)
    lines = copy.deepcopy(before["lines"])
    first = lines[0]
    if change == "leave out the second line":
        del lines[1]
    elif change == "drop the ids":
        lines = [{k: v for k, v in ln.items() if k not in ("id", "number")} for ln in lines]
    elif change == "drop the modifiers":
        del first["modifiers"]
    elif change == "alter the modifiers":
        first["modifiers"] = [-67]
    elif change == "empty the modifiers":
        first["modifiers"] = []
    elif change == "renumber":
        first["number"] = 3
    elif change == "a foreign id":
        first["id"] = 1
    elif change == "the same id twice":
        lines[1]["id"] = first["id"]
    response = await put_back(client, DOC_ORDER, lines)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert await get_order(client, DOC_ORDER) == before


async def test_an_order_wide_price_variation_discounts_every_line(
    client: httpx.AsyncClient,
) -> None:
    fixtures = demo()
    fixtures["orders"][0]["price_variation"] = Decimal("0.9")
    assert (await reset_to(client, fixtures)).status_code == 200
    order = await get_order(client, JOHN_ORDER)
    assert order["price_variation"] == Decimal("0.9")
    assert [(ln["line_total_ex_tax"], ln["line_total_tax"]) for ln in order["lines"]] == [
        (Decimal("21.6"), Decimal("3.24")),
        (Decimal("8.1"), Decimal("1.22")),
    ]
    assert (order["total"], order["total_tax"]) == (Decimal("34.16"), Decimal("4.46"))
    over = await pay(client, JOHN_ORDER, 34.17)
    assert over.json() == {"error": "Payment exceeds the amount owing"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"omit_fields": ["lines"]}, "omit_fields may name only"),
        ({"omit_fields": "total"}, "omit_fields must be an array"),
        ({"price_variation": 0}, "price_variation must be greater than 0"),
        ({"lines": [{"product_id": 1, "quantity": 1, "unit_price": 1, "modifiers": [1.5]}]},
         "lines[0].modifiers must be"),
        ({"lines": [{"id": 7, "product_id": 1, "quantity": 1, "unit_price": 1},
                    {"id": 7, "product_id": 1, "quantity": 1, "unit_price": 1}]},
         "lines[1].id must be a positive integer no other line has"),
        ({"lines": [{"number": 2, "product_id": 1, "quantity": 1, "unit_price": 1},
                    {"number": 2, "product_id": 1, "quantity": 1, "unit_price": 1}]},
         "lines[1].number must be a positive integer unique"),
    ],
)  # fmt: skip
async def test_fixture_orders_are_checked_too(
    client: httpx.AsyncClient, changes: dict[str, Any], message: str
) -> None:
    response = await reset_to(client, with_documented_order(**changes))
    assert response.status_code == 400
    assert message in response.json()["details"]


async def test_line_totals_round_half_up_to_cents(client: httpx.AsyncClient) -> None:
    lines = [
        {"product_id": 1, "quantity": 1, "unit_price": 1.005, "unit_tax": 0.125},
        {
            "product_id": 2,
            "quantity": 3,
            "unit_price": 1.115,
            "unit_tax": 0.0167,
            "price_variation": 0.9,
        },
        {"product_id": 3, "quantity": 0.5, "unit_price": 2.675},
    ]
    order = data(await client.post(f"{BASE}/orders", json={"status": "PENDING", "lines": lines}))
    totals = [(ln["line_total_ex_tax"], ln["line_total_tax"]) for ln in order["lines"]]
    assert totals == [
        (Decimal("1.01"), Decimal("0.13")),
        (Decimal("3.01"), Decimal("0.05")),
        (Decimal("1.34"), 0),
    ]
    assert order["total_tax"] == Decimal("0.18")
    assert order["total"] == Decimal("5.54")


@pytest.mark.parametrize(
    ("variation", "status"), [(0, 400), (-0.5, 400), (10.01, 400), (10, 200), (0.01, 200)]
)
async def test_price_variation_is_a_multiplier_up_to_10(
    client: httpx.AsyncClient, variation: float, status: int
) -> None:
    response = await put_lines(client, TONY_ORDER, [line(id=TONY_LINE, price_variation=variation)])
    assert response.status_code == status
    if status == 400:
        assert "price_variation" in response.json()["error"]


async def test_put_notes_and_status(client: httpx.AsyncClient) -> None:
    response = await client.put(
        f"{BASE}/orders/{TONY_ORDER}", json={"status": "ACCEPTED", "notes": "Ready at 10"}
    )
    order = response.json()
    assert (order["status"], order["notes"], len(order["lines"])) == ("ACCEPTED", "Ready at 10", 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "COMPLETE"}, "status COMPLETE is set by the POS"),
        ({"status": "DONE"}, "status must be one of"),
        ({"customer_id": LUCY}, "customer_id"),
        ({"price_variation": 0.9}, "price_variation"),
        ({"lines": "none"}, "lines must be a non-empty array"),
        ({"lines": [line(), "x"]}, "lines[1] must be an object"),
        ({"lines": [line(product={"id": 1})]}, "lines[0].product.id does not match"),
        ({"notes": 5}, "notes must be a string"),
    ],
)
async def test_put_order_checks_the_body(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    before = await get_order(client, JOHN_ORDER)
    response = await client.put(f"{BASE}/orders/{JOHN_ORDER}", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert await get_order(client, JOHN_ORDER) == before


async def test_a_product_id_inside_product_is_enough(client: httpx.AsyncClient) -> None:
    lines = [{"product": {"id": SALMON}, "quantity": 1, "unit_price": 9}]
    order = (await client.post(f"{BASE}/orders", json={"status": "PENDING", "lines": lines})).json()
    assert order["lines"][0]["product"] == {"id": SALMON, "name": "Salmon Sandwich"}


async def test_closed_orders_cannot_change(client: httpx.AsyncClient) -> None:
    complete_put = await client.put(f"{BASE}/orders/{LUCY_ORDER}", json={"notes": "x"})
    assert (complete_put.status_code, complete_put.json()) == (400, {"error": "Order is complete"})
    await client.put(f"{BASE}/orders/{TONY_ORDER}", json={"status": "REJECTED"})
    rejected_put = await put_lines(client, TONY_ORDER, [line()])
    assert (rejected_put.status_code, rejected_put.json()) == (400, {"error": "Order is rejected"})


async def test_lines_cannot_total_less_than_was_paid(client: httpx.AsyncClient) -> None:
    assert (await pay(client, JOHN_ORDER, 30)).status_code == 201
    salmon = line(SALMON, 1, id=JOHN_SALMON_LINE)  # 10.35
    response = await put_lines(client, JOHN_ORDER, [line(LATTE, 1, id=JOHN_LATTE_LINE), salmon])
    assert response.status_code == 400
    assert response.json() == {"error": "Order total would be less than the amount paid"}
    latte = line(LATTE, 1, id=JOHN_LATTE_LINE, unit_price=19.65, unit_tax=0)
    exact = await put_lines(client, JOHN_ORDER, [latte, salmon])
    assert exact.status_code == 200


# -- payments ------------------------------------------------------------------------------------


async def test_a_payment_is_201_with_an_empty_body_and_a_location(
    client: httpx.AsyncClient,
) -> None:
    response = await pay(client, JOHN_ORDER, 5.25, method_id=POINTS, ref="redemption-1")
    assert response.status_code == 201
    assert response.content == b""
    assert response.headers["Location"] == f"{BASE}/orders/{JOHN_ORDER}/payments/1"
    order = await get_order(client, JOHN_ORDER)
    assert order["payments"] == [
        {
            "id": LUCY_PAYMENT + 1,
            "method": {"id": POINTS, "name": "Loyalty Points"},
            "amount": Decimal("5.25"),
            "ref": "redemption-1",
            "tip": 0,
            "created_at": NOW,
        }
    ]
    assert order["paid"] == Decimal("5.25")
    second = await pay(client, JOHN_ORDER, 1)
    assert second.headers["Location"].endswith("/payments/2")


async def test_payments_up_to_what_is_owed_then_refunds(client: httpx.AsyncClient) -> None:
    over = await pay(client, TONY_ORDER, 9.21)
    assert (over.status_code, over.json()) == (400, {"error": "Payment exceeds the amount owing"})
    assert (await pay(client, TONY_ORDER, 5, method_id=CARD)).status_code == 201
    assert (await pay(client, TONY_ORDER, 4.21)).status_code == 400
    assert (await pay(client, TONY_ORDER, 4.2)).status_code == 201
    assert (await pay(client, TONY_ORDER, 0.01)).status_code == 400
    too_much = await pay(client, TONY_ORDER, -9.21)
    assert (too_much.status_code, too_much.json()) == (
        400,
        {"error": "amount -9.21 refunds more than the 9.20 paid"},
    )
    refund = await pay(client, TONY_ORDER, -2)
    assert refund.headers["Location"].endswith("/payments/3")
    order = await get_order(client, TONY_ORDER)
    assert [p["amount"] for p in order["payments"]] == [5, Decimal("4.2"), -2]
    assert order["paid"] == Decimal("7.2")


async def test_a_refund_needs_something_paid(client: httpx.AsyncClient) -> None:
    response = await pay(client, JOHN_ORDER, -1)
    assert response.json() == {"error": "amount -1.00 refunds more than the 0.00 paid"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"amount": 1}, "method_id must be an integer"),
        ({"method_id": "1", "amount": 1}, "method_id must be an integer"),
        ({"method_id": 99, "amount": 1}, "method_id is not a known payment method"),
        ({"method_id": 1}, "amount is required"),
        ({"method_id": 1, "amount": 0}, "amount must not be 0"),
        ({"method_id": 1, "amount": "5"}, "amount must be a number"),
        ({"method_id": 1, "amount": True}, "amount must be a number"),
        ({"method_id": 1, "amount": 1.005}, "amount must have at most 2 decimal places"),
        ({"method_id": 1, "amount": 1e12}, "amount must be less than"),
        ({"method_id": 1, "amount": 1, "ref": 5}, "ref must be a string"),
        ({"method_id": 1, "amount": 1, "tip": -1}, "tip must be 0 or more"),
        ({"method_id": 1, "amount": 1, "number": 1}, "number"),
    ],
)
async def test_payment_bodies_are_checked(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post(f"{BASE}/orders/{JOHN_ORDER}/payments", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert (await get_order(client, JOHN_ORDER))["payments"] == []


async def test_closed_orders_take_no_payments(client: httpx.AsyncClient) -> None:
    complete_pay = await pay(client, LUCY_ORDER, 1)
    assert (complete_pay.status_code, complete_pay.json()) == (400, {"error": "Order is complete"})
    await client.put(f"{BASE}/orders/{TONY_ORDER}", json={"status": "REJECTED"})
    rejected_pay = await pay(client, TONY_ORDER, 1)
    assert rejected_pay.json() == {"error": "Order is rejected"}


async def test_put_a_payment_sets_ref_and_tip(client: httpx.AsyncClient) -> None:
    location = (await pay(client, JOHN_ORDER, 10)).headers["Location"]
    response = await client.put(location, json={"ref": "INV2-8M9F", "tip": 1.5})
    assert response.status_code == 200
    assert data(response) == {
        "id": LUCY_PAYMENT + 1,
        "method": {"id": CASH, "name": "Cash"},
        "amount": 10,
        "ref": "INV2-8M9F",
        "tip": Decimal("1.5"),
        "created_at": NOW,
    }
    order = await get_order(client, JOHN_ORDER)
    assert (order["payments"][0]["ref"], order["paid"]) == ("INV2-8M9F", 10)
    amount = await client.put(location, json={"amount": 20})
    assert amount.status_code == 400
    assert "amount" in amount.json()["error"]


@pytest.mark.parametrize("number", ["2", "0", "x"])
async def test_put_an_unknown_payment_is_404(client: httpx.AsyncClient, number: str) -> None:
    await pay(client, JOHN_ORDER, 10)
    path = f"{BASE}/orders/{JOHN_ORDER}/payments/{number}"
    response = await client.put(path, json={"ref": "x"})
    assert (response.status_code, response.json()) == (404, {"error": "Payment not found"})


async def test_a_payment_cannot_be_read_or_deleted(client: httpx.AsyncClient) -> None:
    location = (await pay(client, JOHN_ORDER, 10)).headers["Location"]
    for method in ("GET", "DELETE"):
        response = await client.request(method, location)
        assert (response.status_code, response.json()) == (405, {"error": "Method Not Allowed"})


# -- webhooks ------------------------------------------------------------------------------------


async def test_create_a_webhook(client: httpx.AsyncClient) -> None:
    body = {
        "topic": "orders/completed",
        "address": HOOK,
        "format": "json",
        "headers": {"Authorization": "secret-1"},
    }
    response = await client.post(f"{BASE}/webhooks", json=body)
    assert response.status_code == 201
    webhook = response.json()
    assert webhook == {"id": 1, **body, "filter": {}}
    assert response.headers["Location"] == f"{BASE}/webhooks/1"
    assert (await client.get(response.headers["Location"])).json() == webhook
    minimal = await add_webhook(client, topic="customers/updated")
    assert (minimal["id"], minimal["format"], minimal["headers"], minimal["filter"]) == (
        2,
        "json",
        {},
        {},
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"topic": "orders/cancelled", "address": HOOK}, "topic"),
        ({"address": HOOK}, "topic"),
        ({"topic": "orders/completed"}, "address"),
        ({"topic": "orders/completed", "address": "ftp://gw.example/x"}, "address"),
        ({"topic": "orders/completed", "address": "gw.example/x"}, "address"),
        ({"topic": "orders/completed", "address": "http://"}, "address"),
        ({"topic": "orders/completed", "address": "http://[::1"}, "address"),
        ({"topic": "orders/completed", "address": HOOK, "format": "xml"}, "format"),
        ({"topic": "orders/completed", "address": HOOK, "headers": "x"}, "headers"),
        ({"topic": "orders/completed", "address": HOOK, "headers": {"A": 5}}, "headers.A"),
        ({"topic": "orders/completed", "address": HOOK, "headers": {"A B": "x"}}, "headers.A B"),
        ({"topic": "orders/completed", "address": HOOK, "headers": {"A": "x\r\ny"}}, "headers.A"),
        ({"topic": "orders/completed", "address": HOOK, "filter": []}, "filter"),
        ({"topic": "orders/completed", "address": HOOK, "id": 7}, "id"),
    ],
)
async def test_webhook_bodies_are_checked(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post(f"{BASE}/webhooks", json=body)
    assert response.status_code == 400
    assert field in response.json()["error"]


async def test_the_same_topic_and_address_twice_is_409(client: httpx.AsyncClient) -> None:
    await add_webhook(client)
    again = await client.post(
        f"{BASE}/webhooks",
        json={"topic": "orders/completed", "address": HOOK, "headers": {"X": "y"}},
    )
    assert (again.status_code, again.json()) == (409, {"error": "Webhook already exists"})
    await add_webhook(client, topic="orders/updated")
    other = await add_webhook(client, address=f"{HOOK}/2")
    moved = await client.put(f"{BASE}/webhooks/{other['id']}", json={"address": HOOK})
    assert moved.status_code == 409


async def test_list_update_and_delete_webhooks(client: httpx.AsyncClient) -> None:
    first = await add_webhook(client, headers={"Authorization": "old"})
    second = await add_webhook(client, topic="customers/created")
    listed = await client.get(f"{BASE}/webhooks")
    assert (listed.json(), listed.headers["X-Pages"]) == ([first, second], "1")
    path = f"{BASE}/webhooks/{first['id']}"
    changes = {
        "address": "https://gw2.example/hook",
        "headers": {"Authorization": "new"},
        "filter": {"site_id": SITE},
    }
    updated = await client.put(path, json=changes)
    assert updated.status_code == 200
    assert updated.json() == {**first, **changes}
    refused = await client.put(path, json={"topic": "orders/created"})
    assert refused.status_code == 400
    assert "topic" in refused.json()["error"]
    deleted = await client.delete(path)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert [w["id"] for w in (await client.get(f"{BASE}/webhooks")).json()] == [second["id"]]
    for response in (
        await client.get(path),
        await client.put(path, json={"headers": {}}),
        await client.delete(path),
    ):
        assert (response.status_code, response.json()) == (404, {"error": "Webhook not found"})


async def test_webhooks_page_too(client: httpx.AsyncClient) -> None:
    for i in range(26):
        await add_webhook(client, address=f"{HOOK}/{i}")
    second = await client.get(f"{BASE}/webhooks", headers={"X-Page": "1"})
    assert (second.headers["X-Pages"], [w["id"] for w in second.json()]) == ("2", [26])


# -- completion and webhook delivery ------------------------------------------------------------


async def test_completion_delivers_the_order_with_the_registered_headers(
    client: httpx.AsyncClient, deliveries: Deliveries, clock: FakeClock
) -> None:
    hook = await add_webhook(client, headers={"Authorization": "per-merchant-secret"})
    await add_webhook(client, topic="orders/created", address="https://other.example/created")
    clock.advance(120)
    response = await complete(client, JOHN_ORDER)
    assert response.status_code == 200
    result = data(response)
    order = await get_order(client, JOHN_ORDER)
    assert order["status"] == "COMPLETE"
    assert order["updated_at"] == "2026-11-21T10:02:00+00:00"
    assert result == {
        "order": order,
        "deliveries": [
            {
                "webhook_id": hook["id"],
                "topic": "orders/completed",
                "address": HOOK,
                "status": 200,
                "error": None,
            }
        ],
    }
    [(address, headers, body)] = deliveries.calls
    assert address == HOOK
    assert headers == {"Authorization": "per-merchant-secret", "Content-Type": "application/json"}
    assert body == (await client.get(f"{BASE}/orders/{JOHN_ORDER}")).content


async def test_completion_delivers_n_times_to_every_subscriber(
    client: httpx.AsyncClient, deliveries: Deliveries
) -> None:
    first = await add_webhook(client)
    second = await add_webhook(client, address=f"{HOOK}/2", headers={"content-type": "text/xml"})
    result = (await complete(client, TONY_ORDER, deliveries=3)).json()
    assert [d["webhook_id"] for d in result["deliveries"]] == [first["id"], second["id"]] * 3
    assert [call[0] for call in deliveries.calls] == [HOOK, f"{HOOK}/2"] * 3
    assert all(call[1] == {"Content-Type": "application/json"} for call in deliveries.calls)
    assert len({call[2] for call in deliveries.calls}) == 1


async def test_concurrent_deliveries_are_in_flight_together(clock: FakeClock) -> None:
    arrived: list[str] = []
    everyone_in = asyncio.Event()

    async def gate(address: str, headers: Mapping[str, str], body: bytes) -> int:
        arrived.append(address)
        if len(arrived) == 4:
            everyone_in.set()
        # Only concurrent deliveries can all arrive; one at a time would time out here.
        await asyncio.wait_for(everyone_in.wait(), timeout=5)
        return 202

    async with connect(create_app(token=TOKEN, clock=clock, deliver=gate)) as client:
        await add_webhook(client)
        result = (await complete(client, JOHN_ORDER, deliveries=4, concurrent=True)).json()
    assert [d["status"] for d in result["deliveries"]] == [202] * 4
    assert [d["error"] for d in result["deliveries"]] == [None] * 4


async def test_sequential_deliveries_run_one_after_another(clock: FakeClock) -> None:
    in_flight, most = 0, 0

    async def one_at_a_time(address: str, headers: Mapping[str, str], body: bytes) -> int:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)  # a yield point, where a concurrent delivery would overlap
        in_flight -= 1
        return 200

    async with connect(create_app(token=TOKEN, clock=clock, deliver=one_at_a_time)) as client:
        await add_webhook(client)
        result = (await complete(client, JOHN_ORDER, deliveries=3)).json()
    assert len(result["deliveries"]) == 3
    assert most == 1


async def test_failed_deliveries_are_reported_not_raised(
    client: httpx.AsyncClient, deliveries: Deliveries
) -> None:
    await add_webhook(client)
    deliveries.error = httpx.ConnectError("Connection refused")
    refused = (await complete(client, JOHN_ORDER)).json()["deliveries"]
    assert refused == [
        {
            "webhook_id": 1,
            "topic": "orders/completed",
            "address": HOOK,
            "status": None,
            "error": "ConnectError: Connection refused",
        }
    ]
    deliveries.error, deliveries.status = None, 500
    failed = (await complete(client, JOHN_ORDER)).json()["deliveries"]
    assert (failed[0]["status"], failed[0]["error"]) == (500, None)


async def test_completing_a_complete_order_only_redelivers(
    client: httpx.AsyncClient, deliveries: Deliveries, clock: FakeClock
) -> None:
    await add_webhook(client)
    before = await get_order(client, LUCY_ORDER)
    clock.advance(60)
    result = data(await complete(client, LUCY_ORDER, deliveries=2))
    assert result["order"] == before
    assert len(deliveries.calls) == 2


async def test_a_completed_order_is_closed(client: httpx.AsyncClient) -> None:
    await complete(client, JOHN_ORDER, deliveries=0)
    assert (await pay(client, JOHN_ORDER, 1)).json() == {"error": "Order is complete"}


async def test_completion_without_subscribers_or_with_zero_deliveries(
    client: httpx.AsyncClient, deliveries: Deliveries
) -> None:
    assert (await complete(client, JOHN_ORDER)).json()["deliveries"] == []
    await add_webhook(client)
    assert (await complete(client, JOHN_ORDER, deliveries=0)).json()["deliveries"] == []
    assert deliveries.calls == []


@pytest.mark.parametrize(
    ("order_id", "body", "status", "message"),
    [
        (TONY_ORDER, {"deliveries": -1}, 400, "deliveries"),
        (TONY_ORDER, {"deliveries": "2"}, 400, "deliveries"),
        (TONY_ORDER, {"concurrent": "yes"}, 400, "concurrent"),
        (TONY_ORDER, {"times": 2}, 400, "times"),
        (1, {}, 404, "Order not found"),
    ],
)
async def test_completion_checks_its_request(
    client: httpx.AsyncClient, order_id: int, body: dict[str, Any], status: int, message: str
) -> None:
    response = await client.post(f"/_sandbox/orders/{order_id}/complete", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert (await get_order(client, TONY_ORDER))["status"] == "SUBMITTED"


async def test_a_rejected_order_cannot_be_completed(client: httpx.AsyncClient) -> None:
    await client.put(f"{BASE}/orders/{TONY_ORDER}", json={"status": "REJECTED"})
    response = await complete(client, TONY_ORDER)
    assert (response.status_code, response.json()) == (400, {"error": "Order is rejected"})


async def test_the_default_deliverer_posts_over_http() -> None:
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        received.append(head + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        status = await deliver_over_http(
            f"http://127.0.0.1:{port}/hook", {"Authorization": "s3cret"}, b'{"id":1}'
        )
    assert status == 202
    [request] = received
    assert request.startswith(b"POST /hook HTTP/1.1\r\n")
    assert b"authorization: s3cret" in request.lower()
    assert request.endswith(b'\r\n\r\n{"id":1}')


async def test_the_default_deliverer_reports_a_refused_connection(clock: FakeClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with connect(create_app(token=TOKEN, clock=clock)) as client:
        await add_webhook(client, address=f"http://127.0.0.1:{port}/hook")
        [delivery] = (await complete(client, JOHN_ORDER)).json()["deliveries"]
    assert delivery["status"] is None
    assert delivery["error"].startswith("ConnectError")


# -- the shared controls -------------------------------------------------------------------------


async def test_injected_faults_hit_kounta_routes(client: httpx.AsyncClient) -> None:
    armed = await client.post(
        "/_sandbox/faults", json={"status": 503, "fail_next": 1, "path": f"{BASE}/orders"}
    )
    assert armed.status_code == 200
    failed = await client.get(f"{BASE}/orders/{JOHN_ORDER}.json")
    assert failed.status_code == 503
    assert "error" in failed.json()
    assert (await client.get(f"{BASE}/orders/{JOHN_ORDER}")).status_code == 200


async def test_an_after_fault_lands_the_payment_but_loses_the_answer(
    client: httpx.AsyncClient,
) -> None:
    await client.post(
        "/_sandbox/faults",
        json={"status": 502, "fail_next": 1, "after": True, "method": "POST", "path": BASE},
    )
    lost = await pay(client, JOHN_ORDER, 10)
    assert lost.status_code == 502
    assert (await get_order(client, JOHN_ORDER))["paid"] == 10


async def test_the_default_rate_budget_is_300_a_minute(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    for _ in range(300):
        response = await client.get("/v1/companies/me")
        assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "300"
    limited = await client.get("/v1/companies/me")
    assert limited.status_code == 429
    retry_at = parsedate_to_datetime(limited.headers["Retry-After"]).timestamp()
    assert retry_at == START + 60
    clock.advance(60)
    assert (await client.get("/v1/companies/me")).status_code == 200


async def test_latency_delays_api_requests_only(clock: FakeClock, sleeps: RecordingSleep) -> None:
    async with connect(
        create_app(token=TOKEN, latency_ms=250, clock=clock, sleep=sleeps)
    ) as client:
        await client.get("/v1/companies/me")
        await refresh(client, DEMO_REFRESH)
        await client.post("/_sandbox/oauth/issue")
        await complete(client, JOHN_ORDER)
    assert sleeps.calls == [0.25, 0.25]


async def test_stats_count_route_templates_and_not_the_sandbox_routes(
    client: httpx.AsyncClient,
) -> None:
    await client.get(f"{BASE}/customers/{JOHN}")
    await client.get(f"{BASE}/customers/{TONY}")
    await pay(client, JOHN_ORDER, 1)
    await client.put(f"{BASE}/orders/{JOHN_ORDER}/payments/1", json={"ref": "x"})
    await client.get(f"{BASE}/orders/{JOHN_ORDER}/payments/1")
    await complete(client, JOHN_ORDER)
    await client.post("/_sandbox/oauth/issue")
    counted = await stats(client)
    assert counted["total"] == 5
    assert counted["requests"] == {
        "GET /v1/companies/{company_id}/customers/{customer_id}": 2,
        "POST /v1/companies/{company_id}/orders/{order_id}/payments": 1,
        "PUT /v1/companies/{company_id}/orders/{order_id}/payments/{number}": 1,
        "GET /v1/companies/{company_id}/orders/{order_id}/payments/{number}": 1,
    }
    refused = "GET /v1/companies/{company_id}/orders/{order_id}/payments/{number} 405"
    assert counted["responses"][refused] == 1


async def test_reset_forgets_tokens_webhooks_and_changes(client: httpx.AsyncClient) -> None:
    issued = await issue(client)
    pair = (await refresh(client, DEMO_REFRESH)).json()
    await add_webhook(client)
    await client.post(f"{BASE}/customers", json={"first_name": "Happy", "phone": "1"})
    await pay(client, JOHN_ORDER, 5)
    await client.post("/_sandbox/oauth/expire")
    assert (await client.post("/_sandbox/reset")).json() == {"reset": "startup"}
    for token in (issued["access_token"], pair["access_token"]):
        refused = await client.get("/v1/companies/me", headers=bearer(token))
        assert refused.json() == {"error": "invalid_token"}
    assert (await refresh(client, pair["refresh_token"])).status_code == 400
    assert (await client.get("/v1/companies/me", headers=bearer(DEMO_ACCESS))).status_code == 200
    assert (await refresh(client, DEMO_REFRESH)).status_code == 200
    assert (await client.get(f"{BASE}/webhooks")).json() == []
    assert (await client.get(f"{BASE}/customers/3845")).status_code == 404
    assert (await get_order(client, JOHN_ORDER))["payments"] == []


async def test_reset_with_fixtures_keeps_their_webhooks_and_tokens(
    client: httpx.AsyncClient, deliveries: Deliveries
) -> None:
    fixtures = demo()
    fixtures["webhooks"] = [
        {"id": 40, "topic": "orders/completed", "address": HOOK, "headers": {"Authorization": "k"}}
    ]
    fixtures["tokens"] = [{"access_token": "a2", "refresh_token": "r2", "expires_in": 60}]
    assert (await client.post("/_sandbox/reset", json=fixtures)).json() == {"reset": "body"}
    assert (await client.get("/v1/companies/me", headers=bearer("a2"))).status_code == 200
    demo_token = await client.get("/v1/companies/me", headers=bearer(DEMO_ACCESS))
    assert demo_token.status_code == 401
    created = await add_webhook(client, topic="orders/updated")
    assert created["id"] == 41
    await complete(client, JOHN_ORDER)
    assert deliveries.calls[0][1]["Authorization"] == "k"
    await client.post("/_sandbox/reset", json=fixtures)
    assert [w["id"] for w in (await client.get(f"{BASE}/webhooks")).json()] == [40]


async def test_reset_with_bad_fixtures_is_400_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await add_webhook(client)
    fixtures = demo()
    fixtures["orders"][0]["customer_id"] = 1
    response = await client.post("/_sandbox/reset", json=fixtures)
    assert response.status_code == 400
    assert "customer_id is not a known customer" in response.json()["details"]
    assert len((await client.get(f"{BASE}/webhooks")).json()) == 1


# -- fixtures ------------------------------------------------------------------------------------


def test_load_fixtures_reads_the_demo() -> None:
    fixtures = load_fixtures(DEMO_FIXTURES)
    assert fixtures["company"]["id"] == COMPANY
    assert [c["id"] for c in fixtures["customers"]] == [JOHN, LUCY, TONY]
    assert fixtures["customers"][2]["reference_id"] == TONY_REF
    assert [o["id"] for o in fixtures["orders"]] == [JOHN_ORDER, TONY_ORDER, LUCY_ORDER]
    assert fixtures["orders"][2]["payments"][0]["amount"] == Decimal("10.35")


def _mutate(fixtures: dict[str, Any], change: str) -> None:
    """Each change breaks the demo fixtures in one way."""
    if change == "unknown key":
        fixtures["products"] = []
    elif change == "company":
        del fixtures["company"]["id"]
    elif change == "string id":
        fixtures["customers"][0]["id"] = "3842"
    elif change == "repeated id":
        fixtures["customers"][1]["id"] = JOHN
    elif change == "unknown customer":
        fixtures["orders"][0]["customer_id"] = 1
    elif change == "status":
        fixtures["orders"][0]["status"] = "OPEN"
    elif change == "quantity":
        fixtures["orders"][0]["lines"][0]["quantity"] = 0
    elif change == "payment method":
        fixtures["orders"][2]["payments"][0]["method_id"] = 99
    elif change == "token":
        del fixtures["tokens"][0]["refresh_token"]
    elif change == "mobile":
        fixtures["customers"][0]["mobile"] = "+1 555 0100"
    elif change == "webhook":
        hook = {"topic": "orders/completed", "address": HOOK}
        fixtures["webhooks"] = [{"id": 1, **hook}, {"id": 2, **hook}]
    elif change == "time":
        fixtures["customers"][0]["created_at"] = "yesterday"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("unknown key", "unknown fixture keys: products"),
        ("company", "company must be an object with an integer id"),
        ("string id", "customers[0] must be an object with a positive integer id"),
        ("repeated id", "customers[1] repeats the id 3842"),
        ("unknown customer", "orders 93824701: customer_id is not a known customer"),
        ("status", "orders 93824701: status must be one of"),
        ("quantity", "orders 93824701: lines[0].quantity must be greater than 0"),
        ("payment method", "orders 93824703: payments[0].method_id is not a known"),
        ("token", "tokens: [0].refresh_token must be a non-empty string"),
        ("mobile", "customers 3844: mobile is already used"),
        ("webhook", "webhooks 2: Webhook already exists"),
        ("time", "customers 3842: created_at must be an ISO 8601 date-time"),
    ],
)
def test_bad_fixture_files_say_what_is_wrong(tmp_path: Path, change: str, message: str) -> None:
    fixtures = demo()
    _mutate(fixtures, change)
    path = tmp_path / "kounta.json"
    path.write_text(json.dumps(fixtures))
    with pytest.raises(FixtureError) as raised:
        load_fixtures(path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


def test_unreadable_fixture_files(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="cannot read"):
        load_fixtures(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(FixtureError, match="not valid JSON"):
        load_fixtures(broken)
    with pytest.raises(FixtureError, match="must be a JSON object"):
        create_app([])  # type: ignore[arg-type]


async def test_fixtures_given_as_python_objects_with_floats(clock: FakeClock) -> None:
    fixtures = copy.deepcopy(demo())
    fixtures["orders"][0]["lines"][0]["unit_price"] = 4.1
    async with connect(create_app(fixtures, token=TOKEN, clock=clock)) as client:
        order = await get_order(client, JOHN_ORDER)
    assert order["lines"][0]["line_total_ex_tax"] == Decimal("24.6")


async def test_the_default_fixtures_are_the_demo() -> None:
    async with connect(create_app(), token=DEMO_ACCESS) as client:
        assert (await client.get("/v1/companies/me")).json()["name"] == "Stark Café"


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
FUZZ_TARGETS = [
    ("PUT", f"{BASE}/orders/{JOHN_ORDER}", "lines", True),
    ("PUT", f"{BASE}/orders/{JOHN_ORDER}", "status", False),
    ("POST", f"{BASE}/orders", "lines", True),
    ("POST", f"{BASE}/orders/{JOHN_ORDER}/payments", "amount", False),
    ("POST", f"{BASE}/orders/{JOHN_ORDER}/payments", "tip", False),
    ("PUT", f"{BASE}/customers/{JOHN}", "tags", False),
    ("PUT", f"{BASE}/customers/{JOHN}", "mobile", False),
    ("POST", f"{BASE}/webhooks", "headers", False),
    ("POST", f"{BASE}/webhooks", "address", False),
]
VALID_BODIES = {
    f"{BASE}/orders": {"status": "PENDING", "lines": [line()]},
    f"{BASE}/orders/{JOHN_ORDER}/payments": {"method_id": CASH, "amount": 1},
    f"{BASE}/webhooks": {"topic": "orders/completed", "address": HOOK},
}


@settings(max_examples=300, deadline=None)
@given(target=st.sampled_from(FUZZ_TARGETS), value=JSON_VALUES, raw=JSON_VALUES)
async def test_no_body_makes_the_sandbox_fail(
    target: tuple[str, str, str, bool], value: Any, raw: Any
) -> None:
    method, path, key, inside_line = target
    body: Any = copy.deepcopy(VALID_BODIES.get(path, {}))
    if inside_line:
        field = "quantity" if isinstance(raw, str) else "unit_price"
        body["lines"] = [line(**{field: value}), value]
    else:
        body[key] = value
    async with connect(create_app(token=TOKEN)) as client:
        for content in (json.dumps(body), json.dumps(raw)):
            response = await client.request(
                method, path, content=content, headers={"Content-Type": "application/json"}
            )
            assert response.status_code in (200, 201, 400, 409), response.text
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}


QUERY_KEYS = ["email", "reference_id", "first_name", "last_name", "phone", "status"]


@settings(max_examples=100, deadline=None)
@given(
    params=st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=6), max_size=4),
    page=st.text(max_size=4),
)
async def test_no_query_makes_the_sandbox_fail(params: dict[str, str], page: str) -> None:
    async with connect(create_app(token=TOKEN)) as client:
        for path in (f"{BASE}/customers", f"{BASE}/orders"):
            try:
                response = await client.get(path, params=params, headers={"X-Page": page})
            except (httpx.LocalProtocolError, UnicodeEncodeError):
                continue  # a header httpx itself refuses to send
            assert response.status_code in (200, 302, 400, 404), response.text

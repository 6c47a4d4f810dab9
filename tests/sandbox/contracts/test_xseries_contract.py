"""Real X-Series sandbox responses validated against the official 0.9 definitions.

The definitions are an extract of Vend's own Swagger 2.0 specification (see NOTICE), so a field
the sandbox names or types differently from the real API fails here. Swagger 2.0 schemas are
JSON Schema draft 4.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator

from gateway.sandbox.xseries import create_app
from tests.sandbox.contracts.extract_definitions import SPEC_ENV, extract, official_spec

DEFINITIONS = Path(__file__).with_name("xseries_0_9_definitions.json")

JOHNNY = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b02"
TONY_SALE = "3b0e8c1a-0000-4000-8000-00000000a002"
REGISTER = "0adfd74a-153e-11e9-fa42-67b5781c0001"
USER = "0adfd74a-153e-11e9-fa42-67b5781c0200"
CASH = "dc85058a-a683-11e5-e112-51cc5a8f0001"
LOYALTY = "dc85058a-a683-11e5-e112-51cc5a8ffc96"
GST = "0adfd74a-153e-11e9-fa42-67b5781c0300"
TSHIRT = "b8ca3a65-0183-11e4-fbb5-6ba391393b01"
MUG = "b8ca3a65-0183-11e4-fbb5-6ba391393b02"

# THE ONE CORRECTION to the official definitions. The official file types these money
# fields as "integer" (format int32), which cannot hold a total such as 25.30; the real API
# returns decimals there, as it does for their siblings total_tax and total_payment, which
# the same file types as "number". Each is patched to "number" below, and nothing else.
MONEY_TYPED_AS_INTEGER = (
    ("RegisterSale", "total_price"),
    ("RegisterSaleTotals", "total_price"),
    ("RegisterSaleTotals", "total_to_pay"),
)


def official_extract() -> dict[str, Any]:
    extract_doc: dict[str, Any] = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    return extract_doc


def corrected(document: dict[str, Any]) -> dict[str, Any]:
    fixed = copy.deepcopy(document)
    for definition, field in MONEY_TYPED_AS_INTEGER:
        prop = fixed["definitions"][definition]["properties"][field]
        assert prop["type"] == "integer", "the official file changed: revisit the correction"
        prop["type"] = "number"
    return fixed


def errors_for(definition: str, instance: Any, *, correct: bool = True) -> list[str]:
    document = corrected(official_extract()) if correct else official_extract()
    schema = {**document, "$ref": f"#/definitions/{definition}"}
    Draft4Validator.check_schema(schema)
    found = Draft4Validator(schema).iter_errors(instance)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found)


def assert_valid(definition: str, instance: Any) -> None:
    errors = errors_for(definition, instance)
    assert not errors, "\n".join(errors)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    headers = {"Authorization": "Bearer contract"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers=headers
    ) as client:
        yield client


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def loyalty_sale(**fields: Any) -> dict[str, Any]:
    """A sale with a loyalty payment and non-integral totals: 21.99 + 3.30 tax, 22.30 paid."""
    return {
        "register_id": REGISTER,
        "user_id": USER,
        "customer_id": JOHNNY,
        "status": "SAVED",
        "register_sale_products": [
            {"product_id": TSHIRT, "quantity": 1, "price": 21.99, "tax": 3.3, "tax_id": GST,
             "loyalty_value": 2.2},
        ],
        "register_sale_payments": [
            {"retailer_payment_type_id": LOYALTY, "amount": 2.3},
            {"retailer_payment_type_id": CASH, "amount": 20},
        ],
        **fields,
    }  # fmt: skip


# -- the extract and its correction --------------------------------------------------------------


def test_the_extract_matches_the_official_specification() -> None:
    """Drift guard: the extract must be what extract_definitions.py makes of the official file."""
    spec = official_spec()
    if spec is None:
        pytest.skip(f"set {SPEC_ENV} to the official 0.9 Swagger file to compare the extract")
    official = json.loads(spec.read_text(encoding="utf-8"))
    assert official_extract() == extract(official)


def test_the_correction_touches_only_the_named_money_fields() -> None:
    original, fixed = official_extract(), corrected(official_extract())
    changed = {
        (name, field)
        for name, definition in original["definitions"].items()
        for field, prop in definition.get("properties", {}).items()
        if prop != fixed["definitions"][name]["properties"][field]
    }
    assert changed == set(MONEY_TYPED_AS_INTEGER)
    assert {k: v for k, v in original.items() if k != "definitions"} == {}


def test_the_validator_resolves_references_and_catches_a_wrong_type() -> None:
    wrong = {"customers": [{"first_name": "A", "last_name": "B", "loyalty_balance": 50}]}
    assert errors_for("CustomerCollection", wrong) == [
        "customers/0/loyalty_balance: 50 is not of type 'string'"
    ]
    assert errors_for("CustomerCollection", {"customers": [{"first_name": "A"}]}) == [
        "customers/0: 'last_name' is a required property"
    ]


async def test_uncorrected_the_official_types_reject_real_money(
    client: httpx.AsyncClient,
) -> None:
    """Why the correction exists: exactly the patched fields fail on a real decimal total."""
    response = await client.post("/api/register_sales", json=loyalty_sale())
    assert errors_for("RegisterSaleResponse", response.json(), correct=False) == [
        "register_sale/total_price: 21.99 is not of type 'integer'",
        "register_sale/totals/total_price: 21.99 is not of type 'integer'",
        "register_sale/totals/total_to_pay: 2.99 is not of type 'integer'",
    ]


# -- responses -----------------------------------------------------------------------------------


async def test_customer_collection(client: httpx.AsyncClient) -> None:
    assert_valid("CustomerCollection", await get_json(client, "/api/customers"))
    filtered = await get_json(client, "/api/customers", email="tony@stark.example")
    assert_valid("CustomerCollection", filtered)


async def test_customer_response_on_create_and_update(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/customers", json={"first_name": "Happy"})
    assert_valid("CustomerResponse", created.json())
    update = {"id": created.json()["customer"]["id"], "enable_loyalty": 1, "last_name": "Hogan"}
    updated = await client.post("/api/customers", json=update)
    assert_valid("CustomerResponse", updated.json())


async def test_product_collection(client: httpx.AsyncClient) -> None:
    assert_valid("ProductCollection", await get_json(client, "/api/products"))
    assert_valid("ProductCollection", await get_json(client, f"/api/products/{MUG}"))


async def test_payment_type_collection(client: httpx.AsyncClient) -> None:
    assert_valid("PaymentTypeCollection", await get_json(client, "/api/payment_types"))


async def test_register_sale_collection(client: httpx.AsyncClient) -> None:
    assert_valid("RegisterSaleCollection", await get_json(client, "/api/register_sales"))
    one = await get_json(client, f"/api/register_sales/{TONY_SALE}")
    assert_valid("RegisterSaleCollection", one)


async def test_register_sale_response_with_loyalty_and_a_non_integral_total(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/register_sales", json=loyalty_sale())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["register_sale"]["totals"] == {
        "total_price": 21.99,
        "total_tax": 3.3,
        "total_payment": 22.3,
        "total_to_pay": 2.99,
    }
    assert_valid("RegisterSaleResponse", body)
    read_only = ("totals", "taxes", "state", "register_sale_attributes")
    closed = {k: v for k, v in body["register_sale"].items() if k not in read_only}
    closed["status"] = "CLOSED"
    closed_response = await client.post("/api/register_sales", json=closed)
    assert closed_response.status_code == 200, closed_response.text
    assert_valid("RegisterSaleResponse", closed_response.json())
    sale_id = body["register_sale"]["id"]
    listed = await get_json(client, f"/api/register_sales/{sale_id}")
    assert_valid("RegisterSaleCollection", listed)

"""loyaltyQuote through GraphQL against the sandbox: Loyalty 101's examples."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain.ids import Kind
from tests.demo_ids import GOLD_WATCH, GST, JOHNNY, MUG, PEPPER, REGISTER, TONY, TSHIRT
from tests.gateways import AIRPORT_REGISTER, Gateway, demo_fixtures, two_outlets
from tests.support import SandboxHandle

QUOTE = """
query Quote($input: LoyaltyQuoteInput!) {
  loyaltyQuote(input: $input) {
    loyaltyEarned total
    lines { productId quantity unitLoyaltyValue loyaltyValue }
  }
}"""


def line(product: str, price: str, tax: str, quantity: str = "1") -> dict[str, Any]:
    return {"productId": product, "quantity": quantity, "price": price, "tax": tax, "taxId": GST}


async def quote(
    gateway: Gateway,
    customer: str | None,
    lines: list[dict[str, Any]],
    paid: str | None = None,
    register: str | None = None,
) -> dict[str, Any]:
    variables: dict[str, Any] = {"input": {"lines": lines}}
    if customer:
        variables["input"]["customerId"] = gateway.id(Kind.CUSTOMER, customer)
    if paid:
        variables["input"]["loyaltyPayment"] = paid
    if register:
        variables["input"]["registerId"] = register
    result: dict[str, Any] = (await gateway.data(QUOTE, variables))["loyaltyQuote"]
    return result


async def test_tax_exclusive_account_price_20_tax_3_earns_2(gateway: Gateway) -> None:
    result = await quote(gateway, JOHNNY, [line(TSHIRT, "20", "3")])
    assert result["lines"][0]["unitLoyaltyValue"] == "2.00"
    assert result["loyaltyEarned"] == "2.00"
    assert result["total"] == "23.00"


async def test_tax_inclusive_account_price_12_tax_1_8_earns_1_38(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    xseries.reset(demo_fixtures(display_retail_price_tax_inclusive="1"))
    result = await quote(gateway, JOHNNY, [line(MUG, "12", "1.8")])
    assert result["lines"][0]["unitLoyaltyValue"] == "1.38"


async def test_group_price_book_value_333_wins_then_the_general_one(gateway: Gateway) -> None:
    watch = [line(GOLD_WATCH, "1000", "150")]
    vip = await quote(gateway, TONY, watch)
    assert vip["lines"][0]["unitLoyaltyValue"] == "333.00"
    regular = await quote(gateway, JOHNNY, watch)
    assert regular["lines"][0]["unitLoyaltyValue"] == "7.00"


async def test_a_quote_for_a_register_in_an_outlet_with_its_own_price_book_entry_uses_that_entry(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    xseries.reset(two_outlets())
    mug, watch = [line(MUG, "12", "1.8")], [line(GOLD_WATCH, "1000", "150")]
    at_airport = await quote(gateway, JOHNNY, mug, register=AIRPORT_REGISTER)
    assert at_airport["lines"][0]["unitLoyaltyValue"] == "3.00"  # the airport's entry
    at_main = await quote(gateway, JOHNNY, mug, register=REGISTER)
    assert at_main["lines"][0]["unitLoyaltyValue"] == "1.20"  # no entry there: the ratio
    nowhere = await quote(gateway, JOHNNY, mug)
    assert nowhere["lines"][0]["unitLoyaltyValue"] == "1.20"  # no register: no outlet's entry
    vip_at_airport = await quote(gateway, TONY, watch, register=AIRPORT_REGISTER)
    assert vip_at_airport["lines"][0]["unitLoyaltyValue"] == "500.00"  # VIP at that outlet
    vip_at_main = await quote(gateway, TONY, watch, register=REGISTER)
    assert vip_at_main["lines"][0]["unitLoyaltyValue"] == "333.00"  # VIP, all outlets
    regular_at_airport = await quote(gateway, JOHNNY, watch, register=AIRPORT_REGISTER)
    assert regular_at_airport["lines"][0]["unitLoyaltyValue"] == "7.00"  # the VIPs' only


async def test_a_quote_for_an_unknown_register_is_a_validation_error_naming_it(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    for register in (str(uuid.uuid4()), " ", "\u0000"):
        response = await gateway.post(
            QUOTE, {"input": {"lines": [line(TSHIRT, "20", "3")], "registerId": register}}
        )
        assert response.json()["errors"][0]["extensions"] == {
            "code": "VALIDATION",
            "field": "registerId",
        }
    assert xseries.count("GET /api/registers") == 1  # read once, fresh: not read twice


async def test_a_register_added_since_the_registers_were_cached_is_found(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    tshirt, mug = [line(TSHIRT, "20", "3")], [line(MUG, "12", "1.8")]
    assert (await quote(gateway, JOHNNY, tshirt, register=REGISTER))["loyaltyEarned"] == "2.00"
    # The registers are cached without the airport's; the sandbox's stats restart.
    xseries.reset(two_outlets())
    result = await quote(gateway, JOHNNY, mug, register=AIRPORT_REGISTER)
    assert result["loyaltyEarned"] == "3.00"
    assert xseries.count("GET /api/registers") == 1  # read again once, then cached
    await quote(gateway, JOHNNY, mug, register=AIRPORT_REGISTER)
    assert xseries.count("GET /api/registers") == 1


async def test_quantity_multiplies(gateway: Gateway) -> None:
    result = await quote(
        gateway, JOHNNY, [line(TSHIRT, "20", "3", "3"), line(GOLD_WATCH, "1000", "150", "2")]
    )
    assert [x["loyaltyValue"] for x in result["lines"]] == ["6.00", "14.00"]
    assert result["loyaltyEarned"] == "20.00"


async def test_customer_with_loyalty_off_earns_nothing(gateway: Gateway) -> None:
    result = await quote(gateway, PEPPER, [line(TSHIRT, "20", "3")])
    assert result["loyaltyEarned"] == "0.00"


@pytest.mark.parametrize("flag", [False, 0, "0"])
async def test_account_with_loyalty_off_earns_nothing(
    gateway: Gateway, xseries: SandboxHandle, flag: object
) -> None:
    xseries.reset(demo_fixtures(enable_loyalty=flag))
    result = await quote(gateway, TONY, [line(GOLD_WATCH, "1000", "150")])
    assert result["loyaltyEarned"] == "0.00"


async def test_no_customer_earns_nothing(gateway: Gateway) -> None:
    result = await quote(gateway, None, [line(TSHIRT, "20", "3")])
    assert result["loyaltyEarned"] == "0.00" and result["total"] == "23.00"


async def test_sale_paid_40_percent_with_loyalty_earns_60_percent(gateway: Gateway) -> None:
    full = await quote(gateway, JOHNNY, [line(TSHIRT, "20", "3", "5")])
    paid = str((Decimal(full["total"]) * Decimal("0.4")).quantize(Decimal("0.01")))
    prorated = await quote(gateway, JOHNNY, [line(TSHIRT, "20", "3", "5")], paid=paid)
    assert Decimal(prorated["loyaltyEarned"]) == Decimal(full["loyaltyEarned"]) * Decimal("0.6")
    assert prorated["loyaltyEarned"] == "6.00"


async def test_quote_errors_are_top_level_with_codes(gateway: Gateway) -> None:
    unknown = await gateway.post(
        QUOTE, {"input": {"lines": [line("00000000-0000-0000-0000-000000000000", "1", "0")]}}
    )
    assert unknown.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    negative = await gateway.post(QUOTE, {"input": {"lines": [line(TSHIRT, "-1", "0")]}})
    assert negative.json()["errors"][0]["extensions"] == {
        "code": "VALIDATION",
        "field": "lines[0].price",
    }
    too_much = await gateway.post(
        QUOTE, {"input": {"lines": [line(TSHIRT, "20", "3")], "loyaltyPayment": "23.01"}}
    )
    assert too_much.json()["errors"][0]["extensions"]["code"] == "VALIDATION"
    malformed = await gateway.post(QUOTE, {"input": {"lines": [line(TSHIRT, "abc", "3")]}})
    assert malformed.json()["errors"][0]["extensions"] == {
        "code": "VALIDATION",
        "field": "lines[0].price",
    }


async def test_reference_data_is_cached_between_quotes(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    await quote(gateway, JOHNNY, [line(TSHIRT, "20", "3")])
    configs, products = xseries.count("GET /api/config"), xseries.count("GET /api/products/{id}")
    for _ in range(3):
        await quote(gateway, JOHNNY, [line(TSHIRT, "20", "3")])
    assert xseries.count("GET /api/config") == configs
    assert xseries.count("GET /api/products/{id}") == products == 1


async def test_a_product_webhook_refreshes_its_loyalty_value(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    import json as stdjson

    watch = [line(GOLD_WATCH, "1000", "150")]
    assert (await quote(gateway, JOHNNY, watch))["lines"][0]["unitLoyaltyValue"] == "7.00"
    changed = demo_fixtures()
    product = next(p for p in changed["products"] if p["id"] == GOLD_WATCH)
    for entry in product["price_book_entries"]:
        if entry["loyalty_value"] == 7:
            entry["loyalty_value"] = 9
    xseries.reset(changed)
    assert (await quote(gateway, JOHNNY, watch))["lines"][0]["unitLoyaltyValue"] == "7.00"  # cached
    address = await gateway.xseries_hook()
    forged = await gateway.client.post(
        address[:-3] + "xyz", data={"payload": stdjson.dumps(product, default=str)}
    )
    assert forged.status_code == 401  # X-Series signs nothing: the secret address is the proof
    assert (await quote(gateway, JOHNNY, watch))["lines"][0]["unitLoyaltyValue"] == "7.00"
    body = {"payload": stdjson.dumps(product, default=str), "type": "product.update"}
    hook = await gateway.client.post(address, data=body)
    assert hook.status_code == 200 and hook.json() == {"received": "product.update"}
    assert (await quote(gateway, JOHNNY, watch))["lines"][0]["unitLoyaltyValue"] == "9.00"
    bad = await gateway.client.post(address, data={"payload": "not json"})
    assert bad.status_code == 400

"""createSale and payWithLoyalty through GraphQL, checked against the sandbox's state."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.domain.ids import Kind
from gateway.runtime import Runtime
from tests.demo_ids import (
    CASH,
    GOLD_WATCH,
    GST,
    JOHNNY,
    JOHNNY_SALE,
    LOYALTY,
    MUG,
    PEPPER,
    REGISTER,
    TONY,
    TONY_SALE,
    TSHIRT,
    USER,
)
from tests.gateways import AIRPORT_REGISTER, Gateway, demo_fixtures, two_outlets
from tests.support import SandboxHandle

SALE_FIELDS = """
  id posId status state total totalPaid amountDue loyaltyEarned
  customer { firstName loyaltyBalance }
  lines { productId quantity price tax loyaltyValue }
  payments { name amount isLoyalty }
"""
ERROR_FIELDS = """
  ... on Error { __typename code message }
  ... on ValidationError { field }
  ... on InsufficientBalanceError { balance requested }
  ... on AmountExceedsDueError { amountDue requested }
"""
CREATE = f"""
mutation Create($input: CreateSaleInput!) {{
  createSale(input: $input) {{
    __typename
    ... on CreateSaleSuccess {{ sale {{ {SALE_FIELDS} }} }}
    {ERROR_FIELDS}
  }}
}}"""
PAY = f"""
mutation Pay($input: PayWithLoyaltyInput!) {{
  payWithLoyalty(input: $input) {{
    __typename
    ... on PayWithLoyaltySuccess {{
      payment {{ id amount balanceAfter }}
      sale {{ {SALE_FIELDS} }}
    }}
    {ERROR_FIELDS}
  }}
}}"""


def balance(xseries: SandboxHandle, customer_id: str) -> Decimal:
    return Decimal(xseries.get("/api/customers", id=customer_id)["customers"][0]["loyalty_balance"])


def give_points(xseries: SandboxHandle, customer_id: str, amount: str) -> None:
    body = {
        "session_id": str(uuid.uuid4()),
        "adjustments": [{"customer_id": customer_id, "credit": amount}],
    }
    assert xseries.post("/api/2026-07/loyalty/adjustments/bulk", body).status_code == 200


def line(
    product: str = TSHIRT, price: str = "20", tax: str = "3", quantity: str = "1"
) -> dict[str, Any]:
    return {"productId": product, "quantity": quantity, "price": price, "tax": tax, "taxId": GST}


async def create(gateway: Gateway, customer: str | None = TONY, **fields: Any) -> dict[str, Any]:
    sale_input: dict[str, Any] = {
        "idempotencyKey": fields.pop("key", str(uuid.uuid4())),
        "registerId": REGISTER,
        "userId": USER,
        "lines": fields.pop("lines", [line()]),
        **fields,
    }
    if customer:
        sale_input["customerId"] = gateway.id(Kind.CUSTOMER, customer)
    result: dict[str, Any] = (await gateway.data(CREATE, {"input": sale_input}))["createSale"]
    return result


async def pay(
    gateway: Gateway, sale_id: str, amount: str, key: str | None = None
) -> dict[str, Any]:
    variables = {
        "input": {"idempotencyKey": key or str(uuid.uuid4()), "saleId": sale_id, "amount": amount}
    }
    result: dict[str, Any] = (await gateway.data(PAY, variables))["payWithLoyalty"]
    return result


# --------------------------------------------------------------------------- createSale


async def test_closed_sale_raises_the_balance_by_exactly_the_quote(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    lines = [line(quantity="2"), line(GOLD_WATCH, "1000", "150")]
    quoted = await gateway.data(
        "query($i: LoyaltyQuoteInput!) { loyaltyQuote(input: $i) { loyaltyEarned total } }",
        {"i": {"customerId": gateway.id(Kind.CUSTOMER, TONY), "lines": lines}},
    )
    earned = Decimal(quoted["loyaltyQuote"]["loyaltyEarned"])
    assert earned == Decimal("337")  # 2 × 2 (ratio) + 333 (VIP price book)
    before = balance(xseries, TONY)
    result = await create(
        gateway,
        lines=lines,
        payments=[{"paymentTypeId": CASH, "amount": quoted["loyaltyQuote"]["total"]}],
    )
    sale = result["sale"]
    assert result["__typename"] == "CreateSaleSuccess"
    assert (sale["status"], sale["state"]) == ("CLOSED", "CLOSED")
    assert sale["loyaltyEarned"] == "337.00"
    assert [x["loyaltyValue"] for x in sale["lines"]] == ["2.00", "333.00"]
    assert balance(xseries, TONY) == before + earned
    assert sale["customer"]["loyaltyBalance"] == f"{before + earned:.2f}"


async def test_loyalty_payment_lowers_the_balance_by_the_payment(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    result = await create(gateway, status="SAVED", loyaltyPayment="12.50")
    sale = result["sale"]
    assert sale["status"] == "SAVED" and sale["amountDue"] == "10.50"
    assert sale["payments"] == [{"name": "Loyalty", "amount": "12.50", "isLoyalty": True}]
    assert balance(xseries, TONY) == Decimal("37.50")


async def test_paid_in_full_with_loyalty_earns_nothing_and_closes(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    result = await create(gateway, status="SAVED", loyaltyPayment="23")
    assert result["sale"]["status"] == "CLOSED"
    assert result["sale"]["loyaltyEarned"] == "0.00"
    assert balance(xseries, TONY) == Decimal("27")


async def test_mixed_tenders_earn_on_the_part_not_paid_with_loyalty(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    # 40% with loyalty (9.20 of 23), the rest cash: earns 60% of 2.
    result = await create(
        gateway, loyaltyPayment="9.20", payments=[{"paymentTypeId": CASH, "amount": "13.80"}]
    )
    assert result["sale"]["status"] == "CLOSED"
    assert result["sale"]["lines"][0]["loyaltyValue"] == "1.20"
    assert balance(xseries, TONY) == Decimal("50") - Decimal("9.20") + Decimal("1.20")


async def test_create_sale_errors(gateway: Gateway, xseries: SandboxHandle) -> None:
    over = await create(gateway, loyaltyPayment="23.01")
    assert over["__typename"] == "AmountExceedsDueError"
    assert (over["amountDue"], over["requested"]) == ("23.00", "23.01")
    short = await create(gateway, customer=JOHNNY, loyaltyPayment="12.01")
    assert short["__typename"] == "InsufficientBalanceError"
    assert (short["balance"], short["requested"]) == ("12.00", "12.01")
    off = await create(gateway, customer=PEPPER, loyaltyPayment="1")
    assert off["code"] == "CUSTOMER_LOYALTY_DISABLED"
    nobody = await create(gateway, customer=None, loyaltyPayment="1")
    assert (nobody["code"], nobody["field"]) == ("VALIDATION", "customerId")
    loyalty_as_cash = await create(gateway, payments=[{"paymentTypeId": LOYALTY, "amount": "1"}])
    assert loyalty_as_cash["code"] == "VALIDATION"
    unknown_product = await create(gateway, lines=[line(str(uuid.uuid4()))])
    assert unknown_product["code"] == "NOT_FOUND"
    bad_status = await create(gateway, status="VOIDED")
    assert (bad_status["code"], bad_status["field"]) == ("VALIDATION", "status")
    unknown_register = await create(gateway, registerId=str(uuid.uuid4()))
    assert (unknown_register["code"], unknown_register["field"]) == ("VALIDATION", "registerId")
    assert xseries.count("POST /api/register_sales") == 0  # refused before anything was sent
    assert balance(xseries, TONY) == Decimal("50")


async def test_a_sale_at_a_register_in_an_outlet_with_its_own_price_book_entry_earns_it(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    xseries.reset(two_outlets())
    mug = line(MUG, "12", "1.8")
    cash = [{"paymentTypeId": CASH, "amount": "13.80"}]
    airport = await create(gateway, JOHNNY, registerId=AIRPORT_REGISTER, lines=[mug], payments=cash)
    assert airport["sale"]["lines"][0]["loyaltyValue"] == "3.00"
    posted = xseries.get(f"/api/register_sales/{airport['sale']['posId']}")["register_sales"][0]
    assert Decimal(str(posted["register_sale_products"][0]["loyalty_value"])) == 3
    assert balance(xseries, JOHNNY) == Decimal("15")
    main = await create(gateway, JOHNNY, lines=[mug], payments=cash)  # the main register
    assert main["sale"]["lines"][0]["loyaltyValue"] == "1.20"
    assert balance(xseries, JOHNNY) == Decimal("16.20")


async def test_account_without_loyalty_refuses_loyalty_payments(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    xseries.reset(demo_fixtures(enable_loyalty=False))
    result = await create(gateway, loyaltyPayment="5")
    assert result["code"] == "LOYALTY_DISABLED"


async def test_create_sale_replayed_posts_once(gateway: Gateway, xseries: SandboxHandle) -> None:
    first = await create(gateway, key="sale-1", payments=[{"paymentTypeId": CASH, "amount": "23"}])
    again = await create(gateway, key="sale-1", payments=[{"paymentTypeId": CASH, "amount": "23"}])
    assert first == again
    assert xseries.count("POST /api/register_sales") == 1
    reused = await create(gateway, key="sale-1", payments=[{"paymentTypeId": CASH, "amount": "22"}])
    assert reused["__typename"] == "IdempotencyKeyReusedError"
    assert reused["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert xseries.count("POST /api/register_sales") == 1


# --------------------------------------------------------------------------- payWithLoyalty


async def test_onaccount_sale_partly_then_fully_paid(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    give_points(xseries, JOHNNY, "88")  # 100 in all
    sale_id = gateway.id(Kind.SALE, JOHNNY_SALE)
    before = xseries.get(f"/api/register_sales/{JOHNNY_SALE}")["register_sales"][0]

    part = await pay(gateway, sale_id, "10")
    assert part["__typename"] == "PayWithLoyaltySuccess"
    sale = part["sale"]
    assert sale["status"] == "ONACCOUNT" and sale["amountDue"] == "8.00"
    assert part["payment"]["amount"] == "10.00" and part["payment"]["balanceAfter"] == "90.00"
    assert [p["amount"] for p in sale["payments"]] == ["5.00", "10.00"]
    after = xseries.get(f"/api/register_sales/{JOHNNY_SALE}")["register_sales"][0]
    assert [x["id"] for x in after["register_sale_products"]] == [
        x["id"] for x in before["register_sale_products"]
    ]
    assert after["register_sale_payments"][0]["id"] == before["register_sale_payments"][0]["id"]
    assert balance(xseries, JOHNNY) == Decimal("90")

    rest = await pay(gateway, sale_id, "8")
    assert rest["sale"]["status"] == "ONACCOUNT_CLOSED"
    assert rest["sale"]["state"] == "CLOSED" and rest["sale"]["amountDue"] == "0.00"
    # The line is CONFIRMED (read-only): it keeps its 2, and X-Series credits 2 on closing;
    # one adjustment takes back what the 18 of 23 paid with loyalty must not earn (rule 5).
    assert rest["sale"]["lines"][0]["loyaltyValue"] == "2.00"
    closed = xseries.get(f"/api/register_sales/{JOHNNY_SALE}")["register_sales"][0]
    assert closed["register_sale_products"] == [
        {**line, "loyalty_value": 2} for line in before["register_sale_products"]
    ]
    assert (closed["state"], closed["register_sale_attributes"]) == ("closed", ["onaccount"])
    assert balance(xseries, JOHNNY) == Decimal("82.43")  # 100 - 18 + 0.43


@pytest.mark.parametrize(("status", "closed"), [("SAVED", "CLOSED"), ("LAYBY", "LAYBY_CLOSED")])
async def test_open_sales_close_when_paid_in_full(
    gateway: Gateway, xseries: SandboxHandle, status: str, closed: str
) -> None:
    created = await create(gateway, status=status)
    sale_id = created["sale"]["id"]
    part = await pay(gateway, sale_id, "20")
    assert part["sale"]["status"] == status
    rest = await pay(gateway, sale_id, "3")
    assert rest["sale"]["status"] == closed
    assert balance(xseries, TONY) == Decimal("27")


async def test_pay_with_loyalty_errors(gateway: Gateway, xseries: SandboxHandle) -> None:
    johnny_sale = gateway.id(Kind.SALE, JOHNNY_SALE)
    short = await pay(gateway, johnny_sale, "12.01")
    assert short["__typename"] == "InsufficientBalanceError"
    over = await pay(gateway, johnny_sale, "18.01")
    assert over["__typename"] == "AmountExceedsDueError" and over["amountDue"] == "18.00"
    closed = await pay(gateway, gateway.id(Kind.SALE, TONY_SALE), "1")
    assert closed["code"] == "SALE_NOT_OPEN"
    unknown = await pay(gateway, gateway.id(Kind.SALE, str(uuid.uuid4())), "1")
    assert unknown["code"] == "NOT_FOUND"
    garbage = await pay(gateway, "not-an-id", "1")
    assert garbage["code"] == "NOT_FOUND"
    for bad in ("-5", "0", "12.345", "NaN", "ten dollars", "1e400"):
        invalid = await pay(gateway, johnny_sale, bad)
        assert (invalid["code"], invalid["field"]) == ("VALIDATION", "amount"), bad
    pepper_sale = (await create(gateway, customer=PEPPER, status="SAVED"))["sale"]["id"]
    assert (await pay(gateway, pepper_sale, "1"))["code"] == "CUSTOMER_LOYALTY_DISABLED"
    assert balance(xseries, JOHNNY) == Decimal("12")
    assert xseries.count("POST /api/register_sales") == 1  # Pepper's sale only


async def test_a_non_number_where_an_amount_belongs_is_a_request_error(gateway: Gateway) -> None:
    response = await gateway.post(
        PAY, {"input": {"idempotencyKey": "k", "saleId": "x", "amount": True}}
    )
    assert response.status_code == 200
    message = response.json()["errors"][0]["message"]
    assert "Decimal expects a number" in message and "Traceback" not in message


async def test_loyalty_disabled_account(gateway: Gateway, xseries: SandboxHandle) -> None:
    xseries.reset(demo_fixtures(enable_loyalty="0"))
    result = await pay(gateway, gateway.id(Kind.SALE, JOHNNY_SALE), "1")
    assert result["code"] == "LOYALTY_DISABLED"


async def test_replayed_payment_is_applied_once(gateway: Gateway, xseries: SandboxHandle) -> None:
    sale_id = gateway.id(Kind.SALE, JOHNNY_SALE)
    first = await pay(gateway, sale_id, "5", key="pay-once")
    second = await pay(gateway, sale_id, "5", key="pay-once")
    assert first == second
    assert balance(xseries, JOHNNY) == Decimal("7")
    assert xseries.count("POST /api/register_sales") == 1
    reused = await pay(gateway, sale_id, "6", key="pay-once")
    assert reused["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert xseries.count("POST /api/register_sales") == 1


async def test_business_errors_are_remembered_too(gateway: Gateway, xseries: SandboxHandle) -> None:
    sale_id = gateway.id(Kind.SALE, JOHNNY_SALE)
    refused = await pay(gateway, sale_id, "12.50", key="too-much")
    give_points(xseries, JOHNNY, "100")
    assert await pay(gateway, sale_id, "12.50", key="too-much") == refused
    assert xseries.count("POST /api/register_sales") == 0


async def test_one_key_sent_twice_at_once_executes_once(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    xseries.faults(latency_ms=100)
    sale_id = gateway.id(Kind.SALE, JOHNNY_SALE)
    results = await asyncio.gather(*(pay(gateway, sale_id, "4", key="same") for _ in range(5)))
    assert all(r == results[0] for r in results)
    assert results[0]["__typename"] == "PayWithLoyaltySuccess"
    assert xseries.count("POST /api/register_sales") == 1
    assert balance(xseries, JOHNNY) == Decimal("8")


async def test_twenty_concurrent_payments_apply_exactly_what_the_balance_covers(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    sale_id = (await create(gateway, status="SAVED", lines=[line(GOLD_WATCH, "1000", "150")]))[
        "sale"
    ]["id"]
    results = await asyncio.gather(*(pay(gateway, sale_id, "10") for _ in range(20)))
    kinds = sorted(r["__typename"] for r in results)
    assert kinds.count("PayWithLoyaltySuccess") == 5
    assert kinds.count("InsufficientBalanceError") == 15
    assert balance(xseries, TONY) == Decimal("0")
    sale = xseries.get(f"/api/register_sales/{sale_id_local(results)}")["register_sales"][0]
    loyalty = [
        p for p in sale["register_sale_payments"] if p["retailer_payment_type_id"] == LOYALTY
    ]
    assert [Decimal(str(p["amount"])) for p in loyalty] == [Decimal("10")] * 5
    assert xseries.count("POST /api/register_sales") == 1 + 5


def sale_id_local(results: list[dict[str, Any]]) -> str:
    return str(
        next(r["sale"]["posId"] for r in results if r["__typename"] == "PayWithLoyaltySuccess")
    )


async def test_two_gateway_processes_share_the_lock(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    """A second app on its own runtime (as another process would be) over the same store:
    no in-process lock or wake-up is shared, only the database."""
    other_runtime = Runtime(gateway.runtime.settings)
    app = create_app(runtime=other_runtime)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw2")
    other = Gateway(client, other_runtime, gateway.merchant, gateway.key)
    try:
        sale = await create(gateway, status="SAVED", lines=[line(GOLD_WATCH, "1000", "150")])
        sale_id = sale["sale"]["id"]
        calls = [pay(gateway, sale_id, "10") for _ in range(10)]
        calls += [pay(other, sale_id, "10") for _ in range(10)]
        results = await asyncio.gather(*calls)
        assert sum(r["__typename"] == "PayWithLoyaltySuccess" for r in results) == 5
        assert balance(xseries, TONY) == Decimal("0")
    finally:
        await client.aclose()
        await other_runtime.aclose()


async def test_the_seeds_partial_payment_keeps_its_line_and_rule_5_still_holds(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    """Loyalty 101's own example: an on-account sale of 5 mugs at 12 + 1.8 tax whose line
    carries loyalty_value 1.38, CONFIRMED. A partial loyalty payment resends the line as it
    is (1.38); when the gateway's payment closes the sale, what X-Series credits for the
    part paid with loyalty is taken back by one adjustment: rule 5, lines untouched."""
    give_points(xseries, JOHNNY, "88")  # 100
    mugs = {"product_id": MUG, "quantity": 5, "price": 12, "tax": 1.8, "tax_id": GST,
            "loyalty_value": 1.38, "status": "CONFIRMED"}  # fmt: skip
    created = xseries.post("/api/register_sales", {
        "register_id": REGISTER, "user_id": USER, "customer_id": JOHNNY,
        "status": "ONACCOUNT", "register_sale_products": [mugs], "register_sale_payments": [],
    }).json()["register_sale"]  # fmt: skip
    sale_id = gateway.id(Kind.SALE, created["id"])

    part = await pay(gateway, sale_id, "20")
    assert part["__typename"] == "PayWithLoyaltySuccess" and part["sale"]["amountDue"] == "49.00"
    stored = xseries.get(f"/api/register_sales/{created['id']}")["register_sales"][0]
    assert stored["register_sale_products"][0]["loyalty_value"] == 1.38

    cash = {"retailer_payment_type_id": CASH, "amount": 40}
    body = {k: v for k, v in stored.items() if k not in ("totals", "taxes")}
    body["register_sale_payments"] = [*stored["register_sale_payments"], cash]
    assert xseries.post("/api/register_sales", body).status_code == 200  # the till, 40 cash
    rest = await pay(gateway, sale_id, "9")
    assert rest["sale"]["status"] == "ONACCOUNT_CLOSED"
    # X-Series credits 5 x 1.38 = 6.90 on closing; 29 of 69 was paid with loyalty, so each
    # unit earns 1.38 x 40/69 = 0.80: 4.00 in all, and 2.90 is taken back.
    assert balance(xseries, JOHNNY) == Decimal("100") - 29 + Decimal("4.00")
    again = await pay(gateway, sale_id, "9", key=None)  # a new key: the sale is closed
    assert again["code"] == "SALE_NOT_OPEN"
    assert balance(xseries, JOHNNY) == Decimal("75.00")

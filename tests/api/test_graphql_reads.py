"""Queries: the merchant, customer search, a customer and their sales, a sale."""

from __future__ import annotations

import uuid

from gateway.domain.ids import Kind
from tests.demo_ids import JOHNNY, JOHNNY_SALE, PEPPER, TONY, TONY_SALE
from tests.gateways import Gateway
from tests.support import SandboxHandle

CUSTOMER_FIELDS = "id pos posId firstName lastName email loyaltyEnabled loyaltyBalance"


async def test_merchant(gateway: Gateway) -> None:
    data = await gateway.data(
        "{ merchant { id name posSystems pointsSource pointsLabel loyaltyEnabled loyaltyRatio } }"
    )
    assert data["merchant"] == {
        "id": gateway.merchant.id,
        "name": "Stark Industries",
        "posSystems": ["XSERIES"],
        "pointsSource": "XSERIES",
        "pointsLabel": "Points",
        "loyaltyEnabled": True,
        "loyaltyRatio": "0.10",
    }


async def search(gateway: Gateway, keyword: str, first: int = 20) -> list[dict[str, str]]:
    query = (
        "query($s: String!, $f: Int) "
        f"{{ customers(search: $s, first: $f) {{ {CUSTOMER_FIELDS} }} }}"
    )
    data = await gateway.data(query, {"s": keyword, "f": first})
    found: list[dict[str, str]] = data["customers"]
    return found


async def test_search_by_email_name_and_full_name(gateway: Gateway) -> None:
    by_email = await search(gateway, "tony@stark.example")
    assert [c["posId"] for c in by_email] == [TONY]
    assert by_email[0]["loyaltyBalance"] == "50.00" and by_email[0]["pos"] == "XSERIES"
    assert [c["firstName"] for c in await search(gateway, "Bravo")] == ["Johnny"]
    assert [c["posId"] for c in await search(gateway, "johnny")] == [JOHNNY]
    assert [c["posId"] for c in await search(gateway, "John Smith")] != []
    assert [c["posId"] for c in await search(gateway, "  Tony   Stark ")] == [TONY]
    assert await search(gateway, "nobody-at-all") == []
    assert len(await search(gateway, "j", first=1)) == 1


async def test_an_email_is_looked_up_on_0_9_customers_and_names_on_the_2_0_search(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    """The 2.0 search documents no email field; 0.9 /customers?email= (exact) does."""
    by_email = await search(gateway, "johnny@bravo.example")
    assert [c["posId"] for c in by_email] == [JOHNNY]
    assert xseries.count("GET /api/customers") == 1
    assert xseries.count("GET /api/2.0/search") == 0
    assert await search(gateway, "johnny@bravo.exampl") == []  # exact, not a prefix
    assert [c["posId"] for c in await search(gateway, "Bravo")] == [JOHNNY]
    assert [c["posId"] for c in await search(gateway, "Johnny Bravo")] == [JOHNNY]
    assert xseries.count("GET /api/customers") == 2
    assert xseries.count("GET /api/2.0/search") == 4  # first, last name, code; then both names
    responses = xseries.stats()["responses"]
    assert not [r for r in responses if not r.endswith(" 200")], responses


async def test_empty_search_is_a_validation_error(gateway: Gateway) -> None:
    response = await gateway.post('{ customers(search: "   ") { id } }')
    assert response.json()["errors"][0]["extensions"]["code"] == "VALIDATION"


async def test_customer_by_id_with_sales(gateway: Gateway) -> None:
    query = f"""query($id: ID!) {{ customer(id: $id) {{
        {CUSTOMER_FIELDS}
        sales(first: 5) {{ posId status state total amountDue customer {{ posId }} }}
    }} }}"""
    data = await gateway.data(query, {"id": gateway.id(Kind.CUSTOMER, JOHNNY)})
    johnny = data["customer"]
    assert (johnny["firstName"], johnny["lastName"]) == ("Johnny", "Bravo")
    assert johnny["id"] == gateway.id(Kind.CUSTOMER, JOHNNY)
    assert johnny["sales"] == [
        {
            "posId": JOHNNY_SALE,
            "status": "ONACCOUNT",
            "state": "OPEN",
            "total": "23.00",
            "amountDue": "18.00",
            "customer": {"posId": JOHNNY},
        }
    ]
    pepper = await gateway.data(query, {"id": gateway.id(Kind.CUSTOMER, PEPPER)})
    assert pepper["customer"]["loyaltyEnabled"] is False


async def test_unknown_or_malformed_ids_are_null(gateway: Gateway) -> None:
    for value in (
        gateway.id(Kind.CUSTOMER, str(uuid.uuid4())),
        "garbage",
        gateway.id(Kind.SALE, TONY),
    ):
        data = await gateway.data("query($id: ID!) { customer(id: $id) { id } }", {"id": value})
        assert data["customer"] is None


async def test_sale_by_id(gateway: Gateway, xseries: SandboxHandle) -> None:
    query = """query($id: ID!) { sale(id: $id) {
        id pos posId status state totalPrice totalTax total totalPaid amountDue loyaltyEarned
        customer { firstName loyaltyBalance }
        lines { productId name quantity price tax loyaltyValue }
        payments { name amount isLoyalty }
    } }"""
    data = await gateway.data(query, {"id": gateway.id(Kind.SALE, TONY_SALE)})
    sale = data["sale"]
    assert (sale["status"], sale["state"], sale["pos"]) == ("CLOSED", "CLOSED", "XSERIES")
    assert (sale["totalPrice"], sale["totalTax"], sale["total"]) == ("12.00", "1.80", "13.80")
    assert sale["amountDue"] == "0.00" and sale["loyaltyEarned"] == "1.20"
    assert sale["customer"] == {"firstName": "Tony", "loyaltyBalance": "50.00"}
    assert sale["lines"][0]["name"] and sale["lines"][0]["loyaltyValue"] == "1.20"
    assert sale["payments"] == [{"name": "Credit Card", "amount": "13.80", "isLoyalty": False}]
    missing = await gateway.data(query, {"id": gateway.id(Kind.SALE, str(uuid.uuid4()))})
    assert missing["sale"] is None


async def test_one_customer_read_per_request_however_often_referenced(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    query = """query($a: ID!, $b: ID!) {
        a: sale(id: $a) { customer { firstName } }
        b: sale(id: $a) { customer { lastName } }
        c: sale(id: $b) { customer { firstName } }
    }"""
    before = xseries.count("GET /api/customers")
    await gateway.data(
        query, {"a": gateway.id(Kind.SALE, JOHNNY_SALE), "b": gateway.id(Kind.SALE, TONY_SALE)}
    )
    assert xseries.count("GET /api/customers") - before == 2


async def test_upstream_outage_on_a_query_is_a_coded_error(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    xseries.faults(status=503)
    response = await gateway.post('{ customers(search: "tony") { id } }')
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert "Traceback" not in response.text

"""Bad input at every entry point: a clear 4xx or an error member naming the field, never a
500, a traceback or Python's own exception text, and nothing changed at either POS."""

from __future__ import annotations

import builtins
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.app import create_app
from gateway.domain import ids
from gateway.domain.errors import MAX_RETRY_AFTER_S
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.runtime import Runtime
from gateway.services.context import Services
from gateway.services.merchants import XSeriesCredentials, add_merchant
from gateway.settings import Environment
from gateway.store.api_keys import create_api_key
from tests.api.test_graphql_sales import CREATE, PAY, balance, line
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER, john, kounta_order
from tests.conftest import XSERIES_TOKEN
from tests.demo_ids import JOHN_SMITH, JOHNNY, JOHNNY_SALE, REGISTER, TONY, USER
from tests.gateways import (
    ADDON_TOKEN,
    KOUNTA_COMPANY,
    Gateway,
    KountaPos,
    make_gateway,
    make_kounta_gateway,
    reward_url,
)
from tests.support import SandboxHandle, ServerThread

# What Python says when it is left to speak for us.
PYTHON_EXCEPTIONS = [
    *(name for name in dir(builtins) if name.endswith(("Error", "Exception"))),
    *("InvalidOperation", "Overflow", "ConversionSyntax", "JSONDecodeError", "DivisionByZero"),
]
PYTHON_PHRASES = [
    "Traceback",
    'File "',
    "codec can't",
    "surrogates not allowed",
    "object has no attribute",
    "Expecting value",
    "Expecting property name",
    "maximum recursion depth",
    "invalid literal for",
    "Exceeds the limit",
    "<class ",
    "internal error",
    "Internal error",
]
LEAK = re.compile(
    r"\b(?:"
    + "|".join(map(re.escape, PYTHON_EXCEPTIONS))
    + r")\b|"
    + "|".join(map(re.escape, PYTHON_PHRASES))
)
DEEP_BODIES = [b"[" * 10_000, b'{"a":' * 10_000, b"[" * 10_000 + b"]" * 10_000]
TWENTY_MB = 20 * 1024 * 1024


def assert_clean(response: httpx.Response) -> None:
    """No traceback, no exception name or text of Python's in what the caller reads, and
    not the 500 of a fault (a 503 from a slow POS is an answer)."""
    found = LEAK.search(response.text)
    assert found is None, f"{found.group(0)!r} leaked: {response.text[:500]}"
    assert response.status_code != 500, response.text[:500]


def writes(*sandboxes: SandboxHandle) -> int:
    """Every request that could have changed something at a POS (anything but a GET)."""
    return sum(
        count
        for sandbox in sandboxes
        for route, count in sandbox.stats()["requests"].items()
        if not route.startswith("GET ")
    )


async def post_raw(
    gw: Gateway, body: bytes, content_type: str = "application/json"
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.key}", "Content-Type": content_type}
    return await gw.client.post("/graphql", content=body, headers=headers)


async def post_json(gw: Gateway, query: str, variables: dict[str, Any]) -> httpx.Response:
    """The body as JSON text with escapes (so a lone surrogate travels as ``\\ud800``)."""
    return await post_raw(gw, json.dumps({"query": query, "variables": variables}).encode())


def graphql_errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert_clean(response)
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert errors and all(error["message"] for error in errors)
    return errors


def member(response: httpx.Response, field: str) -> dict[str, Any]:
    """A mutation's result member (never a top-level error)."""
    assert_clean(response)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"][field]
    return result


def validation(result: dict[str, Any], field: str) -> None:
    assert result["__typename"] == "ValidationError", result
    assert (result["code"], result["field"]) == ("VALIDATION", field), result
    assert field.split(".")[-1].split("[")[0] in result["message"], result


def top_level_validation(response: httpx.Response, field: str) -> str:
    errors = graphql_errors(response)
    extensions = errors[0].get("extensions") or {}
    assert (extensions.get("code"), extensions.get("field")) == ("VALIDATION", field), errors
    message: str = errors[0]["message"]
    return message


QUOTE = """query Quote($input: LoyaltyQuoteInput!) {
  loyaltyQuote(input: $input) { total loyaltyEarned }
}"""
REDEEM = """mutation Redeem($input: RedeemRewardInput!) {
  redeemReward(input: $input) {
    __typename
    ... on Error { code message }
    ... on ValidationError { field }
  }
}"""


def pay_input(gw: Gateway, amount: object, key: str | None = None) -> dict[str, Any]:
    return {
        "input": {
            "idempotencyKey": key if key is not None else str(uuid.uuid4()),
            "saleId": gw.id(Kind.SALE, JOHNNY_SALE),
            "amount": amount,
        }
    }


def sale_input(gw: Gateway, **fields: Any) -> dict[str, Any]:
    return {
        "input": {
            "idempotencyKey": fields.pop("key", str(uuid.uuid4())),
            "registerId": REGISTER,
            "userId": USER,
            "customerId": gw.id(Kind.CUSTOMER, TONY),
            "status": "SAVED",
            "lines": fields.pop("lines", [line()]),
            **fields,
        }
    }


def quote_input(gw: Gateway, **fields: Any) -> dict[str, Any]:
    return {
        "input": {
            "customerId": gw.id(Kind.CUSTOMER, TONY),
            "lines": fields.pop("lines", [line()]),
            **fields,
        }
    }


def redeem_input(gw: Gateway, quantity: object, key: str | None = None) -> dict[str, Any]:
    merchant = gw.merchant.id
    return {
        "input": {
            "idempotencyKey": key if key is not None else str(uuid.uuid4()),
            "customerId": ids.encode(Kind.CUSTOMER, Pos.XSERIES, merchant, JOHN_SMITH),
            "rewardId": ids.encode(Kind.REWARD, None, merchant, "pay-with-points"),
            "saleId": ids.encode(Kind.SALE, Pos.KOUNTA, merchant, JOHN_ORDER),
            "quantity": quantity,
        }
    }


# --------------------------------------------------------------------------- 1. the body

NOT_REQUESTS = [
    (b"null", "JSON object"),
    (b"42", "JSON object"),
    (b'"x"', "JSON object"),
    (b"[]", "JSON object"),
    (b"true", "JSON object"),
    (b'{"query": 5}', "query"),
    (b'{"query": "{ merchant { name } }", "variables": [1]}', "variables"),
    (b'{"query": "{ merchant { name } }", "operationName": 5}', "operationName"),
    (b'{"query": "{ merchant { name } }", "extensions": "x"}', "extensions"),
    (b'{"query": "{ merchant { name } }", "variables": {"a": NaN}}', "NaN"),
    (b"{not json", "JSON"),
]


async def test_a_graphql_body_that_is_not_a_request_object_is_a_400(
    gateway: Gateway, subtests: pytest.Subtests
) -> None:
    for body, says in NOT_REQUESTS:
        with subtests.test(body=body):
            response = await post_raw(gateway, body)
            assert response.status_code == 400, response.text
            errors = graphql_errors(response)
            assert says in errors[0]["message"], errors


async def test_a_graphql_post_that_is_not_json_is_a_graphql_shaped_400(gateway: Gateway) -> None:
    response = await post_raw(gateway, b"query=x", "text/plain")
    assert response.status_code == 400
    assert graphql_errors(response)[0]["message"]


# --------------------------------------------------------------------------- 2. depth


@pytest.mark.parametrize("body", DEEP_BODIES)
async def test_deep_json_on_graphql_is_a_400(gateway: Gateway, body: bytes) -> None:
    response = await post_raw(gateway, body)
    assert response.status_code == 400, response.text
    assert "nested" in graphql_errors(response)[0]["message"]


async def test_deep_graphql_variables_are_a_400_and_shallow_ones_are_read(
    gateway: Gateway,
) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    response = await post_json(gateway, "{ merchant { name } }", {"deep": deep})
    assert response.status_code == 400
    assert "nested" in graphql_errors(response)[0]["message"]
    shallow: Any = "x"
    for _ in range(20):
        shallow = {"a": shallow}
    fine = await post_json(gateway, "{ merchant { name } }", {"shallow": shallow})
    assert fine.json() == {"data": {"merchant": {"name": "Stark Industries"}}}


@pytest.mark.parametrize("body", DEEP_BODIES)
async def test_deep_json_on_the_redeem_url_is_a_400_and_redeems_nothing(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle, body: bytes
) -> None:
    url = reward_url(await john(KountaPos(both)), "free-coffee")
    url = url.replace("order_id=111", f"order_id={JOHN_ORDER}")
    before = writes(xseries, kounta)
    response = await both.client.post(
        url, content=body, headers={"Content-Type": "application/json"}
    )
    assert_clean(response)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "nested" in response.json()["error"]
    assert writes(xseries, kounta) == before
    assert balance(xseries, JOHN_SMITH) == Decimal("120")
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []


@pytest.mark.parametrize("body", DEEP_BODIES)
async def test_deep_json_on_the_kounta_webhook_is_a_400(
    both: Gateway, xseries: SandboxHandle, body: bytes
) -> None:
    before = writes(xseries)
    response = await both.client.post("/webhooks/kounta", content=body)
    assert_clean(response)
    assert response.status_code == 400
    assert "nested" in response.json()["error"]
    assert writes(xseries) == before


@pytest.mark.parametrize("payload", DEEP_BODIES)
async def test_a_deep_payload_on_the_xseries_webhook_is_a_400(
    gateway: Gateway, payload: bytes
) -> None:
    hook = await gateway.xseries_hook()
    response = await gateway.client.post(hook, data={"payload": payload.decode()})
    assert_clean(response)
    assert response.status_code == 400
    assert "nested" in response.json()["error"]


# --------------------------------------------------------------------------- 3. size


async def test_a_20_mb_graphql_body_is_a_413(gateway: Gateway) -> None:
    response = await post_raw(gateway, b" " * TWENTY_MB)
    assert response.status_code == 413
    assert "1048576 bytes" in graphql_errors(response)[0]["message"]


async def test_a_streamed_body_is_cut_off_at_the_limit_not_read_whole(gateway: Gateway) -> None:
    """No Content-Length (chunked): the body is counted as it arrives and refused as soon as
    it passes the limit; the rest is never asked for."""
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(20):
            sent += 1
            yield b" " * (1024 * 1024)

    headers = {"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"}
    response = await gateway.client.post("/graphql", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert graphql_errors(response)
    assert sent <= 2


async def test_a_20_mb_body_on_the_redeem_url_is_a_413_and_redeems_nothing(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    url = reward_url(await john(KountaPos(both)), "free-coffee")
    url = url.replace("order_id=111", f"order_id={JOHN_ORDER}")
    before = writes(xseries, kounta)
    response = await both.client.post(
        url, content=b" " * TWENTY_MB, headers={"Content-Type": "application/json"}
    )
    assert_clean(response)
    assert response.status_code == 413
    assert "1048576 bytes" in response.json()["error"]
    assert writes(xseries, kounta) == before
    assert balance(xseries, JOHN_SMITH) == Decimal("120")


@pytest.mark.parametrize("path", ["/webhooks/kounta", "/webhooks/xseries/"])
async def test_a_20_mb_webhook_is_a_413(gateway: Gateway, path: str) -> None:
    if path.endswith("/"):
        path = await gateway.xseries_hook()
    response = await gateway.client.post(path, content=b"x" * TWENTY_MB)
    assert_clean(response)
    assert response.status_code == 413
    assert set(response.json()) == {"error"}


async def test_a_body_within_the_limit_is_read(gateway: Gateway) -> None:
    padding = " " * (1024 * 1024 - 200)
    body = ('{"query": "{ merchant { name } }"' + padding + "}").encode()
    response = await post_raw(gateway, body)
    assert response.json() == {"data": {"merchant": {"name": "Stark Industries"}}}


# --------------------------------------------------------------------------- 4. and 5. numbers

BAD_AMOUNTS = [
    "٥",  # ARABIC-INDIC DIGIT FIVE: Decimal() reads it as 5
    "1_0",  # Decimal() reads 10
    "+5",
    "5.",
    ".5",
    "1e3",
    "1E+1000000",  # its arithmetic overflows
    "1e-1000000",
    "NaN",
    "sNaN",
    "Infinity",
    "-5",
    "0",
    "0.00",
    "5.001",
    "5.000",
    "5,00",
    "\u00a05",
    "１",  # FULLWIDTH DIGIT ONE
    "",
    "9" * 50,
    "1000000000",
]


async def test_pay_with_loyalty_refuses_an_amount_that_is_not_plain_positive_money(
    gateway: Gateway, xseries: SandboxHandle, subtests: pytest.Subtests
) -> None:
    for amount in BAD_AMOUNTS:
        with subtests.test(amount=amount):
            paid = await post_json(gateway, PAY, pay_input(gateway, amount))
            validation(member(paid, "payWithLoyalty"), "amount")
    assert writes(xseries) == 0
    assert balance(xseries, JOHNNY) == Decimal("12")


async def test_a_json_number_amount_is_held_to_the_same_rules(
    gateway: Gateway, xseries: SandboxHandle, subtests: pytest.Subtests
) -> None:
    template = json.dumps({"query": PAY, "variables": pay_input(gateway, "AMOUNT")}).encode()
    for number in (b"1e3", b"-5", b"0", b"5.001", b"1E+1000000", b"1e-7", b"-0"):
        with subtests.test(number=number):
            response = await post_raw(gateway, template.replace(b'"AMOUNT"', number))
            validation(member(response, "payWithLoyalty"), "amount")
    with subtests.test("not a number at all: a request error, as before"):
        response = await post_raw(gateway, template.replace(b'"AMOUNT"', b"true"))
        assert "Decimal" in graphql_errors(response)[0]["message"]
    assert writes(xseries) == 0
    assert balance(xseries, JOHNNY) == Decimal("12")


@pytest.mark.parametrize("amount", [" 5", "5 ", "5", "5.5", "5.50", "005"])
async def test_plain_amounts_still_pay(
    gateway: Gateway, xseries: SandboxHandle, amount: str
) -> None:
    result = member(await post_json(gateway, PAY, pay_input(gateway, amount)), "payWithLoyalty")
    assert result["__typename"] == "PayWithLoyaltySuccess", result
    assert balance(xseries, JOHNNY) == Decimal("12") - Decimal(amount.strip())


@pytest.mark.parametrize("amount", [5, 5.5])
async def test_a_json_number_amount_that_keeps_the_rules_is_accepted(
    gateway: Gateway, xseries: SandboxHandle, amount: float
) -> None:
    result = member(await post_json(gateway, PAY, pay_input(gateway, amount)), "payWithLoyalty")
    assert result["__typename"] == "PayWithLoyaltySuccess", result
    assert balance(xseries, JOHNNY) == Decimal("12") - Decimal(str(amount))


async def test_an_inline_literal_amount_is_held_to_the_same_rules(
    gateway: Gateway, xseries: SandboxHandle, subtests: pytest.Subtests
) -> None:
    sale = gateway.id(Kind.SALE, JOHNNY_SALE)
    for literal in ("1e3", "-5", "5.001", '"1_0"', '"٥"'):
        with subtests.test(literal=literal):
            query = f"""mutation {{ payWithLoyalty(input: {{idempotencyKey: "{uuid.uuid4()}",
                saleId: "{sale}", amount: {literal}}}) {{
              __typename ... on Error {{ code message }} ... on ValidationError {{ field }} }} }}"""
            validation(member(await post_json(gateway, query, {}), "payWithLoyalty"), "amount")
    assert writes(xseries) == 0


async def test_create_sale_refuses_bad_payment_amounts(
    gateway: Gateway, xseries: SandboxHandle, subtests: pytest.Subtests
) -> None:
    for amount in ("1_0", "+5", "1e3", "1E+1000000", "٥", "5.001", "-1"):
        with subtests.test(amount=amount):
            loyalty = sale_input(gateway, loyaltyPayment=amount)
            validation(member(await post_json(gateway, CREATE, loyalty), "createSale"),
                       "loyaltyPayment")  # fmt: skip
            other = sale_input(gateway, payments=[{"paymentTypeId": "x", "amount": amount}])
            validation(member(await post_json(gateway, CREATE, other), "createSale"),
                       "payments[0].amount")  # fmt: skip
    assert writes(xseries) == 0
    assert balance(xseries, TONY) == Decimal("50")


BAD_LINE_FIELDS = [
    ("quantity", "1_0"),
    ("quantity", "+1"),
    ("quantity", "-1"),
    ("quantity", "1e2"),
    ("quantity", "1E+1000000"),
    ("quantity", "٢"),
    ("quantity", "1.000001"),
    ("quantity", "0"),
    ("price", "+5"),
    ("price", "2e1"),
    ("price", "1E+1000000"),
    ("price", "NaN"),
    ("price", "٥"),
    ("tax", "-0"),
    ("tax", "3_0"),
    ("tax", "Infinity"),
]


async def test_sale_lines_get_the_same_grammar(
    gateway: Gateway, xseries: SandboxHandle, subtests: pytest.Subtests
) -> None:
    for field, value in BAD_LINE_FIELDS:
        with subtests.test(field=field, value=value):
            bad = [{**line(), field: value}]
            where = f"lines[0].{field}"
            created = await post_json(gateway, CREATE, sale_input(gateway, lines=bad))
            validation(member(created, "createSale"), where)
            quoted = await post_json(gateway, QUOTE, quote_input(gateway, lines=bad))
            top_level_validation(quoted, where)
    assert writes(xseries) == 0


async def test_sale_lines_keep_their_own_precision(gateway: Gateway) -> None:
    precise = line(quantity="1.12345", price="1.36364", tax="0.13636")
    response = await post_json(gateway, QUOTE, quote_input(gateway, lines=[precise]))
    assert_clean(response)
    assert "errors" not in response.json(), response.text


async def test_loyalty_quote_refuses_a_bad_loyalty_payment(
    gateway: Gateway, subtests: pytest.Subtests
) -> None:
    for amount in ("1_0", "+5", "1e3", "1E+1000000", "٥", "NaN", "-5", "5."):
        with subtests.test(amount=amount):
            response = await post_json(gateway, QUOTE, quote_input(gateway, loyaltyPayment=amount))
            assert "loyaltyPayment" in top_level_validation(response, "loyaltyPayment")


async def test_redeem_reward_refuses_a_bad_quantity(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle, subtests: pytest.Subtests
) -> None:
    before = writes(xseries, kounta)
    for quantity in ("1_0", "+5", "1e1", "1E+1000000", "٥", "NaN", "-5", "0"):
        with subtests.test(quantity=quantity):
            redeemed = await post_json(both, REDEEM, redeem_input(both, quantity))
            validation(member(redeemed, "redeemReward"), "quantity")
    assert writes(xseries, kounta) == before
    assert balance(xseries, JOHN_SMITH) == Decimal("120")


async def test_the_redeem_url_refuses_a_bad_quantity(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle, subtests: pytest.Subtests
) -> None:
    url = reward_url(await john(KountaPos(both)), "pay-with-points")
    url = url.replace("order_id=111", f"order_id={JOHN_ORDER}")
    before = writes(xseries, kounta)
    for quantity in ("1E%2B1000000", "1e3", "1_0", "%2B5", "%D9%A5", "NaN", "-5", "0", "5.",
                     "2.001"):  # fmt: skip
        with subtests.test(quantity=quantity):
            response = await both.client.get(f"{url}&quantity={quantity}")
            assert_clean(response)
            assert response.status_code == 200
            body = response.json()
            assert body["success"] is False and body["error"].startswith("quantity"), body
    assert writes(xseries, kounta) == before
    assert balance(xseries, JOHN_SMITH) == Decimal("120")
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []


async def test_the_redeem_url_refuses_a_bad_quantity_in_a_json_body(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle, subtests: pytest.Subtests
) -> None:
    url = reward_url(await john(KountaPos(both)), "pay-with-points")
    url = url.replace("order_id=111", f"order_id={JOHN_ORDER}")
    before = writes(xseries, kounta)
    for body in (b'{"quantity": 1e3}', b'{"quantity": "1_0"}', b'{"quantity": true}'):
        with subtests.test(body=body):
            json_body = {"Content-Type": "application/json"}
            response = await both.client.post(url, content=body, headers=json_body)
            assert_clean(response)
            assert response.json()["success"] is False
            assert response.json()["error"].startswith("quantity")
    assert writes(xseries, kounta) == before


async def test_an_unreadable_json_body_on_the_redeem_url_redeems_nothing(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    """A body that cannot be read may have carried the quantity: redeeming without it would
    take another amount than the one asked for."""
    url = reward_url(await john(KountaPos(both)), "pay-with-points")
    url = url.replace("order_id=111", f"order_id={JOHN_ORDER}")
    before = writes(xseries, kounta)
    response = await both.client.post(
        url, content=b'{"quantity": 5,}', headers={"Content-Type": "application/json"}
    )
    assert_clean(response)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert writes(xseries, kounta) == before


# --------------------------------------------------------------------------- 6. surrogates

SEARCH = "query($s: String!) { customers(search: $s) { id } }"


@pytest.mark.parametrize("search", ["\ud800", "Tony \udfff", "a\x00b"])
async def test_a_search_that_is_not_text_is_a_validation_error(both: Gateway, search: str) -> None:
    message = top_level_validation(await post_json(both, SEARCH, {"s": search}), "search")
    assert "search" in message


async def test_an_idempotency_key_that_is_not_text_is_refused_and_pays_nothing(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    for key in ("\ud800", "till-\udc00", "a\x00b"):
        paid = member(
            await post_json(gateway, PAY, pay_input(gateway, "1", key=key)), "payWithLoyalty"
        )
        validation(paid, "idempotencyKey")
        created = member(
            await post_json(gateway, CREATE, sale_input(gateway, key=key)), "createSale"
        )
        validation(created, "idempotencyKey")
    assert writes(xseries) == 0
    assert balance(xseries, JOHNNY) == Decimal("12")


async def test_a_redeem_key_that_is_not_text_is_refused(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    before = writes(xseries, kounta)
    result = member(
        await post_json(both, REDEEM, redeem_input(both, "1", key="\ud800")), "redeemReward"
    )
    validation(result, "idempotencyKey")
    assert writes(xseries, kounta) == before


@pytest.mark.parametrize(
    ("field", "fields"),
    [
        ("registerId", {"registerId": "\ud800"}),
        ("userId", {"userId": "a\x00b"}),
        ("registerId", {"registerId": "9" * 101}),
        ("lines[0].productId", {"lines": [{**line(), "productId": "\ud800"}]}),
        ("lines[0].taxId", {"lines": [{**line(), "taxId": "\udc00"}]}),
        ("payments[0].paymentTypeId", {"payments": [{"paymentTypeId": "\ud800", "amount": "1"}]}),
    ],
)
async def test_create_sale_ids_that_are_not_text_are_refused(
    gateway: Gateway, xseries: SandboxHandle, field: str, fields: dict[str, Any]
) -> None:
    before = writes(xseries)
    created = member(await post_json(gateway, CREATE, sale_input(gateway, **fields)), "createSale")
    validation(created, field)
    if field.startswith("lines"):
        quoted = await post_json(gateway, QUOTE, quote_input(gateway, lines=fields["lines"]))
        top_level_validation(quoted, field)
    assert writes(xseries) == before


@pytest.mark.parametrize(
    ("keyword", "status"),
    [
        ("a%00b", 400),  # NUL: no name holds one, and PostgreSQL refuses it in text
        ("Tony%7F", 400),
        ("%ED%A0%80", 200),  # a surrogate's bytes are not UTF-8: read as U+FFFD, no match
        ("a%C0%AFb", 200),
    ],
)
async def test_a_kounta_keyword_that_is_not_text_answers_cleanly(
    both: Gateway, xseries: SandboxHandle, keyword: str, status: int
) -> None:
    searches = xseries.count("GET /api/customers")
    response = await both.client.get(
        f"/kounta/{ADDON_TOKEN}/customer-search?company_id={KOUNTA_COMPANY}&keyword={keyword}"
    )
    assert_clean(response)
    assert response.status_code == status, response.text
    if status == 400:
        assert "keyword" in response.json()["error"]
        assert xseries.count("GET /api/customers") == searches
    else:
        assert response.json() == {"members": {}}


@pytest.mark.parametrize("order_id", ["\ud800", "a\x00b", "9" * 101])
async def test_a_redeem_order_id_that_is_not_an_id_redeems_nothing(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle, order_id: str
) -> None:
    url = reward_url(await john(KountaPos(both)), "free-coffee")
    before = writes(xseries, kounta)
    body = json.dumps({"order_id": order_id}).encode()
    response = await both.client.post(
        url.replace("order_id=111", ""), content=body, headers={"Content-Type": "application/json"}
    )
    assert_clean(response)
    assert response.json()["success"] is False
    assert "order_id" in response.json()["error"]
    assert writes(xseries, kounta) == before
    assert balance(xseries, JOHN_SMITH) == Decimal("120")


@pytest.mark.parametrize(
    "order", [{"id": "\ud800", "company_id": "5678"}, {"id": "1", "company_id": "\ud800"}]
)
async def test_a_kounta_webhook_with_ids_that_are_not_text_is_a_400(
    both: Gateway, order: dict[str, str]
) -> None:
    response = await both.client.post("/webhooks/kounta", content=json.dumps(order).encode())
    assert_clean(response)
    assert response.status_code == 400


# --------------------------------------------------------------------------- 7. lengths


async def test_a_long_search_is_refused(gateway: Gateway) -> None:
    message = top_level_validation(await post_json(gateway, SEARCH, {"s": "a" * 201}), "search")
    assert "200" in message


@pytest.mark.parametrize(
    ("call", "name"),
    [
        ("customer-search", "keyword"),
        ("customer-search", "order_id"),
        ("customer-search", "company_id"),
        ("reward-lookup", "customer_id"),
        ("reward-lookup", "reference_id"),
        ("reward-lookup", "order_id"),
        ("reward-lookup", "company_id"),
    ],
)
async def test_kounta_parameters_are_bounded(
    both: Gateway, xseries: SandboxHandle, call: str, name: str
) -> None:
    params = {"keyword": "John", "customer_id": JOHN_KOUNTA, "reference_id": JOHN_SMITH,
              "company_id": KOUNTA_COMPANY, "order_id": "111", "site_id": "123"}  # fmt: skip
    params[name] = ("a" if name == "keyword" else "9") * (201 if name == "keyword" else 101)
    before = writes(xseries)
    response = await both.client.get(f"/kounta/{ADDON_TOKEN}/{call}", params=params)
    assert_clean(response)
    assert response.status_code == 400, response.text
    assert name in response.json()["error"]
    assert writes(xseries) == before


async def test_a_long_idempotency_key_is_refused(gateway: Gateway, xseries: SandboxHandle) -> None:
    paid = member(
        await post_json(gateway, PAY, pay_input(gateway, "1", key="k" * 201)), "payWithLoyalty"
    )
    validation(paid, "idempotencyKey")
    assert writes(xseries) == 0


async def test_long_global_ids_are_not_found_without_being_decoded(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    huge = "A" * 200_000
    paid = member(
        await post_json(
            gateway, PAY, {"input": {"idempotencyKey": "k", "saleId": huge, "amount": "1"}}
        ),
        "payWithLoyalty",
    )
    assert paid["code"] == "NOT_FOUND" and len(paid["message"]) < 200
    found = await post_json(gateway, "query($id: ID!) { customer(id: $id) { id } }", {"id": huge})
    assert_clean(found)
    assert found.json() == {"data": {"customer": None}}
    redeemed = member(
        await post_json(
            gateway,
            REDEEM,
            {
                "input": {
                    "idempotencyKey": "k",
                    "customerId": gateway.id(Kind.CUSTOMER, JOHNNY),
                    "rewardId": huge,
                    "saleId": gateway.id(Kind.SALE, JOHNNY_SALE),
                }
            },
        ),
        "redeemReward",
    )
    assert redeemed["code"] == "NOT_FOUND" and len(redeemed["message"]) < 200
    assert writes(xseries) == 0


# --------------------------------------------------------------------------- 8. operations

TWO_OPERATIONS = "query A { merchant { name } } mutation B { __typename }"


async def test_several_operations_need_an_operation_name(gateway: Gateway) -> None:
    response = await post_raw(gateway, json.dumps({"query": TWO_OPERATIONS}).encode())
    errors = graphql_errors(response)
    assert "operationName" in errors[0]["message"]
    assert response.json().get("data") is None
    chosen = await post_raw(
        gateway, json.dumps({"query": TWO_OPERATIONS, "operationName": "A"}).encode()
    )
    assert chosen.json() == {"data": {"merchant": {"name": "Stark Industries"}}}


async def test_an_operation_name_that_names_no_operation_is_refused(gateway: Gateway) -> None:
    body = {"query": TWO_OPERATIONS, "operationName": "C"}
    errors = graphql_errors(await post_raw(gateway, json.dumps(body).encode()))
    assert "C" in errors[0]["message"] and "operationName" in errors[0]["message"]


# --------------------------------------------------------------------------- 9. production


@pytest.fixture
async def production(runtime: Runtime, xseries: SandboxHandle) -> AsyncIterator[Gateway]:
    settings = runtime.settings.model_copy(update={"environment": Environment.PRODUCTION})
    prod_runtime = Runtime(settings)
    gw = await make_gateway(prod_runtime, xseries, "Prod")
    yield gw
    await gw.client.aclose()
    await prod_runtime.aclose()


def deep_query() -> str:
    nested = "id"
    for _ in range(6):
        nested = f"sales {{ customer {{ {nested} }} }}"
    return f'{{ customers(search: "x") {{ {nested} }} }}'


@pytest.mark.parametrize(
    ("query", "variables", "says"),
    [
        ("{ merchant { nope } }", {}, "nope"),
        (" ".join(f"m{n}: merchant {{ name }}" for n in range(40)).join("{}"), {}, "aliases"),
        (deep_query(), {}, "depth"),
        ('query($n: Int) { customers(search: "x", first: $n) { id } }', {"n": "ten"}, "Int"),
        ("{ merchant { name }", {}, "Syntax Error"),
        (TWO_OPERATIONS, {}, "operationName"),
    ],
)
async def test_production_tells_callers_their_own_mistakes(
    production: Gateway, query: str, variables: dict[str, Any], says: str
) -> None:
    errors = graphql_errors(await post_json(production, query, variables))
    assert says in errors[0]["message"], errors
    assert errors[0]["message"] != "Internal error."


def test_production_masks_only_faults_of_ours() -> None:
    from graphql import GraphQLError

    from gateway.api.graphql.schema import unexpected

    assert unexpected(GraphQLError("boom", path=["merchant"], original_error=KeyError("k")))
    assert not unexpected(GraphQLError("coded", path=["merchant"], extensions={"code": "X"}))
    assert not unexpected(GraphQLError("Cannot query field 'nope' on type 'Merchant'."))
    assert not unexpected(
        GraphQLError("Variable '$n' got invalid value", original_error=ValueError())
    )


# --------------------------------------------------------------------------- 10. Retry-After

PAY_WAIT = """mutation Pay($input: PayWithLoyaltyInput!) {
  payWithLoyalty(input: $input) {
    __typename
    ... on Error { code message }
    ... on RateLimitedError { retryAfterSeconds }
  }
}"""


@pytest.fixture(scope="module")
def throttling_pos() -> Iterator[tuple[ServerThread, dict[str, str]]]:
    """A POS that answers 429 to everything, with whatever ``Retry-After`` a test sets."""
    state = {"retry_after": "1"}

    async def too_many(request: Request) -> JSONResponse:
        headers = {"Retry-After": state["retry_after"]}
        return JSONResponse({"error": "Too Many Requests"}, status_code=429, headers=headers)

    app = Starlette(routes=[Route("/{path:path}", too_many, methods=["GET", "POST", "PUT"])])
    server = ServerThread(app).start()
    yield server, state
    server.stop()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("99999999999999999999", MAX_RETRY_AFTER_S),
        ("1e999", None),
        ("-5", None),
        ("Infinity", None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S),
        ("Fri, 31 Dec 99999 23:59:59 GMT", None),
        ("Mon, 01 Jan 0001 00:00:00 GMT", 0),
    ],
)
async def test_a_hostile_retry_after_becomes_a_sane_rate_limited_member(
    runtime: Runtime,
    throttling_pos: tuple[ServerThread, dict[str, str]],
    header: str,
    expected: int | None,
) -> None:
    server, state = throttling_pos
    state["retry_after"] = header
    services = Services(runtime)
    merchant = await add_merchant(
        services,
        name="Throttled",
        xseries=XSeriesCredentials(server.url, XSERIES_TOKEN),
        verify=False,
    )
    async with runtime.db.transaction() as session:
        key = await create_api_key(session, merchant.id)
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        gw = Gateway(client, runtime, merchant, key)
        result = member(await post_json(gw, PAY_WAIT, pay_input(gw, "1")), "payWithLoyalty")
    assert result["code"] == "RATE_LIMITED", result
    assert result["retryAfterSeconds"] == expected


# --------------------------------------------------------------------------- 11. deadlines


async def test_a_kounta_lookup_answers_503_within_its_deadline_when_xseries_is_slow(
    runtime: Runtime, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    settings = runtime.settings.model_copy(update={"kounta_deadline_s": 1.0})
    slow_runtime = Runtime(settings)
    try:
        gw = await make_kounta_gateway(slow_runtime, kounta, "Slow", xseries=xseries)
        xseries.faults(latency_ms=5_000)
        started = time.monotonic()
        response = await KountaPos(gw).lookup(JOHN_KOUNTA, JOHN_SMITH)
        elapsed = time.monotonic() - started
        await gw.client.aclose()
    finally:
        await slow_runtime.aclose()
    assert_clean(response)
    assert response.status_code == 503
    assert set(response.json()) == {"error"}
    assert elapsed < 1.0 + 2.0


async def test_graphql_answers_within_its_deadline_when_xseries_is_slow(
    runtime: Runtime, xseries: SandboxHandle
) -> None:
    settings = runtime.settings.model_copy(update={"graphql_deadline_s": 1.0})
    slow_runtime = Runtime(settings)
    try:
        gw = await make_gateway(slow_runtime, xseries, "Slow")
        xseries.faults(latency_ms=5_000)
        started = time.monotonic()
        read = await post_json(
            gw, "query($id: ID!) { customer(id: $id) { id } }", {"id": gw.id(Kind.CUSTOMER, JOHNNY)}
        )
        read_s = time.monotonic() - started
        started = time.monotonic()
        paid = await post_json(gw, PAY, pay_input(gw, "1"))
        pay_s = time.monotonic() - started
        await gw.client.aclose()
    finally:
        await slow_runtime.aclose()
    errors = graphql_errors(read)
    assert errors[0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert read_s < 1.0 + 2.0
    result = member(paid, "payWithLoyalty")
    assert result["code"] in ("UPSTREAM_UNAVAILABLE", "OUTCOME_PENDING"), result
    assert pay_s < 1.0 + 2.0
    xseries.clear_faults()
    assert balance(xseries, JOHNNY) == Decimal("12")

"""What the benchmark asks, as data both drivers can send, and the least each request needs.

A request is a template: ``@N@`` becomes a token unique to the request (an idempotency key),
``@ITEM@`` the next item of a pool the run prepared (a fresh order's redeem URL, an open
sale). The minimum upstream calls are the ones no correct gateway could skip; the issue's
target is to make exactly these (issue 11, "Targets").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos

UNIQUE = "@N@"
ITEM = "@ITEM@"

XSERIES_TOKEN = "bench-xseries"  # noqa: S105 - sandbox tokens, made up for the run
KOUNTA_TOKEN = "bench-kounta"  # noqa: S105
ADDON = "bench-addon"
KOUNTA_COMPANY = "5678"
KOUNTA_SITE = "2301"
# Demo fixtures (gateway/sandbox/fixtures/): Tony and John hold points at X-Series, and
# John is Kounta customer 3842, linked by reference_id.
TONY = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b01"
JOHN = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b04"
JOHN_KOUNTA = "3842"
# Members the write scenarios spread over (bench/stack.py adds them to both sandboxes): a
# payment or redemption holds its customer's balance lease, so one customer for all would
# measure a queue, not a till; more of them than requests in flight, so none waits on another.
MEMBERS = 64


def member(index: int) -> tuple[str, str]:
    """The X-Series id and the linked Kounta id of bench member ``index``."""
    number = index % MEMBERS
    return f"0b0b0b0b-0000-4000-8000-{number:012d}", str(900_000 + number)


TSHIRT = "b8ca3a65-0183-11e4-fbb5-6ba391393b01"
WATCH = "b8ca3a65-0183-11e4-fbb5-6ba391393b03"
GST = "0adfd74a-153e-11e9-fa42-67b5781c0300"
REGISTER = "0adfd74a-153e-11e9-fa42-67b5781c0001"
USER = "0adfd74a-153e-11e9-fa42-67b5781c0200"
CASH = "dc85058a-a683-11e5-e112-51cc5a8f0001"

Target = Literal["gateway", "hello"]
Pool = Literal["kounta-offers", "open-sales", "members"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: str | None = None
    expect: str = ""
    """Text every good answer contains: a write that fails validation is an error, not a
    fast request (GraphQL answers 200 with an error member)."""

    def render(self, unique: str, item: str) -> tuple[str, str | None]:
        def fill(text: str) -> str:
            return text.replace(UNIQUE, unique).replace(ITEM, item)

        return fill(self.path), None if self.body is None else fill(self.body)


@dataclass(frozen=True)
class Minimum:
    calls: int
    critical: int
    """Round trips one after the other among ``calls``: the upstream time a caller must wait."""
    why: str


@dataclass(frozen=True)
class Scenario:
    name: str
    target: Target
    request: Request
    minimum: Minimum
    read: bool = True
    pool: Pool | None = None
    reusable: bool = False
    """Whether a pool item may serve again once every item has served (a second 1.00 payment
    on an open sale is still a valid payment; a second use of an offer only replays it)."""


def graphql(query: str, expect: str, variables: dict[str, Any] | None = None) -> Request:
    body = json.dumps({"query": query, "variables": variables or {}})
    return Request("POST", "/graphql", body, expect)


def kounta(endpoint: str, query: str, expect: str) -> Request:
    where = f"company_id={KOUNTA_COMPANY}&site_id={KOUNTA_SITE}&order_id=111"
    return Request("GET", f"/kounta/{ADDON}/{endpoint}?{query}&{where}", None, expect)


def sale_id(merchant_id: str, pos_id: str) -> str:
    return ids.encode(Kind.SALE, Pos.XSERIES, merchant_id, pos_id)


def customer_id(merchant_id: str, pos_id: str) -> str:
    return ids.encode(Kind.CUSTOMER, Pos.XSERIES, merchant_id, pos_id)


QUOTE_LINES = [
    {"productId": TSHIRT, "quantity": "2", "price": "20", "tax": "3", "taxId": GST},
    {"productId": WATCH, "quantity": "1", "price": "1000", "tax": "150", "taxId": GST},
]

WARM_CACHE = (
    "a balance may come from the cache within its TTL (issue 11, item 3: fresh after the "
    "gateway's own writes, within the TTL after the till's)"
)


def scenarios(merchant_id: str) -> dict[str, Scenario]:
    tony = customer_id(merchant_id, TONY)
    customer = "query($id: ID!) { customer(id: $id) { loyaltyBalance rewards { id } } }"
    activity = (
        "query($id: ID!) { customer(id: $id) { activity(first: 20) { totalCount "
        "edges { cursor node { id kind points reason } } pageInfo { hasNextPage } } } }"
    )
    create_sale = (
        "mutation($i: CreateSaleInput!) { createSale(input: $i) { __typename "
        "... on CreateSaleSuccess { sale { id status } } ... on Error { code message } } }"
    )
    pay = (
        "mutation($i: PayWithLoyaltyInput!) { payWithLoyalty(input: $i) { __typename "
        "... on PayWithLoyaltySuccess { payment { amount balanceAfter } } "
        "... on Error { code message } } }"
    )
    sale_input = {
        "idempotencyKey": f"bench-{UNIQUE}",
        "customerId": ITEM,
        "registerId": REGISTER,
        "userId": USER,
        "lines": [QUOTE_LINES[0] | {"quantity": "1"}],
        "payments": [{"paymentTypeId": CASH, "amount": "23"}],
    }
    found = [
        Scenario("hello", "hello", graphql("{ hello }", '"hello"'),
                 Minimum(0, 0, "the bare Strawberry app: the baseline every ratio is of")),
        Scenario("merchant", "gateway",
                 graphql("{ merchant { name pointsLabel loyaltyEnabled } }", '"merchant"'),
                 Minimum(0, 0, "auth and the account's config, cached: the gateway's own cost")),
        Scenario("kounta-search", "gateway",
                 kounta("customer-search", "keyword=Stark", '"members"'),
                 Minimum(3, 1, "one word is a first name, a last name or a code: X-Series' "
                         "search has no OR, so three searches, at once; Kounta's directory "
                         "is cached")),
        Scenario("kounta-lookup", "gateway",
                 kounta("reward-lookup", f"customer_id={JOHN_KOUNTA}&reference_id={JOHN}",
                        '"rewards"'),
                 Minimum(1, 1, "the X-Series customer, read fresh: the balance decides what "
                         "may be redeemed (issue 11, item 3); the catalogue is the gateway's")),
        Scenario("kounta-redeem", "gateway", Request("GET", ITEM, None, '"success":true'),
                 Minimum(4, 3, "the order (open, what is due) and the balance, at once; the "
                         "X-Series debit; the payment on the order"),
                 read=False, pool="kounta-offers"),
        Scenario("customer", "gateway",
                 graphql(customer, '"loyaltyBalance"', {"id": tony}),
                 Minimum(0, 0, f"cache-warm: {WARM_CACHE}; the catalogue is the gateway's")),
        Scenario("search", "gateway",
                 graphql('{ customers(search: "Stark") { id firstName loyaltyBalance } }',
                         '"customers"'),
                 Minimum(3, 1, "both POS at once: three X-Series searches (no OR in its "
                         "search), Kounta's directory cached")),
        Scenario("quote", "gateway",
                 graphql("query($i: LoyaltyQuoteInput!) { loyaltyQuote(input: $i) "
                         "{ loyaltyEarned total } }", '"loyaltyEarned"',
                         {"i": {"customerId": tony, "lines": QUOTE_LINES}}),
                 Minimum(0, 0, "products, config and the customer cache-warm: a quote moves "
                         "no money")),
        Scenario("create-sale", "gateway",
                 graphql(create_sale, '"CreateSaleSuccess"', {"i": sale_input}),
                 Minimum(1, 1, "the sale's POST; products, config and the customer's "
                         "loyalty flag may come from the cache"),
                 read=False, pool="members", reusable=True),
        Scenario("pay-with-loyalty", "gateway",
                 graphql(pay, '"PayWithLoyaltySuccess"', {"i": {
                     "idempotencyKey": f"bench-{UNIQUE}", "saleId": ITEM, "amount": "1.00"}}),
                 Minimum(3, 3, "the sale, fresh (open, what is due, whose); its customer's "
                         "balance, fresh; the sale's update with the payment"),
                 read=False, pool="open-sales", reusable=True),
        Scenario("activity", "gateway",
                 graphql(activity, '"totalCount"', {"id": tony}),
                 Minimum(0, 0, "the history is the gateway's own; the customer cache-warm")),
    ]  # fmt: skip
    return {scenario.name: scenario for scenario in found}

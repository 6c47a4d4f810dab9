"""A short Python client of the gateway's GraphQL API, with gql: find a customer, pay part of
their open sale with their points, and read their loyalty activity.

It sends the operations in this folder (``queries/``, ``mutations/``) as they are, and
validates them against the published schema (``schema/schema.graphql``) before sending.
Money stays ``Decimal`` end to end: the API writes it as strings ("12.50").

Against ``uv run gateway demo`` (see README.md in this folder)::

    uv run python examples/client.py --url http://127.0.0.1:8000/graphql \\
        --key <API key the demo printed> --search "Johnny Bravo" --amount 5
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXTransport

HERE = Path(__file__).resolve().parent
SCHEMA = HERE.parent / "schema" / "schema.graphql"


def operation(name: str, variables: dict[str, Any]) -> GraphQLRequest:
    """One of this folder's operations (e.g. ``queries/customers``) with its variables."""
    return GraphQLRequest((HERE / f"{name}.graphql").read_text(), variable_values=variables)


def connect(url: str, api_key: str, *, timeout_s: float = 30) -> Client:
    transport = HTTPXTransport(
        url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s
    )
    return Client(transport=transport, schema=SCHEMA.read_text(), execute_timeout=timeout_s)


@dataclass(frozen=True)
class OpenSale:
    id: str
    amount_due: Decimal


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    balance: Decimal
    open_sales: list[OpenSale]


@dataclass(frozen=True)
class LoyaltyPayment:
    amount: Decimal
    balance_after: Decimal
    amount_due: Decimal


@dataclass(frozen=True)
class Activity:
    occurred_at: str
    kind: str
    points: Decimal
    reason: str


class Refused(Exception):
    """The gateway refused, with a stable code (README, "GraphQL"): show the message; on
    OUTCOME_PENDING, retry with the same idempotency key after ``retry_after_s``."""

    def __init__(self, code: str, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.retry_after_s = retry_after_s


def find_customer(client: Client, search: str) -> Customer:
    """The first customer matching a name or an email, with their open sales."""
    found = client.execute(operation("queries/customers", {"search": search, "first": 5}))
    if not found["customers"]:
        raise LookupError(f"no customer matches {search!r}")
    customer = found["customers"][0]
    return Customer(
        id=customer["id"],
        name=f"{customer['firstName']} {customer['lastName'] or ''}".strip(),
        balance=Decimal(customer["loyaltyBalance"]),
        open_sales=[
            OpenSale(sale["id"], Decimal(sale["amountDue"]))
            for sale in customer["sales"]
            if sale["state"] == "OPEN" and Decimal(sale["amountDue"]) > 0
        ],
    )


def pay_with_loyalty(
    client: Client, sale_id: str, amount: Decimal, idempotency_key: str
) -> LoyaltyPayment:
    """Pay ``amount`` of the sale with points. Keep ``idempotency_key`` for a retry: the
    same key never pays twice."""
    variables = {"input": {"idempotencyKey": idempotency_key, "saleId": sale_id,
                           "amount": f"{amount:.2f}"}}  # fmt: skip
    result = client.execute(operation("mutations/payWithLoyalty", variables))["payWithLoyalty"]
    if result["__typename"] != "PayWithLoyaltySuccess":
        raise Refused(result["code"], result["message"], result.get("retryAfterSeconds"))
    return LoyaltyPayment(
        amount=Decimal(result["payment"]["amount"]),
        balance_after=Decimal(result["payment"]["balanceAfter"]),
        amount_due=Decimal(result["sale"]["amountDue"]),
    )


def read_activity(client: Client, customer_id: str, first: int = 10) -> list[Activity]:
    """The customer's latest balance movements, newest first."""
    variables = {"id": customer_id, "first": first, "after": None}
    customer = client.execute(operation("queries/customer-activity", variables))["customer"]
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    return [
        Activity(
            occurred_at=edge["node"]["occurredAt"],
            kind=edge["node"]["kind"],
            points=Decimal(edge["node"]["points"]),
            reason=edge["node"]["reason"],
        )
        for edge in customer["activity"]["edges"]
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:8000/graphql")
    parser.add_argument("--key", required=True, help="an API key (the demo prints one)")
    parser.add_argument("--search", default="Johnny Bravo")
    parser.add_argument("--amount", type=Decimal, default=Decimal(5))
    args = parser.parse_args(argv)

    client = connect(args.url, args.key)
    customer = find_customer(client, args.search)
    print(f"{customer.name}: {customer.balance} points, {len(customer.open_sales)} open sale(s)")
    if not customer.open_sales:
        raise SystemExit("nothing to pay: the customer has no open sale")
    sale = customer.open_sales[0]
    try:
        payment = pay_with_loyalty(client, sale.id, args.amount, f"example-{uuid.uuid4()}")
    except Refused as refused:
        raise SystemExit(f"refused: {refused}") from None
    print(
        f"paid {payment.amount} with points: {payment.balance_after} left, "
        f"{payment.amount_due} still due"
    )
    for activity in read_activity(client, customer.id):
        print(
            f"  {activity.occurred_at}  {activity.kind:<9} {activity.points:>8}  {activity.reason}"
        )


if __name__ == "__main__":
    main()

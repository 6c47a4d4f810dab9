"""GraphQL input types (schema/schema.graphql) and their translation into service inputs.

The translation checks the free-text ids the services pass on to a POS unread (bounded,
printable: ``domain/text.py``), naming the field; global ids are checked when decoded.
"""

from __future__ import annotations

from decimal import Decimal

import strawberry

from gateway.api.graphql.scalars import SignedDecimal
from gateway.domain.text import check_text
from gateway.services.create_sale import NewSale
from gateway.services.create_sale import PaymentInput as ServicePayment
from gateway.services.loyalty import LineInput


@strawberry.input
class SaleLineInput:
    product_id: strawberry.ID
    quantity: Decimal
    price: Decimal = strawberry.field(description="Unit price, tax excluded.")
    tax: Decimal = strawberry.field(description="Unit tax.")
    tax_id: strawberry.ID

    def to_service(self, where: str) -> LineInput:
        return LineInput(
            check_text(str(self.product_id), f"{where}.productId"),
            self.quantity,
            self.price,
            self.tax,
            check_text(str(self.tax_id), f"{where}.taxId"),
        )


def lines_to_service(lines: list[SaleLineInput]) -> list[LineInput]:
    return [line.to_service(f"lines[{n}]") for n, line in enumerate(lines)]


@strawberry.input
class PaymentInput:
    payment_type_id: strawberry.ID = strawberry.field(
        description="The store's payment type id (its `id`, not `payment_type_id`)."
    )
    amount: Decimal


@strawberry.input
class LoyaltyQuoteInput:
    customer_id: strawberry.ID | None = None
    lines: list[SaleLineInput]
    loyalty_payment: Decimal | None = strawberry.field(
        default=None, description="The part to be paid with loyalty: it earns nothing."
    )
    register_id: strawberry.ID | None = strawberry.field(
        default=None,
        description=(
            "The X-Series register the sale is rung up at: its outlet's own price-book "
            "entries then apply. Without it, only entries for all outlets do."
        ),
    )

    def register_to_service(self) -> str | None:
        return None if self.register_id is None else check_text(str(self.register_id), "registerId")


@strawberry.input
class CreateSaleInput:
    idempotency_key: str
    customer_id: strawberry.ID | None = None
    register_id: strawberry.ID
    user_id: strawberry.ID
    status: str | None = "CLOSED"
    lines: list[SaleLineInput]
    loyalty_payment: Decimal | None = None
    payments: list[PaymentInput] | None = None

    def to_service(self) -> NewSale:
        return NewSale(
            idempotency_key=self.idempotency_key,
            register_id=check_text(str(self.register_id), "registerId"),
            user_id=check_text(str(self.user_id), "userId"),
            lines=lines_to_service(self.lines),
            customer_id=str(self.customer_id) if self.customer_id else None,
            status=self.status or "CLOSED",
            loyalty_payment=self.loyalty_payment,
            payments=[
                ServicePayment(
                    check_text(str(p.payment_type_id), f"payments[{n}].paymentTypeId"), p.amount
                )
                for n, p in enumerate(self.payments or [])
            ],
        )


@strawberry.input
class PayWithLoyaltyInput:
    idempotency_key: str
    sale_id: strawberry.ID
    amount: Decimal


@strawberry.input
class RedeemRewardInput:
    idempotency_key: str
    customer_id: strawberry.ID
    reward_id: strawberry.ID
    sale_id: strawberry.ID = strawberry.field(description="An X-Series sale or a Kounta order.")
    quantity: Decimal | None = strawberry.field(
        default=None, description="Points to use, for a variable reward."
    )


@strawberry.input
class AdjustPointsInput:
    idempotency_key: str
    customer_id: strawberry.ID
    points: SignedDecimal = strawberry.field(
        description='Positive credits, negative debits ("-5.00"); never zero, two places at most.'
    )
    reason: str = strawberry.field(
        description="Why, in words the customer will read in their history (required)."
    )

"""GraphQL input types (DESIGN §4) and their translation into service inputs."""

from __future__ import annotations

from decimal import Decimal

import strawberry

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

    def to_service(self) -> LineInput:
        return LineInput(
            str(self.product_id), self.quantity, self.price, self.tax, str(self.tax_id)
        )


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
            register_id=str(self.register_id),
            user_id=str(self.user_id),
            lines=[line.to_service() for line in self.lines],
            customer_id=str(self.customer_id) if self.customer_id else None,
            status=self.status or "CLOSED",
            loyalty_payment=self.loyalty_payment,
            payments=[
                ServicePayment(str(p.payment_type_id), p.amount) for p in self.payments or []
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

"""The GraphQL object types of DESIGN §4, thin wrappers over domain values."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from gateway.api.graphql.context import Context
from gateway.domain import customers, ids, loyalty, sales
from gateway.domain.ids import Kind
from gateway.domain.merchant import PointsSource, Pos
from gateway.domain.sales import SaleState
from gateway.services import customers as customer_service

strawberry.enum(Pos, name="Pos")
strawberry.enum(PointsSource, name="PointsSource")
strawberry.enum(SaleState, name="SaleState")
Info = strawberry.Info[Context, None]


@strawberry.type
class Merchant:
    id: strawberry.ID
    name: str
    pos_systems: list[Pos]
    points_source: PointsSource
    points_label: str
    loyalty_enabled: bool
    loyalty_ratio: Decimal | None


@strawberry.type
class Customer:
    value: strawberry.Private[customers.Customer]
    merchant_id: strawberry.Private[str]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(
            ids.encode(Kind.CUSTOMER, self.value.pos, self.merchant_id, self.value.pos_id)
        )

    @strawberry.field
    def pos(self) -> Pos:
        return self.value.pos

    @strawberry.field
    def pos_id(self) -> strawberry.ID:
        return strawberry.ID(self.value.pos_id)

    @strawberry.field
    def first_name(self) -> str:
        return self.value.first_name

    @strawberry.field
    def last_name(self) -> str | None:
        return self.value.last_name

    @strawberry.field
    def email(self) -> str | None:
        return self.value.email

    @strawberry.field
    def loyalty_enabled(self) -> bool:
        return self.value.loyalty_enabled

    @strawberry.field(description="The balance of record (DESIGN §1, points source).")
    def loyalty_balance(self) -> Decimal:
        return self.value.balance

    @strawberry.field(description="The customer's most recent sales, newest first.")
    async def sales(self, info: Info, first: int | None = 10) -> list[Sale]:
        scope = info.context.scope
        found = await customer_service.customer_sales(scope, self.value, first or 10)
        return [Sale(value=sale, merchant_id=self.merchant_id) for sale in found]


@strawberry.type
class SaleLine:
    value: strawberry.Private[sales.SaleLine]

    @strawberry.field
    def product_id(self) -> strawberry.ID:
        return strawberry.ID(self.value.product_id)

    @strawberry.field
    def name(self) -> str | None:
        return self.value.name

    @strawberry.field
    def quantity(self) -> Decimal:
        return self.value.quantity

    @strawberry.field(description="Unit price, tax excluded.")
    def price(self) -> Decimal:
        return self.value.price

    @strawberry.field(description="Unit tax.")
    def tax(self) -> Decimal:
        return self.value.tax

    @strawberry.field(description="Loyalty earned per unit (X-Series multiplies by quantity).")
    def loyalty_value(self) -> Decimal:
        return self.value.loyalty_value


@strawberry.type
class Payment:
    name: str
    amount: Decimal
    is_loyalty: bool


@strawberry.type
class Sale:
    value: strawberry.Private[sales.Sale]
    merchant_id: strawberry.Private[str]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(
            ids.encode(Kind.SALE, self.value.pos, self.merchant_id, self.value.pos_id)
        )

    @strawberry.field
    def pos(self) -> Pos:
        return self.value.pos

    @strawberry.field
    def pos_id(self) -> strawberry.ID:
        return strawberry.ID(self.value.pos_id)

    @strawberry.field(description="The POS's own status, e.g. ONACCOUNT or COMPLETE.")
    def status(self) -> str:
        return self.value.status

    @strawberry.field
    def state(self) -> SaleState:
        return self.value.state

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        if not self.value.customer_pos_id or self.value.pos is not Pos.XSERIES:
            return None
        found = await info.context.customers.load(self.value.customer_pos_id)
        return Customer(value=found, merchant_id=self.merchant_id) if found else None

    @strawberry.field
    def lines(self) -> list[SaleLine]:
        return [SaleLine(value=line) for line in self.value.lines]

    @strawberry.field(description="Total excluding tax.")
    def total_price(self) -> Decimal:
        return self.value.total_price

    @strawberry.field
    def total_tax(self) -> Decimal:
        return self.value.total_tax

    @strawberry.field(description="Total including tax.")
    def total(self) -> Decimal:
        return self.value.total

    @strawberry.field
    def total_paid(self) -> Decimal:
        return self.value.total_paid

    @strawberry.field
    def amount_due(self) -> Decimal:
        return self.value.amount_due

    @strawberry.field(description="Loyalty this sale earns (or earned, once closed).")
    def loyalty_earned(self) -> Decimal:
        return self.value.earned

    @strawberry.field
    def payments(self) -> list[Payment]:
        return [Payment(name=p.name, amount=p.amount, is_loyalty=p.is_loyalty)
                for p in self.value.payments]  # fmt: skip


@strawberry.type
class LoyaltyPayment:
    id: strawberry.ID
    amount: Decimal
    balance_after: Decimal
    sale: Sale


@strawberry.type
class QuoteLine:
    value: strawberry.Private[loyalty.QuotedLine]

    @strawberry.field
    def product_id(self) -> strawberry.ID:
        return strawberry.ID(self.value.product_id)

    @strawberry.field
    def quantity(self) -> Decimal:
        return self.value.quantity

    @strawberry.field(description="What the line's loyalty_value will be (per unit).")
    def unit_loyalty_value(self) -> Decimal:
        return self.value.unit_loyalty_value

    @strawberry.field(description="What the line earns: unit value × quantity.")
    def loyalty_value(self) -> Decimal:
        return self.value.loyalty_value


@strawberry.type
class LoyaltyQuote:
    lines: list[QuoteLine]
    loyalty_earned: Decimal
    total: Decimal

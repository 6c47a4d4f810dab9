"""The GraphQL object types of DESIGN §4, thin wrappers over domain values."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from gateway.api.graphql.context import Context
from gateway.domain import customers, ids, loyalty, rewards, sales
from gateway.domain.errors import ErrorCode, GatewayError
from gateway.domain.ids import Kind
from gateway.domain.merchant import PointsSource, Pos
from gateway.domain.rewards import RewardKind
from gateway.domain.sales import SaleState
from gateway.services import customers as customer_service
from gateway.services import members
from gateway.services import rewards as reward_service

strawberry.enum(Pos, name="Pos")
strawberry.enum(PointsSource, name="PointsSource")
strawberry.enum(SaleState, name="SaleState")
strawberry.enum(RewardKind, name="RewardKind")
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

    @strawberry.field(description="The catalogue, with what this customer can redeem now.")
    async def rewards(self, info: Info) -> list[Reward]:
        scope = info.context.scope
        try:
            member = await members.member_of(scope, self.value)
        except GatewayError as error:
            if error.code is not ErrorCode.VALIDATION:
                raise
            catalogue = await reward_service.list_rewards(scope)  # not a member (yet)
            return [Reward.of(r, self.merchant_id, available=False) for r in catalogue]
        offers = await reward_service.offers_for(scope, member)
        return [
            Reward.of(o.reward, self.merchant_id, available=o.available, points=o.points_required)
            for o in offers
        ]

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
        if not self.value.customer_pos_id:
            return None
        loader = info.context.customers
        found = await loader.load((self.value.pos, self.value.customer_pos_id))
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


@strawberry.type
class Reward:
    reward: strawberry.Private[rewards.Reward]
    merchant_id: strawberry.Private[str]
    points: strawberry.Private[Decimal | None]
    is_available: strawberry.Private[bool | None]

    @classmethod
    def of(
        cls,
        reward: rewards.Reward,
        merchant_id: str,
        *,
        available: bool | None = None,
        points: Decimal | None = None,
    ) -> Reward:
        return cls(reward=reward, merchant_id=merchant_id, points=points, is_available=available)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(ids.encode(Kind.REWARD, None, self.merchant_id, self.reward.id))

    @strawberry.field
    def title(self) -> str:
        return self.reward.title

    @strawberry.field
    def terms(self) -> str | None:
        return self.reward.terms

    @strawberry.field
    def kind(self) -> RewardKind:
        return self.reward.kind

    @strawberry.field(
        description="Points one redemption takes; for a variable reward the most it may take "
        "(0: up to the balance), and for the customer in hand at most their balance."
    )
    def points_required(self) -> Decimal:
        return self.reward.points_required if self.points is None else self.points

    @strawberry.field(
        description="PAYMENT: money paid (per point when variable); PERCENT_DISCOUNT: percent off."
    )
    def value(self) -> Decimal:
        return self.reward.value

    @strawberry.field
    def variable_quantity(self) -> bool:
        return self.reward.variable_quantity

    @strawberry.field
    def action_label(self) -> str:
        return self.reward.action_label

    @strawberry.field(description="For the customer in hand: can they redeem it now?")
    def available(self) -> bool | None:
        return self.is_available


@strawberry.type
class Redemption:
    id: strawberry.ID
    reward: Reward
    sale: Sale
    points_debited: Decimal
    amount_applied: Decimal
    status: str
    member_id: strawberry.Private[str]
    merchant_id: strawberry.Private[str]

    @strawberry.field
    async def customer(self, info: Info) -> Customer:
        member = await members.member(info.context.scope, self.member_id)
        return Customer(value=member.customer, merchant_id=self.merchant_id)

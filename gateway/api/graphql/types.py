"""The GraphQL object types (schema/schema.graphql), thin wrappers over domain values."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from gateway.api.graphql.context import Context
from gateway.api.graphql.errors import top_level
from gateway.domain import customers, ids, loyalty, rewards, sales
from gateway.domain.errors import GatewayError, ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import ConnectionStatus, PointsSource, Pos, VoidPolicy
from gateway.domain.rewards import RewardKind
from gateway.domain.sales import SaleState
from gateway.services import customers as customer_service
from gateway.services import history, members
from gateway.services import rewards as reward_service

if TYPE_CHECKING:
    from gateway.api.graphql.history import LoyaltyActivityConnection

strawberry.enum(Pos, name="Pos")
strawberry.enum(PointsSource, name="PointsSource")
strawberry.enum(SaleState, name="SaleState")
strawberry.enum(RewardKind, name="RewardKind")
strawberry.enum(
    ConnectionStatus,
    name="ConnectionStatus",
    description="CONNECTED; RECONNECT_NEEDED: the merchant must connect it again (a refresh "
    "refused, a token revoked, a permission missing); DISCONNECTED.",
)
strawberry.enum(
    VoidPolicy,
    name="VoidPolicy",
    description="What points redeemed on an order or sale become when it is voided, "
    "rejected or deleted: RETURN gives them back to the customer, KEEP leaves them spent.",
)
Info = strawberry.Info[Context, None]
HISTORY = strawberry.lazy("gateway.api.graphql.history")


@strawberry.interface(
    description="Anything with a global id: `node(id:)` finds it again, for the same API key."
)
class Node:
    id: strawberry.ID


@strawberry.type
class PosConnection:
    pos: Pos
    status: ConnectionStatus
    expires_at: datetime | None = strawberry.field(
        description="When the access token expires (it is refreshed before): null when it "
        "does not (a personal token) or when not connected."
    )
    reason: str | None = strawberry.field(description="Why it is not connected, if it is not.")


@strawberry.type
class Merchant:
    id: strawberry.ID
    name: str
    pos_systems: list[Pos]
    points_source: PointsSource
    points_label: str
    loyalty_enabled: bool = strawberry.field(
        description="False too while the POS that keeps the balance is not connected."
    )
    loyalty_ratio: Decimal | None
    connections: list[PosConnection] = strawberry.field(
        description="Each POS the merchant has connected, and the state of that connection."
    )
    redeemed_points_on_void: VoidPolicy = strawberry.field(
        description="Set with `gateway merchants set NAME --redeemed-points-on-void`."
    )


@strawberry.type
class Customer(Node):
    id: strawberry.ID
    pos: Pos
    pos_id: strawberry.ID
    first_name: str
    last_name: str | None
    email: str | None
    loyalty_enabled: bool
    loyalty_balance: Decimal = strawberry.field(
        description="The balance of record: X-Series' loyalty balance, or the gateway's own ledger."
    )
    value: strawberry.Private[customers.Customer]
    merchant_id: strawberry.Private[str]

    @classmethod
    def of(cls, customer: customers.Customer, merchant_id: str) -> Customer:
        return cls(
            id=strawberry.ID(ids.encode(Kind.CUSTOMER, customer.pos, merchant_id, customer.pos_id)),
            pos=customer.pos,
            pos_id=strawberry.ID(customer.pos_id),
            first_name=customer.first_name,
            last_name=customer.last_name,
            email=customer.email,
            loyalty_enabled=customer.loyalty_enabled,
            loyalty_balance=customer.balance,
            value=customer,
            merchant_id=merchant_id,
        )

    @strawberry.field(description="The catalogue, with what this customer can redeem now.")
    async def rewards(self, info: Info) -> list[Reward]:
        """Offered on the balance shown beside them (cached for display: the gateway's own
        writes and the POS's webhooks forget it at once, a till change without one shows
        within GATEWAY_CACHE_TTL_CUSTOMER_S). Redeeming decides on the balance read then."""
        scope = info.context.scope
        try:
            member = await members.member_of(scope, self.value)
        except ValidationError:
            catalogue = await reward_service.list_rewards(scope)  # not a member (yet)
            return [Reward.of(r, self.merchant_id, available=False) for r in catalogue]
        offers = await reward_service.offers_for(scope, member)
        return [
            Reward.of(o.reward, self.merchant_id, available=o.available, points=o.points_required)
            for o in offers
        ]

    @strawberry.field(
        description="Every movement of the customer's balance, newest first, each once with "
        "its reason: a Relay connection. `first`: 1 to 100; `after`: an `endCursor` of this "
        "list. A customer who holds no balance here has none."
    )
    async def activity(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Annotated[LoyaltyActivityConnection, HISTORY]:
        from gateway.api.graphql.history import LoyaltyActivityConnection

        scope = info.context.scope
        try:
            found = await history.page(
                scope, self.value, first=20 if first is None else first, after=after
            )
        except GatewayError as error:
            raise top_level(error) from None
        return LoyaltyActivityConnection.of(found, self.merchant_id, first_page=after is None)

    @strawberry.field(description="The customer's most recent sales, newest first.")
    async def sales(self, info: Info, first: int | None = 10) -> list[Sale]:
        scope = info.context.scope
        found = await customer_service.customer_sales(scope, self.value, first or 10)
        return [Sale.of(sale, self.merchant_id) for sale in found]


@strawberry.type
class SaleLine:
    product_id: strawberry.ID
    name: str | None
    quantity: Decimal
    price: Decimal = strawberry.field(description="Unit price, tax excluded.")
    tax: Decimal = strawberry.field(description="Unit tax.")
    loyalty_value: Decimal = strawberry.field(
        description="Loyalty earned per unit (X-Series multiplies by quantity)."
    )

    @classmethod
    def of(cls, line: sales.SaleLine) -> SaleLine:
        return cls(
            product_id=strawberry.ID(line.product_id),
            name=line.name,
            quantity=line.quantity,
            price=line.price,
            tax=line.tax,
            loyalty_value=line.loyalty_value,
        )


@strawberry.type
class Payment:
    name: str
    amount: Decimal
    is_loyalty: bool


async def sale_customer(root: Sale, info: Info) -> Customer | None:
    """A sale's customer, loaded once per request however many sales name them."""
    if not root.value.customer_pos_id:
        return None
    found = await info.context.customers.load((root.value.pos, root.value.customer_pos_id))
    return Customer.of(found, root.merchant_id) if found else None


@strawberry.type
class Sale(Node):
    id: strawberry.ID
    pos: Pos
    pos_id: strawberry.ID
    status: str = strawberry.field(description="The POS's own status, e.g. ONACCOUNT or COMPLETE.")
    state: SaleState
    value: strawberry.Private[sales.Sale]
    merchant_id: strawberry.Private[str]

    customer: Customer | None = strawberry.field(resolver=sale_customer)
    lines: list[SaleLine]
    total_price: Decimal = strawberry.field(description="Total excluding tax.")
    total_tax: Decimal
    total: Decimal = strawberry.field(description="Total including tax.")
    total_paid: Decimal
    amount_due: Decimal
    loyalty_earned: Decimal = strawberry.field(
        description="Loyalty this sale earns (or earned, once closed)."
    )
    payments: list[Payment]

    @classmethod
    def of(cls, sale: sales.Sale, merchant_id: str) -> Sale:
        return cls(
            id=strawberry.ID(ids.encode(Kind.SALE, sale.pos, merchant_id, sale.pos_id)),
            pos=sale.pos,
            pos_id=strawberry.ID(sale.pos_id),
            status=sale.status,
            state=sale.state,
            lines=[SaleLine.of(line) for line in sale.lines],
            total_price=sale.total_price,
            total_tax=sale.total_tax,
            total=sale.total,
            total_paid=sale.total_paid,
            amount_due=sale.amount_due,
            loyalty_earned=sale.earned,
            payments=[Payment(name=p.name, amount=p.amount, is_loyalty=p.is_loyalty)
                      for p in sale.payments],
            value=sale,
            merchant_id=merchant_id,
        )  # fmt: skip


@strawberry.type
class LoyaltyPayment:
    id: strawberry.ID
    amount: Decimal
    balance_after: Decimal
    sale: Sale


@strawberry.type
class QuoteLine:
    product_id: strawberry.ID
    quantity: Decimal
    unit_loyalty_value: Decimal = strawberry.field(
        description="What the line's loyalty_value will be (per unit)."
    )
    loyalty_value: Decimal = strawberry.field(
        description="What the line earns: unit value × quantity."
    )

    @classmethod
    def of(cls, line: loyalty.QuotedLine) -> QuoteLine:
        return cls(
            product_id=strawberry.ID(line.product_id),
            quantity=line.quantity,
            unit_loyalty_value=line.unit_loyalty_value,
            loyalty_value=line.loyalty_value,
        )


@strawberry.type
class LoyaltyQuote:
    lines: list[QuoteLine]
    loyalty_earned: Decimal
    total: Decimal


@strawberry.type
class Reward(Node):
    id: strawberry.ID
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
        return cls(
            id=strawberry.ID(ids.encode(Kind.REWARD, None, merchant_id, reward.id)),
            reward=reward,
            merchant_id=merchant_id,
            points=points,
            is_available=available,
        )

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
class Redemption(Node):
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
        return Customer.of(member.customer, self.merchant_id)

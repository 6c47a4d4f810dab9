"""Query resolvers: parse, call a service, shape the answer. No rules here."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TypeVar

import strawberry
from strawberry.types.nodes import SelectedField, Selection

from gateway.api.graphql import nodes
from gateway.api.graphql.errors import top_level
from gateway.api.graphql.inputs import LoyaltyQuoteInput, lines_to_service
from gateway.api.graphql.types import (
    Customer,
    Info,
    LoyaltyQuote,
    Merchant,
    Node,
    PosConnection,
    QuoteLine,
    Reward,
    Sale,
)
from gateway.domain.errors import GatewayError, NotFound, PosDisconnected
from gateway.domain.merchant import Pos
from gateway.services import customers, loyalty, merchants, sales
from gateway.services import rewards as reward_service

T = TypeVar("T")


@strawberry.type
class Query:
    @strawberry.field(description="The API key's merchant.")
    async def merchant(self, info: Info) -> Merchant:
        scope = info.context.scope
        try:
            profile = await merchants.loyalty_profile(scope)
        except PosDisconnected:  # the merchant, and its connections, are still shown
            profile = merchants.LoyaltyProfile(enabled=False, ratio=None)
        except GatewayError as error:
            raise top_level(error) from None
        m = scope.merchant
        connections = [
            PosConnection(pos=pos, status=account.status, expires_at=account.expires_at,
                          reason=account.status_reason)
            for pos, account in m.accounts.items()
        ]  # fmt: skip
        return Merchant(
            id=strawberry.ID(m.id),
            name=m.name,
            pos_systems=m.pos_systems,
            points_source=m.points_source,
            points_label=m.points_label,
            loyalty_enabled=profile.enabled,
            loyalty_ratio=profile.ratio,
            connections=sorted(connections, key=lambda c: list(Pos).index(c.pos)),
            redeemed_points_on_void=m.redeemed_points_on_void,
        )

    @strawberry.field(description="Customers matching a name or an email, on every POS.")
    async def customers(self, info: Info, search: str, first: int | None = 20) -> list[Customer]:
        scope = info.context.scope
        fresh = asks_for(info.selected_fields, "rewards")  # then every balance is read now
        try:
            found = await customers.search_customers(scope, search, first or 20, fresh=fresh)
        except GatewayError as error:
            raise top_level(error) from None
        return [Customer.of(c, scope.merchant.id, fresh=fresh) for c in found]

    @strawberry.field
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        """Asked for its rewards, the customer is read fresh once, so the balance shown and
        what it offers agree; else the cached customer may do."""
        scope = info.context.scope
        fresh = asks_for(info.selected_fields, "rewards")
        found = await _unless_not_found(customers.get_customer(scope, str(id), fresh=fresh))
        return Customer.of(found, scope.merchant.id, fresh=fresh) if found else None

    @strawberry.field(description="An X-Series sale or a Kounta order.")
    async def sale(self, info: Info, id: strawberry.ID) -> Sale | None:
        scope = info.context.scope
        found = await _unless_not_found(sales.get_sale(scope, str(id)))
        return Sale.of(found, scope.merchant.id) if found else None

    @strawberry.field(
        description="Any object by its global id: null for an id of another merchant's, or of "
        "nothing that exists; an error for what was never an id."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        try:
            return await nodes.find(info, str(id))
        except GatewayError as error:
            raise top_level(error) from None

    @strawberry.field(description="The merchant's reward catalogue.")
    async def rewards(self, info: Info) -> list[Reward]:
        scope = info.context.scope
        catalogue = await reward_service.list_rewards(scope)
        return [Reward.of(reward, scope.merchant.id) for reward in catalogue]

    @strawberry.field(
        description="What a sale would earn, line by line, by X-Series' loyalty rules."
    )
    async def loyalty_quote(self, info: Info, input: LoyaltyQuoteInput) -> LoyaltyQuote:
        scope = info.context.scope
        try:
            quote = await loyalty.quote_loyalty(
                scope,
                customer_id=str(input.customer_id) if input.customer_id else None,
                lines=lines_to_service(input.lines),
                loyalty_payment=input.loyalty_payment,
                register_id=input.register_to_service(),
            )
        except GatewayError as error:
            raise top_level(error) from None
        return LoyaltyQuote(
            lines=[QuoteLine.of(line) for line in quote.lines],
            loyalty_earned=quote.loyalty_earned,
            total=quote.total,
        )


def asks_for(selections: Sequence[Selection], name: str) -> bool:
    """Whether the field's own selection (through fragments) names ``name``."""
    for selection in selections:
        for child in selection.selections:
            if isinstance(child, SelectedField) and child.name == name:
                return True
            if not isinstance(child, SelectedField) and asks_for([child], name):
                return True
    return False


async def _unless_not_found(lookup: Awaitable[T]) -> T | None:
    """A nullable field: unknown (or another merchant's) is null; other failures are
    top-level errors with their code."""
    try:
        return await lookup
    except NotFound:
        return None
    except GatewayError as error:
        raise top_level(error) from None

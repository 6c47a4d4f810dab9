"""Query resolvers: parse, call a service, shape the answer. No rules here."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import strawberry

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
        try:
            found = await customers.search_customers(scope, search, first or 20)
        except GatewayError as error:
            raise top_level(error) from None
        return [Customer.of(c, scope.merchant.id) for c in found]

    @strawberry.field
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        """The cached customer may do: its balance and the rewards it shows come from the
        same read (docs/architecture.md, "Caching and freshness")."""
        scope = info.context.scope
        found = await _unless_not_found(customers.get_customer(scope, str(id)))
        return Customer.of(found, scope.merchant.id) if found else None

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


async def _unless_not_found(lookup: Awaitable[T]) -> T | None:
    """A nullable field: unknown (or another merchant's) is null; other failures are
    top-level errors with their code."""
    try:
        return await lookup
    except NotFound:
        return None
    except GatewayError as error:
        raise top_level(error) from None

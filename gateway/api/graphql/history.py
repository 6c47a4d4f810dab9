"""The loyalty history as GraphQL: ``LoyaltyActivity`` and its Relay connection."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from gateway.api.graphql.types import Customer, Info, Node, Reward, Sale
from gateway.domain import ids
from gateway.domain.activity import Activity, ActivityKind
from gateway.domain.errors import NotFound
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.services import history, members, sales
from gateway.services import rewards as reward_service

strawberry.enum(
    ActivityKind,
    name="LoyaltyActivityKind",
    description="EARNED: by a sale or order; REDEEMED: spent on a reward or a payment; "
    "REVERSED: what a sale earned, taken back; RETURNED: what was redeemed, given back; "
    "ADJUSTED: by hand (adjustPoints), or the gateway's own corrections.",
)


@strawberry.type(description="One movement of a customer's balance.")
class LoyaltyActivity(Node):
    id: strawberry.ID
    occurred_at: datetime
    kind: ActivityKind
    points: Decimal = strawberry.field(description="Signed: what the balance moved by.")
    balance_after: Decimal | None = strawberry.field(
        description="The balance right after, where the balance of record said it."
    )
    reason: str = strawberry.field(description="Why, in words a customer understands.")
    pos: Pos | None = strawberry.field(
        description="The POS where it happened; null when made in the gateway (adjustPoints)."
    )
    sale_id: strawberry.ID | None = strawberry.field(
        description="The Sale (X-Series sale or Kounta order) it concerns, if any."
    )
    reward_id: strawberry.ID | None = strawberry.field(description="The Reward redeemed, if any.")
    redemption_id: strawberry.ID | None = strawberry.field(
        description="The Redemption that made it, if a redemption did."
    )
    value: strawberry.Private[Activity]
    merchant_id: strawberry.Private[str]

    @classmethod
    def of(cls, activity: Activity, merchant_id: str) -> LoyaltyActivity:
        def gid(kind: Kind, local_id: str | None, pos: Pos | None) -> strawberry.ID | None:
            return strawberry.ID(ids.encode(kind, pos, merchant_id, local_id)) if local_id else None

        return cls(
            id=strawberry.ID(ids.encode(Kind.ACTIVITY, None, merchant_id, activity.id)),
            occurred_at=activity.occurred_at,
            kind=activity.kind,
            points=activity.points,
            balance_after=activity.balance_after,
            reason=activity.reason,
            pos=activity.pos,
            sale_id=gid(Kind.SALE, activity.sale_id, activity.pos),
            reward_id=gid(Kind.REWARD, activity.reward_id, None),
            redemption_id=gid(Kind.REDEMPTION, activity.redemption_id, activity.pos),
            value=activity,
            merchant_id=merchant_id,
        )

    @strawberry.field(description="The sale as the POS shows it now; null if it is gone.")
    async def sale(self, info: Info) -> Sale | None:
        activity = self.value
        if activity.sale_id is None or activity.pos is None:
            return None
        scope = info.context.scope
        try:
            if activity.pos is Pos.KOUNTA:
                found = await sales.get_kounta_order(scope, activity.sale_id)
            else:
                found = await sales.get_xseries_sale(scope, activity.sale_id)
        except NotFound:
            return None
        return Sale.of(found, self.merchant_id)

    @strawberry.field(description="The reward redeemed (archived ones too).")
    async def reward(self, info: Info) -> Reward | None:
        if self.value.reward_id is None:
            return None
        try:
            found = await reward_service.get_reward(
                info.context.scope, self.value.reward_id, include_archived=True
            )
        except NotFound:
            return None
        return Reward.of(found, self.merchant_id)

    @strawberry.field(description="Whose balance moved.")
    async def customer(self, info: Info) -> Customer | None:
        try:
            member = await members.member(info.context.scope, self.value.member_id)
        except NotFound:
            return None
        return Customer.of(member.customer, self.merchant_id)


@strawberry.type
class LoyaltyActivityEdge:
    cursor: str
    node: LoyaltyActivity


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool = strawberry.field(
        description="True when this page was asked for `after` a cursor."
    )
    start_cursor: str | None
    end_cursor: str | None = strawberry.field(description="Pass it as `after` for the next page.")


@strawberry.type
class LoyaltyActivityConnection:
    edges: list[LoyaltyActivityEdge]
    page_info: PageInfo
    member_id: strawberry.Private[str | None]

    @classmethod
    def of(
        cls, page: history.Page, merchant_id: str, *, first_page: bool
    ) -> LoyaltyActivityConnection:
        edges = [
            LoyaltyActivityEdge(cursor=e.cursor, node=LoyaltyActivity.of(e.activity, merchant_id))
            for e in page.entries
        ]
        info = PageInfo(
            has_next_page=page.has_next,
            has_previous_page=not first_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        )
        return cls(edges=edges, page_info=info, member_id=page.member_id)

    @strawberry.field(description="How many movements the whole list holds.")
    async def total_count(self, info: Info) -> int:
        if self.member_id is None:
            return 0
        return await history.count(info.context.scope, self.member_id)

"""``node(id:)``: any object by its global id, within the API key's merchant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry

from gateway.api.graphql.history import LoyaltyActivity
from gateway.api.graphql.types import Customer, Info, Node, Redemption, Reward, Sale
from gateway.domain import ids
from gateway.domain.errors import NotFound
from gateway.domain.ids import GlobalId, Kind
from gateway.domain.merchant import Pos
from gateway.services import customers, history, redemption_records, sales
from gateway.services import rewards as reward_service

Finder = Callable[[Info, GlobalId, str], Awaitable[Node | None]]


async def find(info: Info, value: str) -> Node | None:
    """Null for an id of another merchant, or of nothing that exists (any more); a
    VALIDATION error for what was never an id (``ids.peek``)."""
    scope = info.context.scope
    gid = ids.peek(value, scope.merchant.id)
    finder = FINDERS.get(gid.kind) if gid is not None else None
    if gid is None or finder is None:  # a payment is no node: it is read through its sale
        return None
    try:
        return await finder(info, gid, value)
    except NotFound:
        return None


async def _customer(info: Info, gid: GlobalId, value: str) -> Node | None:
    scope = info.context.scope
    return Customer.of(await customers.get_customer(scope, value), scope.merchant.id)


async def _sale(info: Info, gid: GlobalId, value: str) -> Node | None:
    scope = info.context.scope
    return Sale.of(await sales.get_sale(scope, value), scope.merchant.id)


async def _reward(info: Info, gid: GlobalId, value: str) -> Node | None:
    scope = info.context.scope
    found = await reward_service.get_reward(scope, gid.local_id, include_archived=True)
    return Reward.of(found, scope.merchant.id)


async def _redemption(info: Info, gid: GlobalId, value: str) -> Node | None:
    scope = info.context.scope
    record = await redemption_records.by_id(scope, gid.local_id)
    if record is None:
        return None
    reward = await reward_service.get_reward(scope, record.reward_id, include_archived=True)
    if Pos(record.target_pos) is Pos.KOUNTA:
        sale = await sales.get_kounta_order(scope, record.target_id)
    else:
        sale = await sales.get_xseries_sale(scope, record.target_id)
    merchant_id = scope.merchant.id
    return Redemption(
        id=strawberry.ID(value),
        reward=Reward.of(reward, merchant_id),
        sale=Sale.of(sale, merchant_id),
        points_debited=record.points,
        amount_applied=record.amount,
        status=record.status.value,
        member_id=record.member_id,
        merchant_id=merchant_id,
    )


async def _activity(info: Info, gid: GlobalId, value: str) -> Node | None:
    scope = info.context.scope
    found = await history.get_activity(scope, gid.local_id)
    return LoyaltyActivity.of(found, scope.merchant.id) if found else None


FINDERS: dict[Kind, Finder] = {
    Kind.CUSTOMER: _customer,
    Kind.SALE: _sale,
    Kind.REWARD: _reward,
    Kind.REDEMPTION: _redemption,
    Kind.ACTIVITY: _activity,
}

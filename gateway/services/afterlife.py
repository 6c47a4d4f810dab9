"""What both POS share once an order or sale is voided, rejected or deleted: the points the
gateway's redemptions took on it come back, or stay spent, by the merchant's policy
(docs/architecture.md, "The life of a sale").

What was redeemed is read from the history (``store/activity.py``): every movement a
redemption made is told there under a key that starts ``redemption:``, with the order or
sale it was for, in the same transaction or call that made it. So the history is the one
account of what is owed back, and giving it back is told there too, under one key per sale.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal

from gateway.domain.activity import ActivityKind, Movement
from gateway.domain.afterlife import redeemed_to_give
from gateway.domain.errors import Unavailable
from gateway.domain.merchant import Pos, VoidPolicy
from gateway.services.context import Scope
from gateway.services.points import points_book
from gateway.services.take_back import take_back
from gateway.store import activity, redemptions, writes

REDEMPTION_KEYS = "redemption:"


async def ensure_settled(scope: Scope, pos: Pos, sale_id: str, target: str) -> None:
    """Nothing is decided about a sale while a redemption or payment on it is unfinished or
    unsettled: what it took is not known yet (Unavailable: looked at again later)."""
    async with scope.runtime.db.read() as session:
        unfinished = await redemptions.unfinished_on(session, scope.merchant.id, pos.value,
                                                     sale_id)  # fmt: skip
        pending = await writes.pending_on(session, target) is not None
    if unfinished or pending:
        raise Unavailable(f"a redemption on {pos.label} {sale_id} is not settled yet")


async def redeemed_on(scope: Scope, pos: Pos, sale_id: str) -> dict[str, Decimal]:
    """Per member, the points the gateway's redemptions took on the sale, net of what they
    gave back themselves and of top-ups (so a top-up counts negative)."""
    async with scope.runtime.db.read() as session:
        told = await activity.on_sale(session, scope.merchant.id, pos, sale_id)
    net: dict[str, Decimal] = defaultdict(Decimal)
    for key, movement in told:
        if key.startswith(REDEMPTION_KEYS):
            net[movement.member_id] -= movement.points
    return dict(net)


async def settle_redeemed(
    scope: Scope,
    pos: Pos,
    sale_id: str,
    what: str,
    returned_by_pos: dict[str, Decimal] | None = None,
) -> None:
    """Give back (or take back) what was redeemed on a sale that is gone, once per member:
    ``what`` says what happened to it ("order 1234 was rejected"). ``returned_by_pos``: what
    the POS itself put back on each member's balance on the void."""
    redeemed = await redeemed_on(scope, pos, sale_id)
    by_pos = returned_by_pos or {}
    policy = scope.merchant.redeemed_points_on_void
    for member_id in sorted(set(redeemed) | set(by_pos)):
        give = redeemed_to_give(policy, redeemed.get(member_id, Decimal(0)),
                                by_pos.get(member_id, Decimal(0)))  # fmt: skip
        # One key per member: two members may have redeemed on one order.
        key = f"void:{pos.value.lower()}:{sale_id}:redeemed:{member_id}"
        if give > 0:
            movement = Movement(ActivityKind.RETURNED, f"Given back: {what}", pos, sale_id)
            await points_book(scope).credit(member_id, give, key, movement)
        elif give < 0:
            reason = (
                f"Kept by the shop: {what}; the points paid on it stay spent"
                if policy is VoidPolicy.KEEP
                else f"Top-up taken back: {what}"
            )
            movement = Movement(ActivityKind.ADJUSTED, reason, pos, sale_id)
            await take_back(scope, member_id, key, movement, _amount(-give))


def _amount(points: Decimal) -> Callable[[], Awaitable[Decimal]]:
    async def wanted() -> Decimal:
        return points

    return wanted

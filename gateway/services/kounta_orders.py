"""A Kounta order's whole life, from any hint that it changed (a webhook of any topic, or
reconciliation finding it): docs/architecture.md, "The life of a sale".

The order is read from Kounta and its points are brought to what its state says, whatever
happened before and however often this runs: a completed order has earned (``earning.py``);
a refund gives back its share of that, a reject or a delete all of it (``domain/afterlife``),
never more in all, once per target; points redeemed on a rejected or deleted order come back
by the merchant's policy (``afterlife.py``). Nothing is decided while a redemption or a
payment on the order is unfinished (``afterlife.ensure_settled``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway import priority
from gateway.domain.activity import ActivityKind, Movement
from gateway.domain.afterlife import reversal_target
from gateway.domain.errors import NotFound, Unavailable
from gateway.domain.merchant import Pos
from gateway.domain.money import ZERO
from gateway.pos.errors import UpstreamNotFound
from gateway.pos.kounta.models import Order
from gateway.services import writes
from gateway.services.afterlife import ensure_settled, settle_redeemed
from gateway.services.context import Scope
from gateway.services.earning import earn_from_order, earning_key
from gateway.services.take_back import take_back
from gateway.store import activity, take_backs

REVERSAL_KEYS = "reversal:kounta:"


@dataclass(frozen=True)
class OrderOutcome:
    order_id: str
    outcome: str  # what the order's state meant: earned, reversed, open, ...
    points: Decimal = ZERO  # what its earning credited (0 if nothing)
    reversed: Decimal = ZERO  # what was taken back by this look at it


async def follow_order(
    scope: Scope,
    order_id: str,
    *,
    hinted_complete: bool = False,
    known: tuple[Order, bool] | None = None,
) -> OrderOutcome:
    """Bring the order's points to what its state at Kounta says. ``hinted_complete``: the
    hint said it completed, so an order still open is asked about again (Unavailable).
    ``known``: the order and whether it is deleted, as a Kounta list just gave it."""
    with priority.background():
        order, deleted = known or await _read(scope, order_id)
        if order.is_open and not deleted:
            if hinted_complete:
                raise Unavailable(f"order {order_id} is {order.status}, not complete yet")
            return OrderOutcome(order_id, f"open ({order.status}): nothing to do yet")
        return await _settle(scope, order, deleted, writes.kounta_order(scope, order_id))


async def _settle(scope: Scope, order: Order, deleted: bool, target: str) -> OrderOutcome:
    earned = ZERO
    outcome = f"not earned: the order is {order.status}"
    if order.status == "COMPLETE" and not deleted:
        earning = await earn_from_order(scope, order.id)
        earned, outcome = earning.points, earning.outcome
    gone = deleted or order.status == "REJECTED"
    await ensure_settled(scope, Pos.KOUNTA, order.id, target)
    if gone:
        what = f"order {order.id} was {'deleted' if deleted else 'rejected'}"
        await settle_redeemed(scope, Pos.KOUNTA, order.id, what)
        outcome = what
    taken = await _reverse_earned(scope, order, gone=gone, deleted=deleted)
    if taken:
        outcome = f"{outcome}; reversed {taken}" if gone else f"refunded; reversed {taken}"
    return OrderOutcome(order.id, outcome, earned, taken)


async def _read(scope: Scope, order_id: str) -> tuple[Order, bool]:
    """The order as Kounta has it now, and whether it was deleted."""
    client = scope.kounta()
    try:
        return await client.get_order(order_id, fresh=True), False
    except UpstreamNotFound:
        since = datetime.now(UTC) - timedelta(seconds=scope.runtime.settings.reconcile_lookback_s)
        deleted = await client.find_deleted_order(order_id, since)
        if deleted is None:
            raise NotFound(f"Kounta has no order {order_id}") from None
        return deleted, True


async def _reverse_earned(scope: Scope, order: Order, *, gone: bool, deleted: bool) -> Decimal:
    """Take back what the order earned, up to what its state says by now (a cumulative
    target, so each refund is taken once however often it is seen); what is already taken
    back, or was short, counts."""
    async with scope.runtime.db.read() as session:
        earned = await activity.by_key(session, scope.merchant.id, earning_key(order.id))
    if earned is None or earned.points <= 0:
        return ZERO
    refunded, total = order.refunded, order.total
    target = reversal_target(earned.points, refunded, total, gone=gone)

    async def still_wanted() -> Decimal:
        async with scope.runtime.db.read() as session:
            done = await take_backs.wanted_on(session, scope.merchant.id, Pos.KOUNTA,
                                              order.id, REVERSAL_KEYS)  # fmt: skip
        return target - done

    if gone:
        what = "deleted" if deleted else "rejected"
        reason = f"Order {order.id} was {what}: the points it earned taken back"
    else:
        reason = f"Refunded: order {order.id}, {refunded:.2f} of {total:.2f}"
    movement = Movement(ActivityKind.REVERSED, reason, Pos.KOUNTA, order.id)
    key = f"{REVERSAL_KEYS}{order.id}:{target}"
    record = await take_back(scope, earned.member_id, key, movement, still_wanted)
    return record.taken if record is not None and record.done else ZERO

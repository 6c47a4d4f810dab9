"""Points earned at Kounta: a completed order credits its linked member
(docs/architecture.md, "An earning").

The webhook is only a hint: the order is read from Kounta, never taken from the payload.
The rules are X-Series' (docs/architecture.md, "Loyalty rules"): ratio × unit price (with
tax when the account shows prices with tax), rounded per unit, nothing on the part paid with
the loyalty payment method. Each order credits once, however often or concurrently its
webhook arrives: the work runs once per order id, and the credit itself is idempotent by
the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from pydantic import TypeAdapter

from gateway import priority
from gateway.domain.activity import ActivityKind, Movement
from gateway.domain.errors import NotFound, Unavailable
from gateway.domain.loyalty import EarningRules, LineToQuote, Quote, quote
from gateway.domain.merchant import PointsSource, Pos
from gateway.domain.money import ZERO, round_money
from gateway.pos.errors import UpstreamForbidden, UpstreamNotFound
from gateway.pos.kounta.models import Order
from gateway.services import catalog, members
from gateway.services.context import Scope
from gateway.services.idempotency import Attempt
from gateway.services.merchants import loyalty_profile
from gateway.services.points import points_book
from gateway.store.idempotency import KeyRecord

log = structlog.get_logger("gateway.earning")

OPERATION = "earnKountaOrder"
KEY_SPACE = "earning"


@dataclass(frozen=True)
class Earning:
    order_id: str
    member_id: str | None
    points: Decimal
    outcome: str  # credited, nothing to earn, no member


EARNING = TypeAdapter(Earning)


def earning_key(order_id: str) -> str:
    return f"kounta-order:{order_id}"


async def earn_from_order(scope: Scope, order_id: str) -> Earning:
    """From the webhook. No cashier waits on it, and Kounta sends it again after a 503, so
    it spends the POS rate budget as background work (``gateway/priority.py``)."""

    async def execute(attempt: Attempt) -> Earning:
        return await earn(scope, order_id)

    with priority.background():
        return await scope.services.idempotency.run_once(
            merchant_id=scope.merchant.id,
            key=order_id,
            operation=OPERATION,
            request={"order": order_id},
            execute=execute,
            adapter=EARNING,
            key_space=KEY_SPACE,
        )


async def recover(scope: Scope, record: KeyRecord) -> Earning | None:
    """The worker: earn for an order whose earning died at work or gave up for a while
    (every step is idempotent, so running it again credits once)."""
    order_id = record.key.removeprefix(f"{KEY_SPACE}:")

    async def execute(attempt: Attempt) -> Earning:
        return await earn(scope, order_id)

    return await scope.services.idempotency.recover(record, execute, EARNING)


async def earn(scope: Scope, order_id: str) -> Earning:
    client = scope.kounta()
    try:
        order = await client.get_order(order_id, fresh=True)
    except UpstreamNotFound:
        raise NotFound(f"Kounta has no order {order_id}") from None
    if order.status != "COMPLETE":
        if order.is_open:  # too early (or a forged hint): the POS's retry comes later
            raise Unavailable(f"order {order_id} is {order.status}, not complete yet")
        return Earning(order_id, None, ZERO, f"not earned: the order is {order.status}")
    customer_id = order.customer_ref
    if not customer_id:
        return Earning(order_id, None, ZERO, "no member")
    kounta_customer = await client.get_customer(customer_id)
    if scope.merchant.points_source is PointsSource.XSERIES:
        member_id = kounta_customer.reference_id
    else:
        member_id = kounta_customer.id
    if not member_id:
        return Earning(order_id, None, ZERO, "no member")
    member = await members.member(scope, member_id, fresh=True)  # decides what is earned
    earned = (await order_earning(scope, order, member.customer.loyalty_enabled)).loyalty_earned
    points = round_money(earned)  # a fractional quantity must not credit fractions of a cent
    if points <= 0:
        return Earning(order_id, member_id, ZERO, "nothing to earn")
    try:
        movement = Movement(ActivityKind.EARNED, f"Earned at {scope.merchant.name}, order "
                            f"{order_id}", Pos.KOUNTA, order_id)  # fmt: skip
        await points_book(scope).credit(member_id, points, earning_key(order_id), movement)
    except UpstreamForbidden as refused:
        # Final, not retried (it stays refused until the store is reconnected): said loudly,
        # since the member is owed these points.
        log.error("earning refused by the POS", order=order_id, member=member_id,
                  points=str(points), reason=refused.message)  # fmt: skip
        raise
    return Earning(order_id, member_id, points, "credited")


async def order_earning(scope: Scope, order: Order, member_enabled: bool) -> Quote:
    """What the order earns by the loyalty rules, for a member whose loyalty is on or off."""
    profile = await loyalty_profile(scope)
    tax_inclusive = False
    if scope.merchant.has(Pos.XSERIES):
        tax_inclusive = (await catalog.account_config(scope)).display_retail_price_tax_inclusive
    rules = EarningRules(
        account_enabled=profile.enabled,
        ratio=profile.ratio or ZERO,
        tax_inclusive=tax_inclusive,
        general_group_id=None,
        customer_enabled=member_enabled,
        customer_group_id=None,
        at=datetime.now(UTC),
    )
    method_id = scope.merchant.account(Pos.KOUNTA).settings.get("payment_method_id")
    # What was paid with points when it was paid: a later refund of that tender (a negative
    # payment) does not make it earn, so the earning is the same whenever it is worked out.
    paid_with_points = sum(
        (
            p.amount
            for p in order.payments
            if method_id and p.method_id == method_id and p.amount > 0
        ),
        ZERO,
    )
    lines = [
        LineToQuote(line.product_id or "", line.quantity, *order.line_amounts(line))
        for line in order.lines
    ]
    return quote(lines, rules, paid_with_points)

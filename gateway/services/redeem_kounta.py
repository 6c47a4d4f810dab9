"""Redeeming a reward on a Kounta order (docs/architecture.md, "A redemption at Kounta").

PENDING: recorded, under the member's balance lease, after the checks → DEBITED: the points
taken from the balance of record → the reward applied to the order, under the order's lease,
through the journal (PAYMENT: an order payment whose ``ref`` is the redemption id;
PERCENT_DISCOUNT: the lines' ``price_variation``, every line written back as it was read,
with the redemption id marked in the order's notes) → COMPLETED.

If the register changed the order between our read and our write, nothing is written
(``UpstreamChanged``, transient): the redemption stays DEBITED, and the same redeem URL
called again reads the order afresh; if it is not called again, the worker gives the points
back.

If the order cannot take it for good (gone, complete, refused) the points come back:
COMPENSATING → FAILED. If the write's answer is lost it is unsettled: the redemption stays
DEBITED, callers get OUTCOME_PENDING, and after the settle window the order is read back:
our payment (or mark) there → COMPLETED; not there → the points come back. The worker does
the same on its own, and gives back the points of a redemption whose caller went away
before anything was written.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog

from gateway.domain import ids
from gateway.domain.activity import ActivityKind
from gateway.domain.errors import (
    AmountExceedsDue,
    GatewayError,
    NotFound,
    SaleNotOpen,
    ValidationError,
)
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.money import ZERO, round_money
from gateway.domain.rewards import Reward, RewardKind, cost_of, discount_variation
from gateway.domain.sales import Sale
from gateway.pos.errors import UpstreamError, UpstreamNotFound
from gateway.pos.kounta.client import KountaClient
from gateway.pos.kounta.models import Order
from gateway.pos.kounta.translate import to_sale
from gateway.services import members, writes
from gateway.services import redemption_records as records
from gateway.services.context import Scope
from gateway.services.idempotency import Attempt, LeftForRetry
from gateway.services.points import hold_balance
from gateway.services.redemption_records import Redemption, RedemptionRequest
from gateway.services.rewards import get_reward
from gateway.store.redemptions import RedemptionRecord, Status
from gateway.store.writes import WriteStatus

log = structlog.get_logger("gateway.redemption")

KIND_PAYMENT = "kounta.payment"
KIND_DISCOUNT = "kounta.discount"


async def redeem(scope: Scope, request: RedemptionRequest, attempt: Attempt) -> Redemption:
    record = await records.find(scope, request.stored_key)
    # A redemption under way keeps its reward even if it was archived meanwhile.
    reward = await get_reward(scope, request.reward_id, include_archived=record is not None)
    client = scope.kounta()
    if record is None:
        if attempt.recover:
            raise LeftForRetry("nothing of this redemption was recorded")
        record = await _reserve(scope, client, request, reward)
    if record.status is Status.PENDING:
        record = await _take_points(scope, record, reward)
    if record.status is Status.COMPENSATING:
        record = await _give_back(scope, record, reward, record.error or "not applied")
    if record.status is Status.FAILED:
        raise records.failure(record)
    if record.status is Status.COMPLETED:
        order = await _order(client, record.target_id, fresh=True)
        return records.result(record, reward, _sale(scope, order), record.amount)
    return await _apply(scope, client, record, reward, attempt)


async def _reserve(
    scope: Scope, client: KountaClient, request: RedemptionRequest, reward: Reward
) -> RedemptionRecord:
    order = await _order(client, request.target_id)
    if not order.is_open:
        raise _not_open(order)
    async with hold_balance(scope, request.member_id):
        member = await members.member(scope, request.member_id, fresh=True)
        members.check_enabled(member)
        held = await records.held_top_ups(scope, request.member_id)
        cost = cost_of(reward, request.quantity, member.customer.balance - held)
        if reward.kind is RewardKind.PAYMENT and cost.amount > order.owing:
            raise AmountExceedsDue.of(order.owing, cost.amount)
        if reward.kind is RewardKind.PERCENT_DISCOUNT and not order.lines:
            raise ValidationError("the order has no lines to discount", field="saleId")
        record = await records.create(scope, request, cost.points, cost.amount)
        return await _take_points(scope, record, reward)


async def _take_points(scope: Scope, record: RedemptionRecord, reward: Reward) -> RedemptionRecord:
    async with hold_balance(scope, record.member_id) as lease:
        lease.ensure_held()
        return await records.take_points(
            scope,
            record,
            lambda: records.credit(
                scope,
                record,
                -record.points,
                "",
                ActivityKind.REDEEMED,
                f"Redeemed {reward.title}",
            ),
        )


async def _give_back(
    scope: Scope, record: RedemptionRecord, reward: Reward, reason: str
) -> RedemptionRecord:
    return await records.compensate(
        scope,
        record,
        reason,
        lambda current: records.credit(
            scope,
            current,
            current.points,
            records.attempt_step("refund", current),
            ActivityKind.RETURNED,
            f"Returned: {reward.title} was not applied ({reason})",
        ),
    )


async def _apply(
    scope: Scope, client: KountaClient, record: RedemptionRecord, reward: Reward, attempt: Attempt
) -> Redemption:
    async with writes.hold(scope, writes.kounta_order(scope, record.target_id)):
        write = await writes.latest(scope, record.key)
        if write is not None:
            write = await writes.settle(scope, write)
        if write is not None and write.status is WriteStatus.LANDED:
            return await _completed(scope, client, record, reward)
        if write is not None and write.status is WriteStatus.NOT_LANDED:
            reason = "Kounta never confirmed it, and it is not on the order"
            raise records.failure(await _give_back(scope, record, reward, reason))
        if attempt.recover:  # the caller went away before anything was written
            reason = "the request ended before the order could be changed"
            raise records.failure(await _give_back(scope, record, reward, reason))
        try:
            applied = await _write(scope, client, record, reward)
        except GatewayError as refused:
            if refused.transient:  # nothing decided: the retry (or the worker) goes on
                raise
            upstream = isinstance(refused, UpstreamError)
            detail = refused.upstream_message if isinstance(refused, UpstreamError) else None
            await _give_back(scope, record, reward, detail or refused.message)
            if not upstream:
                raise
            message = f"the reward could not be applied: {refused.message}"
            if isinstance(refused, NotFound):
                raise NotFound(message) from None
            raise ValidationError(message) from None
    # It landed: whatever happens from here, the points stay taken.
    record = await records.move(scope, record, Status.COMPLETED)
    order, taken_off = applied
    if reward.kind is RewardKind.PAYMENT:
        try:
            order = await _order(client, order.id, fresh=True)
        except GatewayError:
            log.info("order not read after the payment", redemption=record.id)
    return records.result(record, reward, _sale(scope, order), taken_off)


async def _write(
    scope: Scope, client: KountaClient, record: RedemptionRecord, reward: Reward
) -> tuple[Order, Decimal]:
    """Apply the reward to the order: the checks, then one journaled write; the order as
    known (after a discount; before a payment, which answers nothing but its place) and
    what it took off."""
    order = await _order(client, record.target_id, fresh=True)
    if not order.is_open:
        raise _not_open(order)
    target = writes.kounta_order(scope, record.target_id)
    if reward.kind is RewardKind.PAYMENT:
        if record.amount > order.owing:
            raise AmountExceedsDue.of(order.owing, record.amount)
        method_id = _loyalty_method(scope)
        await writes.send(
            scope,
            owner=record.key,
            target=target,
            kind=KIND_PAYMENT,
            intent={"order_id": order.id, "ref": record.id},
            write=lambda: client.add_payment(order.id, method_id, record.amount, ref=record.id),
        )
        return order, record.amount
    before = order.total
    updated = await writes.send(
        scope,
        owner=record.key,
        target=target,
        kind=KIND_DISCOUNT,
        intent={"order_id": order.id, "mark": _discount_mark(record.id)},
        write=lambda: client.discount_order(
            order, discount_variation(record.amount), _discount_mark(record.id)
        ),
    )
    return updated, before - updated.total


@writes.read_back(KIND_PAYMENT)
@writes.read_back(KIND_DISCOUNT)
async def _read_back(scope: Scope, intent: dict[str, Any]) -> dict[str, Any] | None:
    """Whether our payment (by its ``ref``) or our discount (by its mark) is on the order.
    An order that is gone has neither."""
    try:
        order = await _order(scope.kounta(), intent["order_id"], fresh=True)
    except NotFound:
        return None
    if "ref" in intent and any(payment.ref == intent["ref"] for payment in order.payments):
        return {"ref": intent["ref"]}
    if "mark" in intent and intent["mark"] in (order.notes or ""):
        return {"mark": intent["mark"]}
    return None


async def _completed(
    scope: Scope, client: KountaClient, record: RedemptionRecord, reward: Reward
) -> Redemption:
    order = await _order(client, record.target_id, fresh=True)
    record = await records.move(scope, record, Status.COMPLETED)
    applied = record.amount
    if reward.kind is RewardKind.PERCENT_DISCOUNT:
        applied = _discount_given(order, record.amount)
    return records.result(record, reward, _sale(scope, order), applied)


def _discount_mark(redemption_id: str) -> str:
    return f"[loyalty {redemption_id}]"


def _discount_given(order: Order, percent: Decimal) -> Decimal:
    """What a discount already applied took off (read back on a retry), as ``_write``
    reckons it: the order's total (tax included) before it, less the total now."""
    factor = discount_variation(percent)
    now = order.total
    return round_money(now / factor - now) if factor else ZERO


def _loyalty_method(scope: Scope) -> str:
    return scope.merchant.account(Pos.KOUNTA).settings.get("payment_method_id", "")


def _sale(scope: Scope, order: Order) -> Sale:
    return to_sale(order, _loyalty_method(scope) or None, None)


async def _order(client: KountaClient, order_id: str, *, fresh: bool = False) -> Order:
    try:
        return await client.get_order(order_id, fresh=fresh)
    except UpstreamNotFound:
        raise ids.not_found(Kind.SALE, order_id) from None


def _not_open(order: Order) -> GatewayError:
    return SaleNotOpen(f"the order is {order.status.lower()} and takes no reward")

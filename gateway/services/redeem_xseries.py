"""Redeeming a PAYMENT reward on an X-Series sale (docs/architecture.md, "A redemption at
X-Series").

X-Series lowers the balance by a loyalty payment itself, so the reward is paid as one
(``pay_with_loyalty.pay_from_balance``) and a loyalty adjustment makes up the difference
between the reward's points and its value: a reward worth less than its points takes the
rest (debit), one worth more tops the balance up first (credit), since X-Series refuses a
loyalty payment above the balance.

PENDING: recorded after the checks → DEBITED: the difference moved → the payment written
through the journal → COMPLETED. If the payment cannot happen, the difference is moved back
(COMPENSATING → FAILED), and the worker repeats that until it succeeds: a top-up is never
left spendable. All of it runs inside the member's balance lease, so no other spend through
the gateway can use a top-up meanwhile.
"""

from __future__ import annotations

from gateway.domain.activity import ActivityKind
from gateway.domain.errors import AmountExceedsDue, GatewayError, ValidationError
from gateway.domain.merchant import PointsSource
from gateway.domain.rewards import Reward, RewardKind, cost_of
from gateway.services import members, writes
from gateway.services import redemption_records as records
from gateway.services.context import Scope
from gateway.services.idempotency import Attempt, LeftForRetry
from gateway.services.pay_with_loyalty import paid_already, pay_from_balance
from gateway.services.points import hold_balance
from gateway.services.redemption_records import Redemption, RedemptionRequest
from gateway.services.rewards import get_reward
from gateway.services.sales import get_xseries_sale
from gateway.store.redemptions import RedemptionRecord, Status
from gateway.store.writes import WriteStatus


async def redeem(scope: Scope, request: RedemptionRequest, attempt: Attempt) -> Redemption:
    record = await records.find(scope, request.stored_key)
    reward = await get_reward(scope, request.reward_id, include_archived=record is not None)
    if reward.kind is not RewardKind.PAYMENT:
        raise ValidationError("at X-Series only payment rewards apply", field="rewardId")
    if scope.merchant.points_source is not PointsSource.XSERIES:
        raise ValidationError("X-Series sales take X-Series loyalty only", field="saleId")
    async with hold_balance(scope, request.member_id):
        if record is None:
            if attempt.recover:
                raise LeftForRetry("nothing of this redemption was recorded")
            record = await _reserve(scope, request, reward)
        if record.status is Status.PENDING:
            pending = record
            record = await records.take_points(
                scope, record, lambda: _difference(scope, pending, reward)
            )
        if record.status is Status.COMPENSATING:
            record = await _undo(scope, record, reward, record.error or "not applied")
        if record.status is Status.FAILED:
            raise records.failure(record)
        if record.status is not Status.COMPLETED:
            await _pay(scope, record, reward, attempt)
            record = await records.move(scope, record, Status.COMPLETED)
    sale = await get_xseries_sale(scope, record.target_id, fresh=True)
    return records.result(record, reward, sale, record.amount)


async def _reserve(scope: Scope, request: RedemptionRequest, reward: Reward) -> RedemptionRecord:
    """Check and record the redemption; the caller holds the member's balance lease."""
    sale = await get_xseries_sale(scope, request.target_id, fresh=True)
    if sale.customer_pos_id != request.member_id:
        raise ValidationError("the sale is not this customer's", field="saleId")
    member = await members.member(scope, request.member_id, fresh=True)
    members.check_enabled(member)
    held = await records.held_top_ups(scope, request.member_id)
    cost = cost_of(reward, request.quantity, member.customer.balance - held)
    if cost.amount > sale.amount_due:
        raise AmountExceedsDue.of(sale.amount_due, cost.amount)
    return await records.create(scope, request, cost.points, cost.amount)


async def _pay(scope: Scope, record: RedemptionRecord, reward: Reward, attempt: Attempt) -> None:
    """The loyalty payment, once: settled if an earlier attempt sent it; sent otherwise,
    unless the caller is gone (the worker); given back if it cannot happen."""
    async with writes.hold(scope, writes.xseries_sale(scope, record.target_id)):
        if await paid_already(scope, record.key) is not None:
            return
        sent = await writes.latest(scope, record.key)
        if attempt.recover or (sent is not None and sent.status is WriteStatus.NOT_LANDED):
            # Its answer lost and not found on the sale, or never sent and nobody waiting.
            reason = "the loyalty payment did not reach X-Series"
            raise records.failure(await _undo(scope, record, reward, reason))
        try:
            await pay_from_balance(
                scope, record.key, record.target_id, record.amount,
                reason=f"Redeemed {reward.title}", reward_id=reward.id,
            )  # fmt: skip
        except GatewayError as refused:
            if refused.transient:
                raise
            await _undo(scope, record, reward, refused.message)
            raise


async def _difference(scope: Scope, record: RedemptionRecord, reward: Reward) -> None:
    """Make up the difference between the reward's points and the payment's value."""
    difference = record.amount - record.points
    if difference > 0:
        kind, reason = ActivityKind.ADJUSTED, f"Top-up so that {reward.title} is paid with points"
    else:
        kind, reason = ActivityKind.REDEEMED, f"Redeemed {reward.title}"
    await records.credit(scope, record, difference, "topup", kind, reason)


async def _undo(
    scope: Scope, record: RedemptionRecord, reward: Reward, reason: str
) -> RedemptionRecord:
    """Move the difference back (the payment did not happen)."""
    return await records.compensate(
        scope,
        record,
        reason,
        lambda current: records.credit(
            scope,
            current,
            current.points - current.amount,
            records.attempt_step("undo", current),
            ActivityKind.RETURNED if current.points > current.amount else ActivityKind.ADJUSTED,
            f"Returned: {reward.title} was not applied ({reason})"
            if current.points > current.amount
            else f"Top-up for {reward.title} taken back: it was not applied",
        ),
    )

"""Redeeming a reward: one service for Kounta's redeem URL and GraphQL's redeemReward.

On a Kounta order: record the redemption (PENDING) → debit the points source → apply it
to the order (PAYMENT: an order payment whose ``ref`` is the redemption id;
PERCENT_DISCOUNT: the lines' ``price_variation``, with the redemption id in the order's
notes) → COMPLETED. Before applying anything on a retry the order is read back: a
payment with our ``ref`` (or our mark in the notes) means it was applied. If the order
cannot take it for good (gone, complete, refused), the points are credited back and the
redemption is FAILED. A transient failure leaves it DEBITED for the retry or the worker.

On an X-Series sale (PAYMENT rewards): a loyalty payment through the payWithLoyalty
service; X-Series lowers the balance by the payment, and a loyalty adjustment makes up
any difference between the reward's points and its value.

Every step is idempotent by the redemption's key, and the whole runs once per key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from pydantic import TypeAdapter

from gateway.domain import ids
from gateway.domain.errors import ErrorCode, GatewayError, ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import PointsSource, Pos
from gateway.domain.money import ZERO, parse_amount, round_money
from gateway.domain.rewards import Reward, RewardKind, cost_of, discount_variation
from gateway.domain.sales import AmountExceedsDue, Sale
from gateway.metrics import REDEMPTIONS
from gateway.pos.http import UpstreamNotFound, UpstreamRejected
from gateway.pos.kounta.client import KountaClient
from gateway.pos.kounta.models import Order
from gateway.pos.kounta.translate import to_sale as kounta_sale
from gateway.services import customers, members, sales
from gateway.services.context import Scope
from gateway.services.idempotency import Attempt
from gateway.services.points import balance_lock, points_book
from gateway.services.rewards import get_reward
from gateway.store import redemptions as store
from gateway.store.idempotency import Status as KeyStatus
from gateway.store.models import RedemptionRow
from gateway.store.redemptions import Status

log = structlog.get_logger("gateway.redemption")


@dataclass(frozen=True)
class RedemptionRequest:
    key: str  # the idempotency key: the signed offer's digest (Kounta) or the caller's
    reward_id: str
    member_id: str
    target_pos: Pos
    target_id: str  # Kounta order id or X-Series sale id
    quantity: Decimal | None = None
    key_space: str = "api"  # "offer" for Kounta's redeem URLs

    @property
    def stored_key(self) -> str:
        return f"{self.key_space}:{self.key}"

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "key_space": self.key_space,
            "reward_id": self.reward_id,
            "member_id": self.member_id,
            "target_pos": self.target_pos.value,
            "target_id": self.target_id,
            "quantity": None if self.quantity is None else format(self.quantity.normalize(), "f"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RedemptionRequest:
        quantity = data.get("quantity")
        return cls(
            key=data["key"],
            reward_id=data["reward_id"],
            member_id=data["member_id"],
            target_pos=Pos(data["target_pos"]),
            target_id=data["target_id"],
            quantity=None if quantity is None else Decimal(quantity),
            key_space=data.get("key_space", "api"),
        )


@dataclass(frozen=True)
class Redemption:
    id: str
    reward: Reward
    member_id: str
    target_pos: Pos
    target_id: str
    points: Decimal
    amount: Decimal
    status: str
    sale: Sale


REDEMPTION = TypeAdapter(Redemption)


async def redeem(scope: Scope, request: RedemptionRequest) -> Redemption:
    async def execute(attempt: Attempt) -> Redemption:
        if request.target_pos is Pos.KOUNTA:
            return await _on_kounta(scope, request, attempt)
        return await _on_xseries(scope, request, attempt)

    fingerprint = {k: v for k, v in request.as_json().items() if k not in {"key", "key_space"}}
    return await scope.services.idempotency.run_once(
        merchant_id=scope.merchant.id,
        key=request.key,
        operation="redeemReward",
        request=fingerprint,
        execute=execute,
        adapter=REDEMPTION,
        key_space=request.key_space,
    )


async def redeem_for_customer(
    scope: Scope,
    *,
    idempotency_key: str,
    customer_id: str,
    reward_id: str,
    sale_id: str,
    quantity: Decimal | None,
) -> Redemption:
    """GraphQL's redeemReward: global ids in, the same redemption as Kounta's URL."""
    if quantity is not None:
        quantity = parse_amount(quantity, "quantity")
    customer = await customers.get_customer(scope, customer_id)
    member = await members.member_of(scope, customer)
    reward = ids.decode(reward_id, Kind.REWARD, scope.merchant.id).local_id
    sale = ids.decode(sale_id, Kind.SALE, scope.merchant.id)
    if sale.pos is None:
        raise ids.not_found(Kind.SALE, sale_id)
    request = RedemptionRequest(
        key=idempotency_key,
        reward_id=reward,
        member_id=member.id,
        target_pos=sale.pos,
        target_id=sale.local_id,
        quantity=quantity,
    )
    return await redeem(scope, request)


# --------------------------------------------------------------------------- Kounta


async def _on_kounta(scope: Scope, request: RedemptionRequest, attempt: Attempt) -> Redemption:
    row = await _find(scope, request.stored_key)
    # A redemption under way keeps its reward even if it was archived meanwhile.
    reward = await get_reward(scope, request.reward_id, include_archived=row is not None)
    client = scope.kounta()
    if row is None:
        row = await _reserve_for_kounta(scope, client, request, reward, attempt)
    elif row.status == Status.PENDING:
        async with scope.services.locks.hold(balance_lock(scope, row.member_id)):
            await attempt.save({"redemption": row.id})
            await _debit(scope, row, reward)  # idempotent: a no-op if it went through before
    if row.status in (Status.COMPLETED, Status.FAILED):
        return await _settled(scope, row, reward)
    return await _apply_to_order(scope, client, row, reward, attempt)


async def _reserve_for_kounta(
    scope: Scope,
    client: KountaClient,
    request: RedemptionRequest,
    reward: Reward,
    attempt: Attempt,
) -> RedemptionRow:
    order = await _order(client, request.target_id)
    if not order.is_open:
        raise _not_open(order)
    async with scope.services.locks.hold(balance_lock(scope, request.member_id)) as lease:
        member = await members.member(scope, request.member_id, fresh=True)
        _check_member(member)
        cost = cost_of(reward, request.quantity, member.customer.balance)
        if reward.kind is RewardKind.PAYMENT and cost.amount > order.owing:
            raise AmountExceedsDue(order.owing, cost.amount)
        if reward.kind is RewardKind.PERCENT_DISCOUNT and not order.lines:
            raise ValidationError("the order has no lines to discount", field="saleId")
        row = await _record(scope, request, cost.points, cost.amount)
        await attempt.save({"redemption": row.id})
        lease.ensure_held()
        await _debit(scope, row, reward)
    return row


def order_lock(scope: Scope, order_id: str) -> str:
    """One change to a Kounta order at a time: two rewards on one order must not read the
    same lines and overwrite each other."""
    account = scope.merchant.account(Pos.KOUNTA)
    return f"order:kounta:{account.base_url}:{account.account_id}:{order_id}"


async def _apply_to_order(
    scope: Scope, client: KountaClient, row: RedemptionRow, reward: Reward, attempt: Attempt
) -> Redemption:
    method_id = scope.merchant.account(Pos.KOUNTA).settings.get("payment_method_id", "")
    try:
        async with scope.services.locks.hold(order_lock(scope, row.target_id)) as lease:
            order = await _order(client, row.target_id, fresh=True)
            if reward.kind is RewardKind.PAYMENT:
                if not any(payment.ref == row.id for payment in order.payments):
                    if not order.is_open:
                        raise _not_open(order)
                    if row.amount > order.owing:
                        raise AmountExceedsDue(order.owing, row.amount)
                    await attempt.save({"redemption": row.id, "applying": "payment"})
                    lease.ensure_held()
                    await client.add_payment(order.id, method_id, row.amount, ref=row.id)
                    order = await _order(client, row.target_id, fresh=True)
                applied = row.amount
            else:
                mark = _discount_mark(row.id)
                if mark not in (order.notes or ""):
                    if not order.is_open:
                        raise _not_open(order)
                    factor = discount_variation(row.amount)
                    body = {
                        "lines": [line.write(line.price_variation * factor)
                                  for line in order.lines],
                        "notes": f"{order.notes or ''} {mark}".strip(),
                    }  # fmt: skip
                    before = order.total
                    await attempt.save({"redemption": row.id, "applying": "discount"})
                    lease.ensure_held()
                    order = await client.update_order(order.id, body)
                    applied = before - order.total
                else:
                    applied = _discount_given(order, row.amount)
    except (UpstreamNotFound, UpstreamRejected) as failure:
        await _give_back(scope, row, reward, failure.upstream_message or failure.message)
        code = ErrorCode.NOT_FOUND if isinstance(failure, UpstreamNotFound) else failure.code
        raise GatewayError(
            f"the reward could not be applied: {failure.message}", code=code
        ) from None
    except GatewayError as failure:
        if failure.transient:
            raise
        await _give_back(scope, row, reward, failure.message)
        raise
    await _set(scope, row, Status.COMPLETED)
    REDEMPTIONS.labels(pos=Pos.KOUNTA.value, status=Status.COMPLETED.value).inc()
    sale = kounta_sale(order, method_id, None)
    return _result(row, reward, Status.COMPLETED, sale, applied)


def _discount_mark(redemption_id: str) -> str:
    return f"[loyalty {redemption_id}]"


def _discount_given(order: Order, percent: Decimal) -> Decimal:
    """What a discount already applied took off (read back on a retry)."""
    factor = discount_variation(percent)
    now = sum((line.unit_price * line.quantity * line.price_variation for line in order.lines),
              ZERO)  # fmt: skip
    return round_money(now / factor - now) if factor else ZERO


async def _order(client: KountaClient, order_id: str, *, fresh: bool = False) -> Order:
    try:
        return await client.get_order(order_id, fresh=fresh)
    except UpstreamNotFound:
        raise ids.not_found(Kind.SALE, order_id) from None


def _not_open(order: Order) -> GatewayError:
    return GatewayError(
        f"the order is {order.status.lower()} and takes no reward", code=ErrorCode.SALE_NOT_OPEN
    )


# --------------------------------------------------------------------------- X-Series


async def _on_xseries(scope: Scope, request: RedemptionRequest, attempt: Attempt) -> Redemption:
    row = await _find(scope, request.stored_key)
    reward = await get_reward(scope, request.reward_id, include_archived=row is not None)
    if reward.kind is not RewardKind.PAYMENT:
        raise ValidationError("at X-Series only payment rewards apply", field="rewardId")
    if scope.merchant.points_source is not PointsSource.XSERIES:
        raise ValidationError("X-Series sales take X-Series loyalty only", field="saleId")
    # One hold of the member's balance for the whole redemption: its adjustment and its
    # loyalty payment (payWithLoyalty re-enters the lock) cannot be split by another spend.
    async with scope.services.locks.hold(balance_lock(scope, request.member_id)):
        if row is None:
            row = await _reserve_for_xseries(scope, request, reward, attempt)
        elif row.status == Status.PENDING:
            await attempt.save({"redemption": row.id})
            await _take_difference(scope, row, reward)
        if row.status in (Status.COMPLETED, Status.FAILED):
            return await _settled(scope, row, reward)
        sale_id = ids.encode(Kind.SALE, Pos.XSERIES, scope.merchant.id, row.target_id)
        if row.amount > row.points:  # worth more than its points: top the balance up first
            await _move(scope, row, row.amount - row.points, "topup", reward.title)
        try:
            paid = await sales.pay_with_loyalty(
                scope,
                idempotency_key=row.id,
                key_space="redemption",
                sale_id=sale_id,
                amount=row.amount,
            )
        except GatewayError as failure:
            if failure.transient:
                raise
            await _undo_difference(scope, row, reward)
            await _set(scope, row, Status.FAILED, error=failure.message)
            raise
    await _set(scope, row, Status.COMPLETED)
    REDEMPTIONS.labels(pos=Pos.XSERIES.value, status=Status.COMPLETED.value).inc()
    return _result(row, reward, Status.COMPLETED, paid.sale, row.amount)


async def _reserve_for_xseries(
    scope: Scope, request: RedemptionRequest, reward: Reward, attempt: Attempt
) -> RedemptionRow:
    """Check and record the redemption; the caller holds the member's balance lock."""
    sale = await sales.get_xseries_sale(scope, request.target_id)
    if sale.customer_pos_id != request.member_id:
        raise ValidationError("the sale is not this customer's", field="saleId")
    member = await members.member(scope, request.member_id, fresh=True)
    _check_member(member)
    cost = cost_of(reward, request.quantity, member.customer.balance)
    if cost.amount > sale.amount_due:
        raise AmountExceedsDue(sale.amount_due, cost.amount)
    row = await _record(scope, request, cost.points, cost.amount)
    await attempt.save({"redemption": row.id})
    await _take_difference(scope, row, reward)
    return row


async def _undo_difference(scope: Scope, row: RedemptionRow, reward: Reward) -> None:
    """Reverse the adjustment of a redemption whose payment did not happen. If that fails
    too, the redemption still ends FAILED, and the log says what is owed."""
    if row.amount == row.points:
        return
    try:
        await _move(scope, row, row.points - row.amount, "undo", f"{reward.title}: not applied")
    except GatewayError as failure:
        log.error("redemption adjustment not reversed", redemption=row.id,
                  member=row.member_id, amount=str(row.points - row.amount),
                  reason=failure.message)  # fmt: skip


async def _take_difference(scope: Scope, row: RedemptionRow, reward: Reward) -> None:
    """A reward worth less than its points takes the rest as an adjustment (idempotent;
    under the member's balance lock). If the balance no longer covers it, the redemption
    fails with nothing taken."""
    if row.points > row.amount:
        try:
            await _move(scope, row, row.amount - row.points, "topup", reward.title)
        except GatewayError as failure:
            if not failure.transient:
                await _set(scope, row, Status.FAILED, error=failure.message)
            raise
    await _set(scope, row, Status.DEBITED)


async def _move(scope: Scope, row: RedemptionRow, delta: Decimal, step: str, reason: str) -> None:
    """Credit (delta > 0) or debit the member, once per redemption and step."""
    book = points_book(scope)
    key = f"redemption:{row.id}:{step}"
    if delta > 0:
        await book.credit(row.member_id, delta, key, reason)
    elif delta < 0:
        await book.debit(row.member_id, -delta, key, reason)


# --------------------------------------------------------------------------- abandoned


async def settle_abandoned(scope: Scope, row: RedemptionRow) -> str:
    """A redemption whose run ended without finishing it (its answer, an error, is on
    record): make its state true. Applied after all → COMPLETED; otherwise whatever was
    taken goes back → FAILED. Every step is idempotent; returns the final status."""
    reward = await get_reward(scope, row.reward_id, include_archived=True)
    async with scope.services.locks.hold(balance_lock(scope, row.member_id)):
        if row.target_pos == Pos.KOUNTA:
            order = await _order(scope.kounta(), row.target_id, fresh=True)
            applied = any(p.ref == row.id for p in order.payments) or (
                _discount_mark(row.id) in (order.notes or "")
            )
            if applied:
                await _set(scope, row, Status.COMPLETED)
            elif row.status == Status.PENDING:
                try:  # make the debit certain (a no-op if done), then give it back
                    await _debit(scope, row, reward)
                except GatewayError:
                    if row.status != Status.FAILED:
                        raise
                else:
                    await _give_back(scope, row, reward, "not applied")
            else:
                await _give_back(scope, row, reward, "not applied")
        else:
            pay = await scope.services.idempotency.store.peek(
                scope.merchant.id, f"redemption:{row.id}"
            )
            paid = (
                pay is not None
                and pay.status == KeyStatus.COMPLETED
                and '"error"' not in (pay.result_json or "")
            )
            if paid:
                await _set(scope, row, Status.COMPLETED)
            else:
                if row.status == Status.PENDING and row.points > row.amount:
                    await _take_difference(scope, row, reward)
                await _undo_difference(scope, row, reward)
                await _set(scope, row, Status.FAILED, error="not applied")
    return row.status


# --------------------------------------------------------------------------- shared


def _check_member(member: members.Member) -> None:
    if not member.customer.loyalty_enabled:
        raise GatewayError(
            "loyalty is turned off for this customer", code=ErrorCode.CUSTOMER_LOYALTY_DISABLED
        )


async def _find(scope: Scope, stored_key: str) -> RedemptionRow | None:
    async with scope.runtime.db.read() as session:
        return await store.by_key(session, scope.merchant.id, stored_key)


async def _record(
    scope: Scope, request: RedemptionRequest, points: Decimal, amount: Decimal
) -> RedemptionRow:
    async with scope.runtime.db.transaction() as session:
        return await store.create(
            session,
            merchant_id=scope.merchant.id,
            key=request.stored_key,
            reward_id=request.reward_id,
            member_id=request.member_id,
            target_pos=request.target_pos.value,
            target_id=request.target_id,
            quantity=request.quantity,
            points=points,
            amount=amount,
            request_json=json.dumps(request.as_json()),
        )


async def _debit(scope: Scope, row: RedemptionRow, reward: Reward) -> None:
    try:
        await points_book(scope).debit(
            row.member_id, row.points, f"redemption:{row.id}", reward.title
        )
    except GatewayError as failure:
        if not failure.transient:  # e.g. spent elsewhere before a resumed debit
            await _set(scope, row, Status.FAILED, error=failure.message)
        raise
    await _set(scope, row, Status.DEBITED)


async def _give_back(scope: Scope, row: RedemptionRow, reward: Reward, reason: str) -> None:
    await points_book(scope).credit(
        row.member_id, row.points, f"redemption:{row.id}:refund", f"{reward.title}: {reason}"
    )
    await _set(scope, row, Status.FAILED, error=reason)
    REDEMPTIONS.labels(pos=row.target_pos, status=Status.FAILED.value).inc()
    log.info("redemption given back", redemption=row.id, reason=reason)


async def _set(
    scope: Scope, row: RedemptionRow, status: Status, *, error: str | None = None
) -> RedemptionRow:
    async with scope.runtime.db.transaction() as session:
        updated = await store.set_status(session, row.id, status, error=error)
    row.status = updated.status
    return updated


async def _settled(scope: Scope, row: RedemptionRow, reward: Reward) -> Redemption:
    """A redemption that finished before (its answer was lost): say how it ended."""
    if row.status == Status.FAILED:
        raise GatewayError(
            row.error or "the reward could not be applied", code=ErrorCode.SALE_NOT_OPEN
        )
    if row.target_pos == Pos.KOUNTA:
        method_id = scope.merchant.account(Pos.KOUNTA).settings.get("payment_method_id")
        order = await _order(scope.kounta(), row.target_id, fresh=True)
        return _result(
            row, reward, Status.COMPLETED, kounta_sale(order, method_id, None), row.amount
        )
    sale = await sales.get_xseries_sale(scope, row.target_id)
    return _result(row, reward, Status.COMPLETED, sale, row.amount)


def _result(
    row: RedemptionRow, reward: Reward, status: Status, sale: Sale, applied: Decimal
) -> Redemption:
    return Redemption(
        id=row.id,
        reward=reward,
        member_id=row.member_id,
        target_pos=Pos(row.target_pos),
        target_id=row.target_id,
        points=row.points,
        amount=applied,
        status=status.value,
        sale=sale,
    )

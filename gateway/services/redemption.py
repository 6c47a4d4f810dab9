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
from gateway.store.models import RedemptionRow
from gateway.store.redemptions import Status

log = structlog.get_logger("gateway.redemption")


@dataclass(frozen=True)
class RedemptionRequest:
    key: str  # the idempotency key: the signed offer (Kounta) or the caller's key (GraphQL)
    reward_id: str
    member_id: str
    target_pos: Pos
    target_id: str  # Kounta order id or X-Series sale id
    quantity: Decimal | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "reward_id": self.reward_id,
            "member_id": self.member_id,
            "target_pos": self.target_pos.value,
            "target_id": self.target_id,
            "quantity": None if self.quantity is None else str(self.quantity),
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
            return await _on_kounta(scope, request)
        return await _on_xseries(scope, request)

    fingerprint = {k: v for k, v in request.as_json().items() if k != "key"}
    return await scope.services.idempotency.run_once(
        merchant_id=scope.merchant.id,
        key=request.key,
        operation="redeemReward",
        request=fingerprint,
        execute=execute,
        adapter=REDEMPTION,
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


async def _on_kounta(scope: Scope, request: RedemptionRequest) -> Redemption:
    reward = await get_reward(scope, request.reward_id)
    client = scope.kounta()
    row = await _find(scope, request.key)
    if row is None:
        row = await _reserve_for_kounta(scope, client, request, reward)
    elif row.status == Status.PENDING:
        await _debit(scope, row, reward)  # idempotent: a no-op if it went through before
    if row.status in (Status.COMPLETED, Status.FAILED):
        return await _settled(scope, row, reward)
    return await _apply_to_order(scope, client, row, reward)


async def _reserve_for_kounta(
    scope: Scope, client: KountaClient, request: RedemptionRequest, reward: Reward
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
        lease.ensure_held()
        await _debit(scope, row, reward)
    return row


async def _apply_to_order(
    scope: Scope, client: KountaClient, row: RedemptionRow, reward: Reward
) -> Redemption:
    method_id = scope.merchant.account(Pos.KOUNTA).settings.get("payment_method_id", "")
    try:
        order = await _order(client, row.target_id, fresh=True)
        if reward.kind is RewardKind.PAYMENT:
            if not any(payment.ref == row.id for payment in order.payments):
                if not order.is_open:
                    raise _not_open(order)
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
                    "lines": [line.write(line.price_variation * factor) for line in order.lines],
                    "notes": f"{order.notes or ''} {mark}".strip(),
                }
                before = order.total
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


async def _on_xseries(scope: Scope, request: RedemptionRequest) -> Redemption:
    reward = await get_reward(scope, request.reward_id)
    if reward.kind is not RewardKind.PAYMENT:
        raise ValidationError("at X-Series only payment rewards apply", field="rewardId")
    if scope.merchant.points_source is not PointsSource.XSERIES:
        raise ValidationError("X-Series sales take X-Series loyalty only", field="saleId")
    row = await _find(scope, request.key)
    if row is None:
        row = await _reserve_for_xseries(scope, request, reward)
    elif row.status == Status.PENDING:
        await _take_difference(scope, row, reward)
    if row.status in (Status.COMPLETED, Status.FAILED):
        return await _settled(scope, row, reward)
    sale_id = ids.encode(Kind.SALE, Pos.XSERIES, scope.merchant.id, row.target_id)
    if row.amount > row.points:  # worth more than its points: top the balance up first
        await _move(scope, row, row.amount - row.points, "topup", reward.title)
    try:
        paid = await sales.pay_with_loyalty(
            scope, idempotency_key=f"redemption:{row.id}", sale_id=sale_id, amount=row.amount
        )
    except GatewayError as failure:
        if failure.transient:
            raise
        if row.amount != row.points:
            undo = row.points - row.amount
            await _move(scope, row, undo, "undo", f"{reward.title}: not applied")
        await _set(scope, row, Status.FAILED, error=failure.message)
        raise
    await _set(scope, row, Status.COMPLETED)
    REDEMPTIONS.labels(pos=Pos.XSERIES.value, status=Status.COMPLETED.value).inc()
    return _result(row, reward, Status.COMPLETED, paid.sale, row.amount)


async def _reserve_for_xseries(
    scope: Scope, request: RedemptionRequest, reward: Reward
) -> RedemptionRow:
    sale = await sales.get_xseries_sale(scope, request.target_id)
    if sale.customer_pos_id != request.member_id:
        raise ValidationError("the sale is not this customer's", field="saleId")
    async with scope.services.locks.hold(balance_lock(scope, request.member_id)):
        member = await members.member(scope, request.member_id, fresh=True)
        _check_member(member)
        cost = cost_of(reward, request.quantity, member.customer.balance)
        if cost.amount > sale.amount_due:
            raise AmountExceedsDue(sale.amount_due, cost.amount)
        row = await _record(scope, request, cost.points, cost.amount)
        await _take_difference(scope, row, reward)
    return row


async def _take_difference(scope: Scope, row: RedemptionRow, reward: Reward) -> None:
    """A reward worth less than its points takes the rest as an adjustment (under the
    balance lock when first done; idempotent when resumed)."""
    if row.points > row.amount:
        await _move(scope, row, row.amount - row.points, "topup", reward.title)
    await _set(scope, row, Status.DEBITED)


async def _move(scope: Scope, row: RedemptionRow, delta: Decimal, step: str, reason: str) -> None:
    """Credit (delta > 0) or debit the member, once per redemption and step."""
    book = points_book(scope)
    key = f"redemption:{row.id}:{step}"
    if delta > 0:
        await book.credit(row.member_id, delta, key, reason)
    elif delta < 0:
        await book.debit(row.member_id, -delta, key, reason)


# --------------------------------------------------------------------------- shared


def _check_member(member: members.Member) -> None:
    if not member.customer.loyalty_enabled:
        raise GatewayError(
            "loyalty is turned off for this customer", code=ErrorCode.CUSTOMER_LOYALTY_DISABLED
        )


async def _find(scope: Scope, key: str) -> RedemptionRow | None:
    async with scope.runtime.db.read() as session:
        return await store.by_key(session, scope.merchant.id, key)


async def _record(
    scope: Scope, request: RedemptionRequest, points: Decimal, amount: Decimal
) -> RedemptionRow:
    async with scope.runtime.db.transaction() as session:
        return await store.create(
            session,
            merchant_id=scope.merchant.id,
            key=request.key,
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

"""What every redemption does whatever the POS: its record, its points, giving them back.

Each step is recorded before it is made (store/redemptions.py): the record exists before
any points move, COMPENSATING is recorded before anything is given back, and every points
movement is idempotent by a key derived from the redemption, so a step that ran twice
(a crash, a retry, the worker) moves the points once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from pydantic import TypeAdapter

from gateway.domain.activity import ActivityKind, Movement, redemption_key
from gateway.domain.errors import (
    GatewayError,
    InsufficientBalance,
    SaleNotOpen,
    Unavailable,
    ValidationError,
)
from gateway.domain.merchant import Pos
from gateway.domain.rewards import Reward
from gateway.domain.sales import Sale
from gateway.faults import crash_point
from gateway.metrics import REDEMPTIONS
from gateway.services.context import Scope
from gateway.services.points import points_book
from gateway.store import redemptions as store
from gateway.store.redemptions import RedemptionRecord, Status

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


async def find(scope: Scope, stored_key: str) -> RedemptionRecord | None:
    async with scope.runtime.db.read() as session:
        return await store.by_key(session, scope.merchant.id, stored_key)


async def by_id(scope: Scope, redemption_id: str) -> RedemptionRecord | None:
    async with scope.runtime.db.read() as session:
        return await store.get(session, scope.merchant.id, redemption_id)


async def create(
    scope: Scope, request: RedemptionRequest, points: Decimal, amount: Decimal
) -> RedemptionRecord:
    async with scope.runtime.db.transaction() as session:
        record = await store.create(
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
            request=request.as_json(),
        )
    crash_point("redemption.PENDING")
    return record


async def move(
    scope: Scope, record: RedemptionRecord, status: Status, *, error: str | None = None
) -> RedemptionRecord:
    async with scope.runtime.db.transaction() as session:
        moved = await store.move(session, record, status, error=error)
    crash_point(f"redemption.{moved.status.value}")
    if moved.finished and moved.status is status:
        REDEMPTIONS.labels(pos=moved.target_pos, status=status.value).inc()
    return moved


async def take_points(
    scope: Scope,
    record: RedemptionRecord,
    take: Callable[[], Awaitable[None]],
) -> RedemptionRecord:
    """PENDING → DEBITED through ``take`` (idempotent). Refused for good (the balance no
    longer covers it, the POS refuses the token or the request): nothing was taken, FAILED,
    so neither the caller's retry nor the worker asks again. Transient: still PENDING."""
    try:
        await take()
    except GatewayError as refused:
        if refused.transient:
            raise
        await move(scope, record, Status.FAILED, error=refused.message)
        raise
    return await move(scope, record, Status.DEBITED)


async def compensate(
    scope: Scope,
    record: RedemptionRecord,
    reason: str,
    give_back: Callable[[RedemptionRecord], Awaitable[None]],
) -> RedemptionRecord:
    """It will not apply: record COMPENSATING (the reason kept), give back what was taken
    (idempotent per try), FAILED. Until it succeeds the redemption stays COMPENSATING and
    the worker repeats it; a try the POS refused (a balance spent at the till meanwhile) is
    final there, so the next try is a new movement (``attempt_step``)."""
    if record.status is not Status.COMPENSATING:
        record = await move(scope, record, Status.COMPENSATING, error=reason)
    try:
        await give_back(record)
    except (InsufficientBalance, ValidationError) as refused:
        async with scope.runtime.db.transaction() as session:
            await store.count_attempt(session, record)
        log.warning("redemption not given back yet", redemption=record.id, reason=refused.message)
        raise Unavailable(
            f"what this redemption took could not be given back yet ({refused.message}); "
            "it is tried again until it is"
        ) from None
    log.info("redemption given back", redemption=record.id, reason=record.error)
    return await move(scope, record, Status.FAILED)


def attempt_step(step: str, record: RedemptionRecord) -> str:
    """The key step of a try at giving back: the first keeps the plain step."""
    return step if record.attempts == 0 else f"{step}:{record.attempts}"


async def held_top_ups(scope: Scope, member_id: str, *, except_key: str | None = None) -> Decimal:
    """Points the member holds only because an X-Series redemption not finished yet topped
    the balance up for its payment: they are not the member's to spend meanwhile."""
    async with scope.runtime.db.read() as session:
        held = await store.held_for(session, scope.merchant.id, member_id, Pos.XSERIES.value)
    return sum(
        (r.amount - r.points for r in held if r.amount > r.points and r.key != except_key),
        Decimal(0),
    )


async def credit(
    scope: Scope,
    record: RedemptionRecord,
    points: Decimal,
    step: str,
    kind: ActivityKind,
    reason: str,
) -> None:
    """Credit (points > 0) or debit the member, once per redemption and step; told in the
    history as ``kind`` with ``reason``."""
    book = points_book(scope)
    key = redemption_key(record.id, step)
    movement = Movement(kind, reason, Pos(record.target_pos), record.target_id, record.reward_id)
    if points > 0:
        await book.credit(record.member_id, points, key, movement)
    elif points < 0:
        await book.debit(record.member_id, -points, key, movement)


def failure(record: RedemptionRecord) -> GatewayError:
    """How a FAILED redemption is told again (the first telling may have been lost)."""
    return SaleNotOpen(
        f"the reward was not applied ({record.error or 'refused'}); the points were given back"
    )


def result(record: RedemptionRecord, reward: Reward, sale: Sale, applied: Decimal) -> Redemption:
    return Redemption(
        id=record.id,
        reward=reward,
        member_id=record.member_id,
        target_pos=Pos(record.target_pos),
        target_id=record.target_id,
        points=record.points,
        amount=applied,
        status=Status.COMPLETED.value,
        sale=sale,
    )


def request_of(record: RedemptionRecord) -> RedemptionRequest:
    data = record.request
    quantity = data.get("quantity")
    return RedemptionRequest(
        key=data["key"],
        reward_id=data["reward_id"],
        member_id=data["member_id"],
        target_pos=Pos(data["target_pos"]),
        target_id=data["target_id"],
        quantity=None if quantity is None else Decimal(quantity),
        key_space=data.get("key_space", "api"),
    )


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)

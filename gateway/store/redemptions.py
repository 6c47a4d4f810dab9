"""Redemption records: what was promised, and how far it got, recorded before each step
so an interrupted redemption resumes or is undone instead of repeating.

PENDING → DEBITED → COMPLETED, or → COMPENSATING → FAILED. PENDING: recorded, the points
(or a reward's difference) may or may not be taken yet. DEBITED: taken; the order or sale
not yet known to be changed. COMPENSATING: it will not apply; what was taken is being given
back (the worker repeats this until it succeeds). FAILED: given back, final.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import RedemptionRow


class Status(StrEnum):
    PENDING = "PENDING"
    DEBITED = "DEBITED"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


UNFINISHED = (Status.PENDING.value, Status.DEBITED.value, Status.COMPENSATING.value)


@dataclass(frozen=True)
class RedemptionRecord:
    id: str
    merchant_id: str
    key: str
    reward_id: str
    member_id: str
    target_pos: str
    target_id: str
    quantity: Decimal | None
    points: Decimal
    amount: Decimal
    status: Status
    error: str | None
    request: dict[str, Any]
    updated_at: datetime
    attempts: int = 0

    @property
    def finished(self) -> bool:
        return self.status in (Status.COMPLETED, Status.FAILED)


def _record(row: RedemptionRow) -> RedemptionRecord:
    return RedemptionRecord(
        id=row.id,
        merchant_id=row.merchant_id,
        key=row.key,
        reward_id=row.reward_id,
        member_id=row.member_id,
        target_pos=row.target_pos,
        target_id=row.target_id,
        quantity=row.quantity,
        points=row.points,
        amount=row.amount,
        status=Status(row.status),
        error=row.error,
        request=json.loads(row.request_json),
        updated_at=row.updated_at,
        attempts=row.attempts or 0,
    )


async def by_key(session: AsyncSession, merchant_id: str, key: str) -> RedemptionRecord | None:
    row = await session.scalar(
        select(RedemptionRow).where(
            RedemptionRow.merchant_id == merchant_id, RedemptionRow.key == key
        )
    )
    return _record(row) if row else None


async def get(
    session: AsyncSession, merchant_id: str, redemption_id: str
) -> RedemptionRecord | None:
    row = await session.get(RedemptionRow, redemption_id)
    return _record(row) if row is not None and row.merchant_id == merchant_id else None


async def create(
    session: AsyncSession,
    *,
    merchant_id: str,
    key: str,
    reward_id: str,
    member_id: str,
    target_pos: str,
    target_id: str,
    quantity: Decimal | None,
    points: Decimal,
    amount: Decimal,
    request: dict[str, Any],
) -> RedemptionRecord:
    now = datetime.now(UTC)
    row = RedemptionRow(
        id=str(uuid.uuid4()),
        merchant_id=merchant_id,
        key=key,
        reward_id=reward_id,
        member_id=member_id,
        target_pos=target_pos,
        target_id=target_id,
        quantity=quantity,
        points=points,
        amount=amount,
        status=Status.PENDING.value,
        request_json=json.dumps(request, sort_keys=True),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return _record(row)


async def move(
    session: AsyncSession, record: RedemptionRecord, status: Status, *, error: str | None = None
) -> RedemptionRecord:
    """The record in its next state. A final state is never left: moving a COMPLETED or
    FAILED redemption changes nothing and returns it as it is."""
    values: dict[str, Any] = {"status": status.value, "updated_at": datetime.now(UTC)}
    if error is not None:
        values["error"] = error
    await session.execute(
        update(RedemptionRow)
        .where(
            RedemptionRow.id == record.id,
            RedemptionRow.status.not_in((Status.COMPLETED.value, Status.FAILED.value)),
        )
        .values(**values)
    )
    row = await session.get(RedemptionRow, record.id, populate_existing=True)
    assert row is not None
    return _record(row)


async def count_attempt(session: AsyncSession, record: RedemptionRecord) -> RedemptionRecord:
    """One more refused try at giving back: the next one is a new adjustment."""
    await session.execute(
        update(RedemptionRow)
        .where(RedemptionRow.id == record.id, RedemptionRow.attempts == record.attempts)
        .values(attempts=record.attempts + 1, updated_at=datetime.now(UTC))
    )
    row = await session.get(RedemptionRow, record.id, populate_existing=True)
    assert row is not None
    return _record(row)


async def held_for(
    session: AsyncSession, merchant_id: str, member_id: str, target_pos: str
) -> list[RedemptionRecord]:
    """A member's unfinished redemptions at one POS (what they may still hold)."""
    rows = await session.scalars(
        select(RedemptionRow).where(
            RedemptionRow.merchant_id == merchant_id,
            RedemptionRow.member_id == member_id,
            RedemptionRow.target_pos == target_pos,
            RedemptionRow.status.in_(UNFINISHED),
        )
    )
    return [_record(row) for row in rows]


async def touch(session: AsyncSession, redemption_id: str) -> None:
    """Move a redemption to the back of the worker's queue (it is still being retried)."""
    await session.execute(
        update(RedemptionRow)
        .where(RedemptionRow.id == redemption_id)
        .values(updated_at=datetime.now(UTC))
    )


async def unfinished(session: AsyncSession, before: datetime) -> list[RedemptionRecord]:
    rows = await session.scalars(
        select(RedemptionRow)
        .where(RedemptionRow.status.in_(UNFINISHED), RedemptionRow.updated_at < before)
        .order_by(RedemptionRow.updated_at)
        .limit(100)
    )
    return [_record(row) for row in rows]


async def unfinished_on(
    session: AsyncSession, merchant_id: str, target_pos: str, target_id: str
) -> list[RedemptionRecord]:
    """Redemptions on one order or sale that are not finished yet."""
    rows = await session.scalars(
        select(RedemptionRow).where(
            RedemptionRow.merchant_id == merchant_id,
            RedemptionRow.target_pos == target_pos,
            RedemptionRow.target_id == target_id,
            RedemptionRow.status.in_(UNFINISHED),
        )
    )
    return [_record(row) for row in rows]

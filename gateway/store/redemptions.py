"""Redemption records: what was promised, and how far it got (PENDING → DEBITED →
COMPLETED or FAILED), so an interrupted redemption resumes instead of repeating."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import RedemptionRow


class Status(StrEnum):
    PENDING = "PENDING"  # recorded; points may or may not be debited yet
    DEBITED = "DEBITED"  # points taken; the order not yet (known to be) changed
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # not applicable for good; points given back


UNFINISHED = (Status.PENDING.value, Status.DEBITED.value)


async def by_key(session: AsyncSession, merchant_id: str, key: str) -> RedemptionRow | None:
    return await session.scalar(
        select(RedemptionRow).where(
            RedemptionRow.merchant_id == merchant_id, RedemptionRow.key == key
        )
    )


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
    request_json: str,
) -> RedemptionRow:
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
        request_json=request_json,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def set_status(
    session: AsyncSession,
    redemption_id: str,
    status: Status,
    *,
    error: str | None = None,
    amount: Decimal | None = None,
) -> RedemptionRow:
    row = await session.get(RedemptionRow, redemption_id)
    assert row is not None
    row.status = status.value
    row.error = error
    if amount is not None:
        row.amount = amount
    row.updated_at = datetime.now(UTC)
    await session.flush()
    return row


async def touch(session: AsyncSession, redemption_id: str) -> None:
    """Move a redemption to the back of the worker's queue (it is still being retried)."""
    row = await session.get(RedemptionRow, redemption_id)
    if row is not None:
        row.updated_at = datetime.now(UTC)
        await session.flush()


async def unfinished(session: AsyncSession, before: datetime) -> list[RedemptionRow]:
    rows = await session.scalars(
        select(RedemptionRow)
        .where(RedemptionRow.status.in_(UNFINISHED), RedemptionRow.updated_at < before)
        .order_by(RedemptionRow.updated_at)
        .limit(100)
    )
    return list(rows)

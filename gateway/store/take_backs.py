"""Take-backs (``take_backs``): points to take from a balance that must not go below zero,
written with what will be taken before anything is taken (docs/architecture.md, "The life of
a sale"). PENDING until the balance moved (or there was nothing left to take), then DONE."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain.activity import ActivityKind, Movement
from gateway.domain.afterlife import Take
from gateway.domain.merchant import Pos
from gateway.store.models import TakeBackRow

PENDING = "PENDING"
DONE = "DONE"


@dataclass(frozen=True)
class TakeBack:
    id: str
    merchant_id: str
    key: str
    member_id: str
    movement: Movement
    wanted: Decimal
    taken: Decimal
    shortfall: Decimal
    attempts: int
    done: bool


def _take_back(row: TakeBackRow) -> TakeBack:
    movement = Movement(ActivityKind(row.kind), row.reason, Pos(row.pos), row.sale_id)
    return TakeBack(
        id=row.id, merchant_id=row.merchant_id, key=row.key, member_id=row.member_id,
        movement=movement, wanted=row.wanted, taken=row.taken, shortfall=row.shortfall,
        attempts=row.attempts, done=row.status == DONE,
    )  # fmt: skip


async def get(session: AsyncSession, merchant_id: str, key: str) -> TakeBack | None:
    row = await _row(session, merchant_id, key)
    return None if row is None else _take_back(row)


async def create(
    session: AsyncSession,
    *,
    merchant_id: str,
    key: str,
    member_id: str,
    movement: Movement,
    wanted: Decimal,
    take: Take,
) -> TakeBack:
    now = datetime.now(UTC)
    row = TakeBackRow(
        id=str(uuid.uuid4()), merchant_id=merchant_id, key=key, member_id=member_id,
        pos=(movement.pos or Pos.KOUNTA).value, sale_id=movement.sale_id or "",
        kind=movement.kind.value, reason=movement.reason[:500], wanted=wanted,
        taken=take.taken, shortfall=take.shortfall, attempts=0, status=PENDING,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    return _take_back(row)


async def retake(session: AsyncSession, record: TakeBack, take: Take) -> TakeBack:
    """A refused try (the balance fell meanwhile): the next takes what is there now."""
    row = await _existing(session, record)
    row.taken, row.shortfall = take.taken, take.shortfall
    row.attempts += 1
    row.updated_at = datetime.now(UTC)
    await session.flush()
    return _take_back(row)


async def finish(session: AsyncSession, record: TakeBack) -> None:
    row = await _existing(session, record)
    row.status = DONE
    row.updated_at = datetime.now(UTC)
    await session.flush()


async def wanted_on(session: AsyncSession, merchant_id: str, pos: Pos, sale_id: str,
                    key_prefix: str) -> Decimal:  # fmt: skip
    """What the take-backs of one kind on one order asked for in all (taken or short)."""
    total = await session.scalar(
        select(func.sum(TakeBackRow.wanted)).where(
            TakeBackRow.merchant_id == merchant_id,
            TakeBackRow.pos == pos.value,
            TakeBackRow.sale_id == sale_id,
            TakeBackRow.key.startswith(key_prefix, autoescape=True),
        )
    )
    return total if isinstance(total, Decimal) else Decimal(0)


async def unfinished(session: AsyncSession, before: datetime) -> list[TakeBack]:
    """PENDING take-backs untouched since ``before`` (their process died): the worker's."""
    rows = await session.scalars(
        select(TakeBackRow)
        .where(TakeBackRow.status == PENDING, TakeBackRow.updated_at < before)
        .order_by(TakeBackRow.updated_at)
        .limit(100)
    )
    return [_take_back(row) for row in rows]


async def _row(session: AsyncSession, merchant_id: str, key: str) -> TakeBackRow | None:
    return await session.scalar(
        select(TakeBackRow).where(TakeBackRow.merchant_id == merchant_id, TakeBackRow.key == key)
    )


async def _existing(session: AsyncSession, record: TakeBack) -> TakeBackRow:
    row = await session.get(TakeBackRow, record.id)
    if row is None:
        raise LookupError(f"no take-back {record.id}")
    return row

"""The loyalty history (``loyalty_activity``): each movement once, by its key; read newest
first, by pages whose cursor is the last row's (time, id), so no row is skipped or repeated
when new ones arrive between pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain.activity import Activity, ActivityKind, Movement, redemption_of
from gateway.domain.merchant import Pos
from gateway.store.models import ActivityRow


def _activity(row: ActivityRow) -> Activity:
    return Activity(
        id=row.id,
        member_id=row.member_id,
        occurred_at=row.occurred_at,
        kind=ActivityKind(row.kind),
        points=row.points,
        balance_after=row.balance_after,
        pos=Pos(row.pos) if row.pos else None,
        sale_id=row.sale_id,
        reward_id=row.reward_id,
        reason=row.reason,
        redemption_id=redemption_of(row.key),
    )


async def record(
    session: AsyncSession,
    *,
    merchant_id: str,
    member_id: str,
    key: str,
    points: Decimal,
    movement: Movement,
    at: datetime,
    balance_after: Decimal | None = None,
) -> None:
    """Write the movement unless its key is written already (a movement is told once)."""
    existing = await session.scalar(
        select(ActivityRow.id).where(ActivityRow.merchant_id == merchant_id, ActivityRow.key == key)
    )
    if existing is not None:
        return
    row = ActivityRow(
        id=str(uuid.uuid4()), merchant_id=merchant_id, member_id=member_id, key=key,
        occurred_at=at, kind=movement.kind.value, points=points, balance_after=balance_after,
        pos=movement.pos.value if movement.pos else None, sale_id=movement.sale_id,
        reward_id=movement.reward_id, reason=movement.reason[:500],
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:  # written meanwhile by another: the same movement, told once
        return


async def page(
    session: AsyncSession,
    merchant_id: str,
    member_id: str,
    *,
    first: int,
    after: tuple[datetime, str] | None = None,
) -> tuple[list[Activity], bool]:
    """Up to ``first`` movements, newest first, after the cursor; and whether more follow."""
    query = select(ActivityRow).where(
        ActivityRow.merchant_id == merchant_id, ActivityRow.member_id == member_id
    )
    if after is not None:
        at, row_id = after
        query = query.where(
            or_(ActivityRow.occurred_at < at,
                and_(ActivityRow.occurred_at == at, ActivityRow.id < row_id))
        )  # fmt: skip
    rows = list(
        await session.scalars(
            query.order_by(ActivityRow.occurred_at.desc(), ActivityRow.id.desc()).limit(first + 1)
        )
    )
    return [_activity(row) for row in rows[:first]], len(rows) > first


async def get(session: AsyncSession, merchant_id: str, activity_id: str) -> Activity | None:
    row = await session.get(ActivityRow, activity_id)
    return _activity(row) if row is not None and row.merchant_id == merchant_id else None


async def by_key(session: AsyncSession, merchant_id: str, key: str) -> Activity | None:
    """The movement told under ``key`` (what an operation made, read back for its answer)."""
    row = await session.scalar(
        select(ActivityRow).where(ActivityRow.merchant_id == merchant_id, ActivityRow.key == key)
    )
    return _activity(row) if row is not None else None


async def count(session: AsyncSession, merchant_id: str, member_id: str) -> int:
    found = await session.scalar(
        select(func.count())
        .select_from(ActivityRow)
        .where(ActivityRow.merchant_id == merchant_id, ActivityRow.member_id == member_id)
    )
    return int(found or 0)


async def total(session: AsyncSession, merchant_id: str, member_id: str) -> Decimal:
    """The sum of a member's movements (what the history says the balance moved by)."""
    rows = await session.scalars(
        select(ActivityRow.points).where(
            ActivityRow.merchant_id == merchant_id, ActivityRow.member_id == member_id
        )
    )
    return sum(rows, Decimal(0))


async def on_sale(
    session: AsyncSession, merchant_id: str, pos: Pos, sale_id: str
) -> list[tuple[str, Activity]]:
    """Every movement told of one order or sale, with its key (which says who made it)."""
    rows = await session.scalars(
        select(ActivityRow)
        .where(
            ActivityRow.merchant_id == merchant_id,
            ActivityRow.pos == pos.value,
            ActivityRow.sale_id == sale_id,
        )
        .order_by(ActivityRow.occurred_at, ActivityRow.id)
    )
    return [(row.key, _activity(row)) for row in rows]

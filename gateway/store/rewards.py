"""Each merchant's reward catalogue."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain.errors import ValidationError
from gateway.domain.rewards import Reward, RewardKind
from gateway.store.models import RewardRow


async def add_reward(session: AsyncSession, merchant_id: str, reward: Reward) -> Reward:
    existing = await session.get(RewardRow, (merchant_id, reward.id))
    if existing is not None and existing.archived_at is None:
        raise ValidationError(f"a reward with id {reward.id!r} already exists", field="id")
    if existing is not None:  # re-adding an archived id starts it afresh
        await session.delete(existing)
        await session.flush()
    session.add(
        RewardRow(
            merchant_id=merchant_id,
            id=reward.id,
            title=reward.title,
            terms=reward.terms,
            kind=reward.kind.value,
            points_required=reward.points_required,
            value=reward.value,
            variable_quantity=reward.variable_quantity,
            action_label=reward.action_label,
            created_at=datetime.now(UTC),
        )
    )
    await session.flush()
    return reward


async def list_rewards(session: AsyncSession, merchant_id: str) -> list[Reward]:
    rows = await session.scalars(
        select(RewardRow)
        .where(RewardRow.merchant_id == merchant_id, RewardRow.archived_at.is_(None))
        .order_by(RewardRow.created_at, RewardRow.id)
    )
    return [_reward(row) for row in rows]


async def get_reward(
    session: AsyncSession, merchant_id: str, reward_id: str, *, include_archived: bool = False
) -> Reward | None:
    row = await session.get(RewardRow, (merchant_id, reward_id))
    if row is None or (row.archived_at is not None and not include_archived):
        return None
    return _reward(row)


async def archive_reward(session: AsyncSession, merchant_id: str, reward_id: str) -> bool:
    row = await session.get(RewardRow, (merchant_id, reward_id))
    if row is None or row.archived_at is not None:
        return False
    row.archived_at = datetime.now(UTC)
    await session.flush()
    return True


def _reward(row: RewardRow) -> Reward:
    return Reward(
        id=row.id,
        title=row.title,
        kind=RewardKind(row.kind),
        points_required=row.points_required,
        value=row.value,
        variable_quantity=row.variable_quantity,
        terms=row.terms,
        action_label=row.action_label,
    )

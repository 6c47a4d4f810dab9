"""Reconciliation checkpoints (``sync_checkpoints``): one per merchant and POS, the time up
to which its changes are applied (docs/architecture.md, "Reconciliation")."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain.merchant import Pos
from gateway.store.models import SyncCheckpointRow


async def get(session: AsyncSession, merchant_id: str, pos: Pos) -> datetime | None:
    row = await session.get(SyncCheckpointRow, (merchant_id, pos.value))
    return None if row is None else row.position


async def advance(session: AsyncSession, merchant_id: str, pos: Pos, position: datetime) -> None:
    """Move the checkpoint forward (never back: a slower pass must not undo a faster one)."""
    now = datetime.now(UTC)
    row = await session.get(SyncCheckpointRow, (merchant_id, pos.value))
    if row is None:
        session.add(SyncCheckpointRow(merchant_id=merchant_id, pos=pos.value,
                                      position=position, updated_at=now))  # fmt: skip
    elif position > row.position:
        row.position, row.updated_at = position, now
    await session.flush()

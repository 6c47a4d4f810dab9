"""What is left unsettled in the store, counted for ``gateway doctor``: the same four kinds
of work the recovery worker looks for (services/recovery.py), with the oldest of each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import idempotency, redemptions, take_backs, writes
from gateway.store.models import IdempotencyRow, PosWriteRow, RedemptionRow, TakeBackRow


@dataclass(frozen=True)
class Backlog:
    kind: str
    count: int
    oldest: datetime | None


async def unsettled(session: AsyncSession, retry_operations: tuple[str, ...]) -> list[Backlog]:
    """``retry_operations``: the operations the worker retries after an outage (a caller's
    own RETRYABLE operation waits for that caller, and is not the worker's backlog)."""
    operations = (IdempotencyRow.status == idempotency.Status.IN_PROGRESS.value) | (
        (IdempotencyRow.status == idempotency.Status.RETRYABLE.value)
        & IdempotencyRow.operation.in_(retry_operations)
    )
    return [
        await _count(
            session, "operations in progress or to retry", IdempotencyRow.updated_at, operations
        ),
        await _count(
            session,
            "unsettled POS writes",
            PosWriteRow.sent_at,
            PosWriteRow.status == writes.WriteStatus.PENDING.value,
        ),
        await _count(
            session,
            "unfinished redemptions",
            RedemptionRow.updated_at,
            RedemptionRow.status.in_(redemptions.UNFINISHED),
        ),
        await _count(
            session,
            "unfinished take-backs",
            TakeBackRow.updated_at,
            TakeBackRow.status == take_backs.PENDING,
        ),
    ]


async def _count(session: AsyncSession, kind: str, since: Any, condition: Any) -> Backlog:
    found = (await session.execute(select(func.count(), func.min(since)).where(condition))).one()
    count, oldest = found
    return Backlog(kind, int(count), oldest)

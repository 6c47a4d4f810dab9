"""The recovery worker's last pass (``worker_passes``): written at the end of each pass, read
by ``gateway doctor`` to tell a worker that stopped from one that is keeping up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import WorkerPassRow

RECOVERY = "recovery"


@dataclass(frozen=True)
class WorkerPass:
    finished_at: datetime
    interval_s: float | None
    reconciled_at: datetime | None


async def record(
    session: AsyncSession,
    finished_at: datetime,
    *,
    interval_s: float | None,
    reconciled: bool,
    name: str = RECOVERY,
) -> None:
    """One row per worker kind: the newest pass wins (several workers share it: the fleet's
    last pass is what matters). A pass without reconciliation keeps the last one's time."""
    row = await session.get(WorkerPassRow, name)
    if row is None:
        try:
            async with session.begin_nested():  # two workers' first passes at once
                session.add(WorkerPassRow(name=name, finished_at=finished_at))
        except IntegrityError:
            pass  # the other one's row is there now: update it
        row = await session.get(WorkerPassRow, name, populate_existing=True)
        assert row is not None
    row.finished_at = max(row.finished_at, finished_at)
    row.interval_s = interval_s
    if reconciled:
        row.reconciled_at = finished_at
    await session.flush()


async def last(session: AsyncSession, name: str = RECOVERY) -> WorkerPass | None:
    row = await session.get(WorkerPassRow, name)
    if row is None:
        return None
    return WorkerPass(row.finished_at, row.interval_s, row.reconciled_at)

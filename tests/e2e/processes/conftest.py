"""Gateways as real processes on the test's store: to crash them, or to run two at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from gateway.runtime import Runtime
from gateway.store.models import IdempotencyRow, LockRow, RedemptionRow
from tests.conftest import PROCESS_LEASE_S as LEASE_S


async def leases_run_out(runtime: Runtime) -> bool:
    """Whether every lease a dead process held has run out, and every operation it left has
    been still for longer than a lease: when the worker may take over."""
    now = datetime.now(UTC)
    still = timedelta(seconds=LEASE_S)
    async with runtime.db.read() as session:
        lease_ends = await session.scalar(select(func.max(LockRow.expires_at)))
        touched = [
            await session.scalar(select(func.max(IdempotencyRow.updated_at))),
            await session.scalar(select(func.max(RedemptionRow.updated_at))),
        ]
    ends = [lease_ends] if lease_ends else []
    ends += [moment + still for moment in touched if moment]
    return all(_utc(moment) < now for moment in ends)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

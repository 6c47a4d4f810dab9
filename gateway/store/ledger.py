"""The gateway's own points ledger (points source LEDGER): append-only entries.

Every entry has a key unique per merchant, so writing the same movement twice is a no-op;
debits are checked against the balance by the caller while it holds the balance's lock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import LedgerEntryRow


async def balance(session: AsyncSession, merchant_id: str, member_id: str) -> Decimal:
    total = await session.scalar(
        select(func.sum(LedgerEntryRow.amount)).where(
            LedgerEntryRow.merchant_id == merchant_id, LedgerEntryRow.member_id == member_id
        )
    )
    return total if isinstance(total, Decimal) else Decimal(0)


async def has_entry(session: AsyncSession, merchant_id: str, key: str) -> bool:
    """Whether the movement with this key was written already."""
    found = await session.scalar(
        select(LedgerEntryRow.id).where(
            LedgerEntryRow.merchant_id == merchant_id, LedgerEntryRow.key == key
        )
    )
    return found is not None


async def append(
    session: AsyncSession,
    merchant_id: str,
    member_id: str,
    amount: Decimal,
    key: str,
    reason: str | None = None,
) -> bool:
    """Write the entry; False if another transaction wrote one with this key meanwhile
    (two hints of one change at once: the movement is made once, and this one is not)."""
    row = LedgerEntryRow(
        merchant_id=merchant_id,
        member_id=member_id,
        amount=amount,
        key=key,
        reason=reason,
        created_at=datetime.now(UTC),
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True

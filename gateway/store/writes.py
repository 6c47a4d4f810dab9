"""The write journal: every POS write that is not idempotent, recorded before it is sent
(docs/architecture.md, "Settling").

PENDING from the moment before it is sent until its answer says otherwise: LANDED (it was
applied), REFUSED (the POS said no, or it never left: nothing landed and nothing will), or
NOT_LANDED (its answer was lost, and a read-back after the settle window found nothing).
A PENDING write whose sender died, or whose answer was lost, is *unsettled*.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import PosWriteRow


class WriteStatus(StrEnum):
    PENDING = "PENDING"
    LANDED = "LANDED"
    REFUSED = "REFUSED"
    NOT_LANDED = "NOT_LANDED"


@dataclass(frozen=True)
class WriteRecord:
    id: str
    merchant_id: str
    owner: str
    target: str
    kind: str
    intent: dict[str, Any]
    status: WriteStatus
    outcome: dict[str, Any] | None
    sent_at: datetime

    @property
    def pending(self) -> bool:
        return self.status is WriteStatus.PENDING


def _record(row: PosWriteRow) -> WriteRecord:
    return WriteRecord(
        id=row.id,
        merchant_id=row.merchant_id,
        owner=row.owner,
        target=row.target,
        kind=row.kind,
        intent=json.loads(row.intent_json),
        status=WriteStatus(row.status),
        outcome=json.loads(row.outcome_json) if row.outcome_json else None,
        sent_at=row.sent_at,
    )


async def record(
    session: AsyncSession,
    *,
    merchant_id: str,
    owner: str,
    target: str,
    kind: str,
    intent: dict[str, Any],
    sent_at: datetime,
) -> WriteRecord:
    row = PosWriteRow(
        id=str(uuid.uuid4()),
        merchant_id=merchant_id,
        owner=owner,
        target=target,
        kind=kind,
        intent_json=json.dumps(intent, sort_keys=True, default=str),
        status=WriteStatus.PENDING.value,
        sent_at=sent_at,
    )
    session.add(row)
    await session.flush()
    return _record(row)


async def settle(
    session: AsyncSession,
    write_id: str,
    status: WriteStatus,
    at: datetime,
    outcome: dict[str, Any] | None = None,
) -> WriteRecord:
    """Record how a pending write ended; a write that is settled already stays as it is."""
    await session.execute(
        update(PosWriteRow)
        .where(PosWriteRow.id == write_id, PosWriteRow.status == WriteStatus.PENDING.value)
        .values(
            status=status.value,
            settled_at=at,
            outcome_json=json.dumps(outcome, sort_keys=True, default=str) if outcome else None,
        )
    )
    row = await session.get(PosWriteRow, write_id, populate_existing=True)
    assert row is not None
    return _record(row)


async def pending_on(session: AsyncSession, target: str) -> WriteRecord | None:
    row = await session.scalar(
        select(PosWriteRow).where(
            PosWriteRow.target == target, PosWriteRow.status == WriteStatus.PENDING.value
        )
    )
    return _record(row) if row else None


async def latest_of(session: AsyncSession, merchant_id: str, owner: str) -> WriteRecord | None:
    """What an operation's writes come to: the unsettled one if any (there is at most one:
    it is settled before another is sent), else the one that landed, else the newest."""
    rows = await session.scalars(
        select(PosWriteRow)
        .where(PosWriteRow.merchant_id == merchant_id, PosWriteRow.owner == owner)
        .order_by(PosWriteRow.sent_at)
    )
    found = [_record(row) for row in rows]
    for status in (WriteStatus.PENDING, WriteStatus.LANDED):
        for write in found:
            if write.status is status:
                return write
    return found[-1] if found else None


async def landed_on(session: AsyncSession, target: str, kind: str) -> list[WriteRecord]:
    rows = await session.scalars(
        select(PosWriteRow).where(
            PosWriteRow.target == target,
            PosWriteRow.kind == kind,
            PosWriteRow.status == WriteStatus.LANDED.value,
        )
    )
    return [_record(row) for row in rows]


async def follow_up(
    session: AsyncSession, target: str, kind: str, what: str | None, at: datetime | None
) -> None:
    """Mark (or, with None, clear) what is left to do about the landed writes of ``kind``
    to ``target``, and when to look next."""
    await session.execute(
        update(PosWriteRow)
        .where(
            PosWriteRow.target == target,
            PosWriteRow.kind == kind,
            PosWriteRow.status == WriteStatus.LANDED.value,
        )
        .values(follow_up=what, follow_up_at=at)
    )


async def follow_up_of(session: AsyncSession, target: str, kind: str) -> str | None:
    value = await session.scalar(
        select(PosWriteRow.follow_up).where(
            PosWriteRow.target == target,
            PosWriteRow.kind == kind,
            PosWriteRow.follow_up.is_not(None),
        )
    )
    return str(value) if value else None


async def followed_up(session: AsyncSession, what: str, due: datetime) -> list[WriteRecord]:
    """One landed write per target with ``what`` (or a later try at it, "what:n") left to
    do, due by ``due``."""
    rows = await session.scalars(
        select(PosWriteRow)
        .where(
            (PosWriteRow.follow_up == what) | PosWriteRow.follow_up.startswith(f"{what}:"),
            PosWriteRow.follow_up_at <= due,
        )
        .order_by(PosWriteRow.follow_up_at)
        .limit(100)
    )
    by_target: dict[str, WriteRecord] = {}
    for row in rows:
        by_target.setdefault(row.target, _record(row))
    return list(by_target.values())


async def unsettled(session: AsyncSession, sent_before: datetime) -> list[WriteRecord]:
    rows = await session.scalars(
        select(PosWriteRow)
        .where(PosWriteRow.status == WriteStatus.PENDING.value, PosWriteRow.sent_at < sent_before)
        .order_by(PosWriteRow.sent_at)
        .limit(100)
    )
    return [_record(row) for row in rows]

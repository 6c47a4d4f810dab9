"""Invites (a merchant's one-time connect link) and the OAuth states started from them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import InviteRow, OAuthStateRow


@dataclass(frozen=True)
class Invite:
    id: str
    merchant_id: str
    expires_at: datetime
    finished_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.finished_at is None and now < self.expires_at


def _invite(row: InviteRow) -> Invite:
    return Invite(row.id, row.merchant_id, row.expires_at, row.finished_at)


async def create_invite(
    session: AsyncSession, merchant_id: str, now: datetime, ttl: timedelta
) -> Invite:
    row = InviteRow(
        id=secrets.token_urlsafe(24), merchant_id=merchant_id, created_at=now,
        expires_at=now + ttl,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    return _invite(row)


async def get_invite(session: AsyncSession, invite_id: str) -> Invite | None:
    row = await session.get(InviteRow, invite_id)
    return _invite(row) if row else None


async def finish_invite(session: AsyncSession, invite_id: str, now: datetime) -> None:
    await session.execute(
        update(InviteRow)
        .where(InviteRow.id == invite_id, InviteRow.finished_at.is_(None))
        .values(finished_at=now)
    )


async def create_state(
    session: AsyncSession, invite_id: str, pos: str, now: datetime, ttl: timedelta
) -> str:
    state_id = secrets.token_urlsafe(24)
    session.add(OAuthStateRow(id=state_id, invite_id=invite_id, pos=pos, created_at=now,
                              expires_at=now + ttl))  # fmt: skip
    await session.flush()
    return state_id


async def take_state(session: AsyncSession, state_id: str, pos: str, now: datetime) -> str | None:
    """The invite a state was started from, if it is good for ``pos`` and not used or
    expired; it is used from now on, whatever happens next (single use)."""
    result = await session.execute(
        update(OAuthStateRow)
        .where(
            OAuthStateRow.id == state_id,
            OAuthStateRow.pos == pos,
            OAuthStateRow.used_at.is_(None),
            OAuthStateRow.expires_at > now,
        )
        .values(used_at=now)
    )
    if not getattr(result, "rowcount", 0):
        return None
    row = await session.get(OAuthStateRow, state_id)
    return row.invite_id if row else None

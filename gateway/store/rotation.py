"""Re-encrypting the stored POS secrets under the current key (``gateway rotate-secret``,
docs/operations.md, "Rotating GATEWAY_SECRET_KEY").

Serving processes keep refreshing tokens while a rotation runs, and a Kounta refresh token
is single-use: writing back a re-encrypted copy of a token that was replaced meanwhile
would strand the connection. So each row is rewritten only if it still holds exactly what
was read (compare and set), and read again otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.crypto import TokenCipher
from gateway.store.models import MerchantRow, PosCredentialRow

SECRET_COLUMNS = ("access_token", "refresh_token", "webhook_secret")


@dataclass(frozen=True)
class Credential:
    """One merchant's POS account, named for progress lines (never its secrets)."""

    id: int
    merchant: str
    pos: str


@dataclass(frozen=True)
class Rekeyed:
    rotated: int  # secrets re-encrypted under the current key
    current: int  # secrets the current key already encrypted


async def credentials(session: AsyncSession) -> list[Credential]:
    rows = await session.execute(
        select(PosCredentialRow.id, MerchantRow.name, PosCredentialRow.pos)
        .join(MerchantRow, MerchantRow.id == PosCredentialRow.merchant_id)
        .order_by(MerchantRow.name, PosCredentialRow.pos)
    )
    return [Credential(id, name, pos) for id, name, pos in rows.all()]


Secrets = dict[str, bytes | None]  # each secret column as it was read


async def secrets(session: AsyncSession, credential_id: int) -> Secrets | None:
    """One row's secret columns as stored; None if the row is gone."""
    row = (
        await session.execute(
            select(*(getattr(PosCredentialRow, c) for c in SECRET_COLUMNS)).where(
                PosCredentialRow.id == credential_id
            )
        )
    ).one_or_none()
    return None if row is None else dict(zip(SECRET_COLUMNS, row, strict=True))


async def rekey(
    session: AsyncSession, cipher: TokenCipher, credential_id: int, read: Secrets
) -> Rekeyed | None:
    """Re-encrypt what ``read`` holds under the current key, if the row still holds exactly
    that; None if it changed since (a token refresh): read it again.

    Raises ``UndecryptableToken`` when no configured key reads one of them.
    """
    stored = {column: value for column, value in read.items() if value is not None}
    stale = {column: value for column, value in stored.items() if not cipher.is_current(value)}
    if stale:
        unchanged: list[ColumnElement[bool]] = [
            getattr(PosCredentialRow, column).is_(None)
            if value is None
            else getattr(PosCredentialRow, column) == value
            for column, value in read.items()
        ]
        result = await session.execute(
            update(PosCredentialRow)
            .where(and_(PosCredentialRow.id == credential_id, *unchanged))
            .values({column: cipher.rotate(value) for column, value in stale.items()})
        )
        if getattr(result, "rowcount", 0) == 0:
            return None
    return Rekeyed(rotated=len(stale), current=len(stored) - len(stale))

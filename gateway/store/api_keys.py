"""API keys: shown once at creation, stored as a digest, looked up by digest."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.crypto import api_key_prefix, hash_api_key, new_api_key
from gateway.store.models import ApiKeyRow


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    merchant_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


async def create_api_key(session: AsyncSession, merchant_id: str) -> str:
    """A new key for the merchant; the plaintext exists only in the return value."""
    key = new_api_key()
    session.add(
        ApiKeyRow(
            id=str(uuid.uuid4()),
            merchant_id=merchant_id,
            key_hash=hash_api_key(key),
            prefix=api_key_prefix(key),
            created_at=datetime.now(UTC),
        )
    )
    await session.flush()
    return key


async def merchant_id_for_key(session: AsyncSession, key: str) -> str | None:
    return await session.scalar(
        select(ApiKeyRow.merchant_id).where(
            ApiKeyRow.key_hash == hash_api_key(key), ApiKeyRow.revoked_at.is_(None)
        )
    )


async def revoke_api_key(session: AsyncSession, key_or_id: str) -> ApiKeyInfo | None:
    """Revoke by the key itself or by its id (as ``keys list`` shows it)."""
    row = await session.scalar(
        select(ApiKeyRow).where(
            or_(ApiKeyRow.key_hash == hash_api_key(key_or_id), ApiKeyRow.id == key_or_id)
        )
    )
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.flush()
    return _info(row)


async def list_api_keys(session: AsyncSession, merchant_id: str) -> list[ApiKeyInfo]:
    rows = await session.scalars(
        select(ApiKeyRow).where(ApiKeyRow.merchant_id == merchant_id).order_by(ApiKeyRow.created_at)
    )
    return [_info(row) for row in rows]


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(row.id, row.merchant_id, row.prefix, row.created_at, row.revoked_at)

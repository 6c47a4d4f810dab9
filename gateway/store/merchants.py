"""Merchants, their POS accounts and the POS tokens (encrypted at rest)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain.errors import PosDisconnected, ValidationError
from gateway.domain.merchant import (
    ConnectionStatus,
    Merchant,
    PointsSource,
    Pos,
    PosAccount,
    VoidPolicy,
)
from gateway.store.crypto import TokenCipher
from gateway.store.models import MerchantRow, PosCredentialRow


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        return f"Tokens(access=***, refresh={'***' if self.refresh_token else None})"


async def create_merchant(
    session: AsyncSession,
    name: str,
    points_source: PointsSource,
    points_label: str = "Points",
    loyalty_ratio: Decimal | None = None,
) -> Merchant:
    name = name.strip()
    if not name:
        raise ValidationError("a merchant needs a name", field="name")
    if await session.scalar(select(MerchantRow.id).where(MerchantRow.name == name)):
        raise ValidationError(f"a merchant named {name!r} already exists", field="name")
    row = MerchantRow(
        id=str(uuid.uuid4()),
        name=name,
        points_source=points_source.value,
        points_label=points_label,
        loyalty_ratio=loyalty_ratio,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return Merchant(row.id, row.name, points_source, points_label, {}, loyalty_ratio)


async def connect_pos(
    session: AsyncSession,
    cipher: TokenCipher,
    merchant_id: str,
    account: PosAccount,
    tokens: Tokens,
) -> None:
    """Attach (or replace, or reconnect) a merchant's account on one POS: CONNECTED. An
    account another merchant holds is refused: two merchants on one Kounta company would
    overwrite each other's webhook."""
    if account.account_id:
        holder = await session.scalar(
            select(MerchantRow.name)
            .join(PosCredentialRow, PosCredentialRow.merchant_id == MerchantRow.id)
            .where(
                PosCredentialRow.pos == account.pos.value,
                PosCredentialRow.account_id == account.account_id,
                PosCredentialRow.merchant_id != merchant_id,
                PosCredentialRow.status != ConnectionStatus.DISCONNECTED.value,
            )
        )
        if holder is not None:
            raise ValidationError(
                f"that {account.pos.label} account ({account.account_id}) is connected to "
                f"another merchant ({holder}): disconnect it there first"
            )
    row = await session.scalar(
        select(PosCredentialRow).where(
            PosCredentialRow.merchant_id == merchant_id, PosCredentialRow.pos == account.pos.value
        )
    )
    if row is None:
        row = PosCredentialRow(merchant_id=merchant_id, pos=account.pos.value)
        session.add(row)
    row.base_url = account.base_url.rstrip("/")
    row.account_id = account.account_id
    row.settings_json = json.dumps(dict(account.settings), sort_keys=True)
    row.status = ConnectionStatus.CONNECTED.value
    row.status_reason = None
    _write_tokens(row, cipher, tokens)
    try:
        await session.flush()
    except IntegrityError:
        raise ValidationError(f"that {account.pos.label} account is already connected") from None


async def set_status(
    session: AsyncSession,
    merchant_id: str,
    pos: Pos,
    status: ConnectionStatus,
    reason: str | None = None,
) -> None:
    """A connection's new state; DISCONNECTED also forgets its tokens (its history stays)."""
    row = await _credential(session, merchant_id, pos)
    row.status = status.value
    row.status_reason = reason
    if status is ConnectionStatus.DISCONNECTED:
        row.access_token = None
        row.refresh_token = None
        row.expires_at = None
    row.updated_at = datetime.now(UTC)
    await session.flush()


async def set_void_policy(session: AsyncSession, merchant_id: str, policy: VoidPolicy) -> None:
    row = await session.get(MerchantRow, merchant_id)
    if row is None:
        raise LookupError(f"no merchant {merchant_id}")
    row.redeemed_points_on_void = policy.value
    await session.flush()


async def update_settings(
    session: AsyncSession, merchant_id: str, pos: Pos, settings: Mapping[str, str]
) -> None:
    row = await _credential(session, merchant_id, pos)
    row.settings_json = json.dumps({**json.loads(row.settings_json or "{}"), **settings},
                                   sort_keys=True)  # fmt: skip
    await session.flush()


async def get_merchant(session: AsyncSession, merchant_id: str) -> Merchant | None:
    row = await session.get(MerchantRow, merchant_id)
    return None if row is None else await _load(session, row)


async def get_merchant_by_name(session: AsyncSession, name: str) -> Merchant | None:
    row = await session.scalar(select(MerchantRow).where(MerchantRow.name == name.strip()))
    return None if row is None else await _load(session, row)


async def find_merchant_by_account(
    session: AsyncSession, pos: Pos, account_id: str
) -> Merchant | None:
    merchant_id = await session.scalar(
        select(PosCredentialRow.merchant_id).where(
            PosCredentialRow.pos == pos.value,
            PosCredentialRow.account_id == account_id,
            PosCredentialRow.status != ConnectionStatus.DISCONNECTED.value,
        )
    )
    return None if merchant_id is None else await get_merchant(session, merchant_id)


async def list_merchants(session: AsyncSession) -> list[Merchant]:
    rows = (await session.scalars(select(MerchantRow).order_by(MerchantRow.name))).all()
    return [await _load(session, row) for row in rows]


async def load_tokens(
    session: AsyncSession, cipher: TokenCipher, merchant_id: str, pos: Pos
) -> Tokens:
    row = await _credential(session, merchant_id, pos)
    if row.access_token is None:
        raise PosDisconnected(f"this merchant's {pos.label} is not connected")
    return Tokens(
        access_token=cipher.decrypt(row.access_token),
        refresh_token=cipher.decrypt(row.refresh_token) if row.refresh_token else None,
        expires_at=row.expires_at,
    )


async def save_tokens(
    session: AsyncSession, cipher: TokenCipher, merchant_id: str, pos: Pos, tokens: Tokens
) -> None:
    _write_tokens(await _credential(session, merchant_id, pos), cipher, tokens)
    await session.flush()


async def set_webhook_secret(
    session: AsyncSession, cipher: TokenCipher, merchant_id: str, pos: Pos, secret: str
) -> None:
    (await _credential(session, merchant_id, pos)).webhook_secret = cipher.encrypt(secret)
    await session.flush()


async def webhook_secret(
    session: AsyncSession, cipher: TokenCipher, merchant_id: str, pos: Pos
) -> str | None:
    row = await _credential(session, merchant_id, pos)
    return cipher.decrypt(row.webhook_secret) if row.webhook_secret else None


async def _credential(session: AsyncSession, merchant_id: str, pos: Pos) -> PosCredentialRow:
    row = await session.scalar(
        select(PosCredentialRow).where(
            PosCredentialRow.merchant_id == merchant_id, PosCredentialRow.pos == pos.value
        )
    )
    if row is None:
        raise LookupError(f"merchant {merchant_id} has no {pos.label} credentials")
    return row


def _write_tokens(row: PosCredentialRow, cipher: TokenCipher, tokens: Tokens) -> None:
    row.access_token = cipher.encrypt(tokens.access_token)
    row.refresh_token = cipher.encrypt(tokens.refresh_token) if tokens.refresh_token else None
    row.expires_at = tokens.expires_at
    row.updated_at = datetime.now(UTC)


async def _load(session: AsyncSession, row: MerchantRow) -> Merchant:
    credentials = (
        await session.scalars(
            select(PosCredentialRow).where(PosCredentialRow.merchant_id == row.id)
        )
    ).all()
    accounts: Mapping[Pos, PosAccount] = {
        Pos(c.pos): PosAccount(
            pos=Pos(c.pos),
            base_url=c.base_url,
            account_id=c.account_id,
            settings=json.loads(c.settings_json or "{}"),
            status=ConnectionStatus(c.status or ConnectionStatus.CONNECTED.value),
            status_reason=c.status_reason,
            expires_at=c.expires_at,
        )
        for c in credentials
    }
    return Merchant(
        row.id,
        row.name,
        PointsSource(row.points_source),
        row.points_label,
        accounts,
        row.loyalty_ratio,
        VoidPolicy(row.redeemed_points_on_void or VoidPolicy.RETURN.value),
    )

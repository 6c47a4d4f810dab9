"""API keys → merchants. Lookups are remembered in this process for a few seconds (a
revoked key stops working within ``Memo.ttl_s``), keyed by the key's digest, never the key."""

from __future__ import annotations

from gateway.domain.merchant import Merchant
from gateway.services.context import Services
from gateway.store import api_keys, merchants
from gateway.store.crypto import hash_api_key


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


async def authenticate(services: Services, key: str) -> Merchant | None:
    """The key's merchant; remembered for a few seconds, by the key's digest only."""

    async def load() -> Merchant | None:
        async with services.runtime.db.read() as session:
            merchant_id = await api_keys.merchant_id_for_key(session, key)
            return await merchants.get_merchant(session, merchant_id) if merchant_id else None

    return await services.memo.get_or_load("api-key", hash_api_key(key), load)

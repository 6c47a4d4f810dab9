"""API keys → merchants. Lookups are cached in this process for a few seconds (a revoked
key stops working within ``AUTH_CACHE_S``); the cache is keyed by the key's digest, never
by the key."""

from __future__ import annotations

import time

from gateway.domain.merchant import Merchant
from gateway.services.context import Services
from gateway.store import api_keys, merchants
from gateway.store.crypto import hash_api_key

AUTH_CACHE_S = 10.0


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


async def authenticate(services: Services, key: str) -> Merchant | None:
    digest = hash_api_key(key)
    now = time.monotonic()
    cached = services.auth_cache.get(digest)
    if cached and cached[0] > now:
        return cached[1]
    async with services.runtime.db.transaction() as session:
        merchant_id = await api_keys.merchant_id_for_key(session, key)
        merchant = await merchants.get_merchant(session, merchant_id) if merchant_id else None
    services.auth_cache[digest] = (now + AUTH_CACHE_S, merchant)
    return merchant

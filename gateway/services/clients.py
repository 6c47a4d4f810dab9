"""POS clients for a merchant, built from its stored (encrypted) credentials.

Decrypted tokens stay in this process's memory only, for a short while, so that a request
does not pay a database read and a decryption per POS call; they never enter the shared
cache.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager

from gateway.domain.merchant import Merchant, Pos
from gateway.pos.http import BearerToken
from gateway.pos.kounta.auth import KountaAuth, TokenSet
from gateway.pos.kounta.client import KountaClient
from gateway.pos.xseries import XSeriesClient
from gateway.runtime import Runtime
from gateway.store.leases import Leases
from gateway.store.merchants import Tokens, load_tokens, save_tokens

CLIENT_TTL_S = 60.0


class StoredTokens:
    """A merchant's Kounta pair in the store (encrypted), refreshed under a store lock."""

    def __init__(self, runtime: Runtime, leases: Leases, merchant_id: str) -> None:
        self.runtime = runtime
        self.leases = leases
        self.merchant_id = merchant_id

    async def load(self) -> TokenSet:
        async with self.runtime.db.read() as session:
            tokens = await load_tokens(session, self.runtime.cipher, self.merchant_id, Pos.KOUNTA)
        return TokenSet(tokens.access_token, tokens.refresh_token, tokens.expires_at)

    async def save(self, tokens: TokenSet) -> None:
        stored = Tokens(tokens.access_token, tokens.refresh_token, tokens.expires_at)
        async with self.runtime.db.transaction() as session:
            await save_tokens(session, self.runtime.cipher, self.merchant_id, Pos.KOUNTA, stored)

    def refresh_lock(self) -> AbstractAsyncContextManager[object]:
        return self.leases.hold(f"kounta-refresh:{self.merchant_id}")


class PosClients:
    """X-Series clients spend their store's rate budget (``gateway/pos/budget.py``); Kounta
    publishes no limit, so its clients only react to a 429 (docs/pos-contracts.md)."""

    def __init__(self, runtime: Runtime, leases: Leases) -> None:
        self.runtime = runtime
        self.leases = leases
        self._xseries: dict[str, tuple[float, str, XSeriesClient]] = {}
        # One auth per merchant for the life of the process: it owns the refresh lock.
        self._kounta: dict[str, tuple[str, KountaAuth]] = {}

    async def xseries(self, merchant: Merchant) -> XSeriesClient:
        account = merchant.account(Pos.XSERIES)
        cached = self._xseries.get(merchant.id)
        now = time.monotonic()
        if cached and cached[0] > now and cached[1] == account.base_url:
            return cached[2]
        async with self.runtime.db.read() as session:
            tokens = await load_tokens(session, self.runtime.cipher, merchant.id, Pos.XSERIES)
        client = XSeriesClient.connect(
            self.runtime.http, account.base_url, BearerToken(tokens.access_token)
        )
        self._xseries[merchant.id] = (now + CLIENT_TTL_S, account.base_url, client)
        return client

    def kounta(self, merchant: Merchant) -> KountaClient:
        account = merchant.account(Pos.KOUNTA)
        cached = self._kounta.get(merchant.id)
        if cached is None or cached[0] != account.base_url:
            settings = self.runtime.settings
            auth = KountaAuth(
                StoredTokens(self.runtime, self.leases, merchant.id),
                self.runtime.http.upstream(Pos.KOUNTA.label, account.base_url, BearerToken("")),
                settings.kounta_client_id,
                settings.kounta_client_secret.get_secret_value(),
            )
            cached = (account.base_url, auth)
            self._kounta[merchant.id] = cached
        upstream = self.runtime.http.upstream(Pos.KOUNTA.label, account.base_url, cached[1])
        return KountaClient(upstream, account.account_id or "")

    def forget(self, merchant_id: str) -> None:
        """Drop cached clients after a merchant's credentials change."""
        self._xseries.pop(merchant_id, None)
        self._kounta.pop(merchant_id, None)

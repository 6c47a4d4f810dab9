"""POS clients for a merchant, built from its stored (encrypted) credentials.

Decrypted tokens stay in this process's memory only, for a short while, so that a request
does not pay a database read and a decryption per POS call; they never enter the shared
cache. Both POS's OAuth tokens are refreshed by one mechanism (``gateway/pos/oauth.py``);
when a POS will not take them any more, the connection becomes RECONNECT_NEEDED here.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import structlog

from gateway.cache import Memo
from gateway.domain.merchant import ConnectionStatus, Merchant, Pos
from gateway.pos.http import BearerToken, Upstream
from gateway.pos.kounta import oauth as kounta_oauth
from gateway.pos.kounta.client import KountaClient
from gateway.pos.oauth import Refresh, RefreshingAuth, TokenSet
from gateway.pos.xseries import XSeriesClient
from gateway.pos.xseries import oauth as xseries_oauth
from gateway.runtime import Runtime
from gateway.store import merchants as store
from gateway.store.leases import Leases
from gateway.store.merchants import Tokens

log = structlog.get_logger("gateway.connections")


class StoredTokens:
    """A merchant's tokens for one POS in the store (encrypted), refreshed under a lease."""

    def __init__(
        self, runtime: Runtime, leases: Leases, memo: Memo, merchant_id: str, pos: Pos
    ) -> None:
        self.runtime = runtime
        self.leases = leases
        self.memo = memo
        self.merchant_id = merchant_id
        self.pos = pos

    async def load(self) -> TokenSet:
        async with self.runtime.db.read() as session:
            tokens = await store.load_tokens(
                session, self.runtime.cipher, self.merchant_id, self.pos
            )
        return TokenSet(tokens.access_token, tokens.refresh_token, tokens.expires_at)

    async def save(self, tokens: TokenSet) -> None:
        stored = Tokens(tokens.access_token, tokens.refresh_token, tokens.expires_at)
        async with self.runtime.db.transaction() as session:
            await store.save_tokens(
                session, self.runtime.cipher, self.merchant_id, self.pos, stored
            )

    async def revoked(self, reason: str) -> None:
        log.warning("connection must be renewed", merchant=self.merchant_id, pos=self.pos.value,
                    reason=reason)  # fmt: skip
        async with self.runtime.db.transaction() as session:
            await store.set_status(
                session, self.merchant_id, self.pos, ConnectionStatus.RECONNECT_NEEDED, reason
            )
        self.memo.clear()  # this process says so at once (others within the memo's seconds)

    def refresh_lock(self) -> AbstractAsyncContextManager[object]:
        return self.leases.hold(f"{self.pos.value.lower()}-refresh:{self.merchant_id}")


class PosClients:
    """X-Series clients spend their store's rate budget (``gateway/pos/budget.py``); Kounta
    publishes no limit, so its clients only react to a 429 (docs/pos-contracts.md)."""

    def __init__(self, runtime: Runtime, leases: Leases, memo: Memo) -> None:
        self.runtime = runtime
        self.leases = leases
        self.memo = memo
        # One auth per merchant and POS for the life of the process: it owns the refresh
        # lock; it is keyed by the account's address, so a reconnection gets a new one.
        self._auths: dict[tuple[str, Pos], tuple[str, RefreshingAuth]] = {}

    async def xseries(self, merchant: Merchant) -> XSeriesClient:
        account = merchant.account(Pos.XSERIES)
        auth = await self._auth(merchant, Pos.XSERIES, account.base_url)
        return XSeriesClient.connect(self.runtime.http, account.base_url, auth)

    def kounta(self, merchant: Merchant) -> KountaClient:
        account = merchant.account(Pos.KOUNTA)
        auth = self._kounta_auth(merchant, account.base_url)
        upstream = self.runtime.http.upstream(Pos.KOUNTA.label, account.base_url, auth)
        return KountaClient(upstream, account.account_id or "")

    def token_endpoint(self, pos: Pos, base_url: str) -> Upstream:
        return self.runtime.http.upstream(pos.label, base_url, BearerToken(""))

    async def _auth(self, merchant: Merchant, pos: Pos, base_url: str) -> RefreshingAuth:
        cached = self._auths.get((merchant.id, pos))
        if cached is not None and cached[0] == base_url:
            return cached[1]
        async with self.runtime.db.read() as session:
            tokens = await store.load_tokens(session, self.runtime.cipher, merchant.id, pos)
        # A personal token (no refresh token) is used as it is until the POS refuses it.
        refresh = self._xseries_refresh(base_url) if tokens.refresh_token else None
        auth = RefreshingAuth(StoredTokens(self.runtime, self.leases, self.memo, merchant.id, pos),
                              refresh, pos.label)  # fmt: skip
        self._auths[(merchant.id, pos)] = (base_url, auth)
        return auth

    def _kounta_auth(self, merchant: Merchant, base_url: str) -> RefreshingAuth:
        cached = self._auths.get((merchant.id, Pos.KOUNTA))
        if cached is not None and cached[0] == base_url:
            return cached[1]
        settings = self.runtime.settings
        endpoint = self.token_endpoint(Pos.KOUNTA, base_url)

        async def refresh(refresh_token: str) -> TokenSet:
            return await kounta_oauth.refresh(
                endpoint,
                refresh_token,
                client_id=settings.kounta_client_id,
                client_secret=settings.kounta_client_secret.get_secret_value(),
            )

        vault = StoredTokens(self.runtime, self.leases, self.memo, merchant.id, Pos.KOUNTA)
        auth = RefreshingAuth(vault, refresh, Pos.KOUNTA.label)
        self._auths[(merchant.id, Pos.KOUNTA)] = (base_url, auth)
        return auth

    def _xseries_refresh(self, base_url: str) -> Refresh:
        settings = self.runtime.settings
        endpoint = self.token_endpoint(Pos.XSERIES, base_url)

        async def refresh(refresh_token: str) -> TokenSet:
            return await xseries_oauth.refresh(
                endpoint,
                refresh_token,
                client_id=settings.xseries_client_id,
                client_secret=settings.xseries_client_secret.get_secret_value(),
            )

        return refresh

    def forget(self, merchant_id: str) -> None:
        """Drop cached clients after a merchant's credentials change."""
        for key in [key for key in self._auths if key[0] == merchant_id]:
            del self._auths[key]

"""Kounta OAuth2 for one merchant: fresh access tokens, refreshed before they expire and
again when Kounta says 401, one refresh at a time.

Kounta's refresh tokens are single-use: two refreshes racing with the same refresh token
would leave one of them holding a dead pair. So a refresh happens under the merchant's
lock (in this process and, through the store, across processes), re-reads the stored pair
first (another process may have refreshed already), and persists the new pair before
anyone uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from gateway.pos.errors import UpstreamAuthError, UpstreamRejected
from gateway.pos.fields import parse
from gateway.pos.http import Upstream
from gateway.pos.kounta.models import TokenPair

POS = "Kounta"
REFRESH_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None

    def __repr__(self) -> str:
        return f"TokenSet(access=***, expires_at={self.expires_at})"

    def expiring(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at - now < REFRESH_MARGIN


class TokenVault(Protocol):
    """Where a merchant's pair lives (encrypted), and the lock that serializes refreshes."""

    async def load(self) -> TokenSet: ...

    async def save(self, tokens: TokenSet) -> None: ...

    def refresh_lock(self) -> AbstractAsyncContextManager[object]: ...


class KountaAuth:
    """The ``Auth`` of a merchant's Kounta upstream. One instance per merchant per process."""

    def __init__(
        self, vault: TokenVault, token_endpoint: Upstream, client_id: str, client_secret: str
    ) -> None:
        self.vault = vault
        self.token_endpoint = token_endpoint
        self.client_id = client_id
        self.client_secret = client_secret
        self.refreshes = 0  # how many times this process refreshed (metrics, tests)
        self._tokens: TokenSet | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return "KountaAuth(***)"

    async def headers(self) -> dict[str, str]:
        tokens = self._tokens or await self.vault.load()
        if tokens.expiring(datetime.now(UTC)):
            tokens = await self._refresh(stale=tokens.access_token)
        self._tokens = tokens
        return {"Authorization": f"Bearer {tokens.access_token}"}

    async def renew(self, rejected: Mapping[str, str]) -> bool:
        stale = rejected.get("Authorization", "").removeprefix("Bearer ")
        await self._refresh(stale=stale)
        return True

    async def _refresh(self, *, stale: str) -> TokenSet:
        async with self._lock, self.vault.refresh_lock():
            current = await self.vault.load()
            if current.access_token != stale and not current.expiring(datetime.now(UTC)):
                self._tokens = current  # someone refreshed while we waited
                return current
            if not current.refresh_token:
                raise UpstreamAuthError(
                    "Kounta's access token expired and there is no refresh token: "
                    "reconnect the merchant's Kounta account",
                    pos=POS,
                )
            fresh = await self._exchange(current.refresh_token)
            await self.vault.save(fresh)
            self.refreshes += 1
            self._tokens = fresh
            return fresh

    async def _exchange(self, refresh_token: str) -> TokenSet:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        try:
            response = await self.token_endpoint.request(
                "POST", "/v1/token", form=form, authenticated=False
            )
        except UpstreamRejected:
            raise UpstreamAuthError(
                "Kounta refused the stored refresh token: reconnect the merchant's Kounta account",
                pos=POS,
            ) from None
        pair = parse(TokenPair, response.data, POS)
        expires_at = None
        if pair.expires_in:
            expires_at = datetime.now(UTC) + timedelta(seconds=pair.expires_in)
        return TokenSet(pair.access_token, pair.refresh_token or refresh_token, expires_at)

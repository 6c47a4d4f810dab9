"""OAuth2 tokens for one merchant's POS account, whichever POS: fresh access tokens,
refreshed before they expire and again when the POS says 401, one refresh at a time.

Both POS rotate refresh tokens: a refresh answers a new one and revokes the old (X-Series
since 2025-03; Kounta's are single-use). Two refreshes racing with one refresh token would
leave one of them with a dead pair, so a refresh happens under the merchant's lease (in
this process and, through the store, across processes), reads the stored pair again first
(another process may have refreshed already), and persists the new pair before anyone uses
it. A refresh whose answer was lost is tried once more with the same refresh token (the POS
may not have rotated it); refused, the connection must be renewed by the merchant: the vault
is told (RECONNECT_NEEDED) and callers get POS_DISCONNECTED.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn, Protocol

from gateway.domain.errors import PosDisconnected
from gateway.pos.errors import (
    UpstreamAuthError,
    UpstreamForbidden,
    UpstreamOutcomeUnknown,
    UpstreamRejected,
)

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
    """Where a merchant's tokens live (encrypted), the lease that serializes refreshes, and
    who to tell when the POS will not take them any more."""

    async def load(self) -> TokenSet: ...

    async def save(self, tokens: TokenSet) -> None: ...

    async def revoked(self, reason: str) -> None: ...

    def refresh_lock(self) -> AbstractAsyncContextManager[object]: ...


Refresh = Callable[[str], Awaitable[TokenSet]]
"""A refresh token in, the new set out (raising the POS's refusal as it comes)."""

REFUSALS = (UpstreamRejected, UpstreamAuthError, UpstreamForbidden)


class RefreshingAuth:
    """The ``Auth`` of a merchant's upstream. One instance per merchant per process.
    ``refresh`` None: a token that cannot be refreshed (a personal token); a 401 then means
    the POS no longer takes it."""

    def __init__(self, vault: TokenVault, refresh: Refresh | None, pos: str) -> None:
        self.vault = vault
        self.refresh = refresh
        self.pos = pos
        self.refreshes = 0  # how many times this process refreshed (metrics, tests)
        self._tokens: TokenSet | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RefreshingAuth({self.pos}, ***)"

    async def headers(self) -> dict[str, str]:
        tokens = self._tokens or await self.vault.load()
        if self.refresh is not None and tokens.expiring(datetime.now(UTC)):
            tokens = await self._refresh(stale=tokens.access_token)
        self._tokens = tokens
        return {"Authorization": f"Bearer {tokens.access_token}"}

    async def renew(self, rejected: Mapping[str, str]) -> bool:
        stale = rejected.get("Authorization", "").removeprefix("Bearer ")
        if self.refresh is None:
            await self._revoked(f"{self.pos} no longer accepts the stored token")
        await self._refresh(stale=stale)
        return True

    def forget(self) -> None:
        """Read the tokens from the vault again next time (they were replaced there)."""
        self._tokens = None

    async def _refresh(self, *, stale: str) -> TokenSet:
        assert self.refresh is not None
        async with self._lock, self.vault.refresh_lock():
            current = await self.vault.load()
            if current.access_token != stale and not current.expiring(datetime.now(UTC)):
                self._tokens = current  # someone refreshed while we waited
                return current
            if not current.refresh_token:
                await self._revoked(f"{self.pos}'s access token expired and cannot be refreshed")
            try:
                fresh = await self._exchange(current.refresh_token or "")
            except REFUSALS as refused:
                await self._revoked(f"{self.pos} refused to refresh the tokens ({refused.status})")
            await self.vault.save(fresh)  # before anyone uses it: the old one is dead now
            self.refreshes += 1
            self._tokens = fresh
            return fresh

    async def _exchange(self, refresh_token: str) -> TokenSet:
        assert self.refresh is not None
        try:
            return await self.refresh(refresh_token)
        except UpstreamOutcomeUnknown:
            # The answer was lost: the POS may not have rotated it. Once more, the same token.
            return await self.refresh(refresh_token)

    async def _revoked(self, reason: str) -> NoReturn:
        await self.vault.revoked(reason)
        self._tokens = None
        raise PosDisconnected(
            f"this merchant's {self.pos} must be connected again ({reason}): use the connect page"
        )

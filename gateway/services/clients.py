"""POS clients for a merchant, built from its stored (encrypted) credentials.

Decrypted tokens stay in this process's memory only, for a short while, so that a request
does not pay a database read and a decryption per POS call; they never enter the shared
cache.
"""

from __future__ import annotations

import time

from gateway.domain.merchant import Merchant, Pos
from gateway.pos.http import BearerToken
from gateway.pos.xseries import XSeriesClient
from gateway.runtime import Runtime
from gateway.store.merchants import load_tokens

CLIENT_TTL_S = 60.0


class PosClients:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._xseries: dict[str, tuple[float, str, XSeriesClient]] = {}

    async def xseries(self, merchant: Merchant) -> XSeriesClient:
        account = merchant.account(Pos.XSERIES)
        cached = self._xseries.get(merchant.id)
        now = time.monotonic()
        if cached and cached[0] > now and cached[1] == account.base_url:
            return cached[2]
        async with self.runtime.db.transaction() as session:
            tokens = await load_tokens(session, self.runtime.cipher, merchant.id, Pos.XSERIES)
        client = XSeriesClient(
            self.runtime.http.upstream(
                Pos.XSERIES.label, account.base_url, BearerToken(tokens.access_token)
            )
        )
        self._xseries[merchant.id] = (now + CLIENT_TTL_S, account.base_url, client)
        return client

    def forget(self, merchant_id: str) -> None:
        """Drop cached clients after a merchant's credentials change."""
        self._xseries.pop(merchant_id, None)

"""The process's long-lived parts, built once from settings and closed together.

The app's lifespan, the CLI and the tests all build one of these; nothing else creates
engines, HTTP pools or caches.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property

import httpx

from gateway import faults
from gateway.cache import Cache
from gateway.pos.http import HttpLayer, HttpPolicy
from gateway.settings import Settings
from gateway.store.crypto import TokenCipher
from gateway.store.db import Database


def http_policy(settings: Settings) -> HttpPolicy:
    return HttpPolicy(
        connect_timeout_s=settings.upstream_connect_timeout_s,
        read_timeout_s=settings.upstream_read_timeout_s,
        max_retries=settings.upstream_max_retries,
        backoff_base_s=settings.upstream_backoff_base_s,
        backoff_max_s=settings.upstream_backoff_max_s,
        max_retry_after_s=settings.upstream_max_retry_after_s,
        breaker_failures=settings.upstream_breaker_failures,
        breaker_reset_s=settings.upstream_breaker_reset_s,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        faults.arm(settings.crash_at)
        # The time the settle window is measured in (tests move it instead of waiting).
        self.clock = clock
        self.db = Database(settings.database_url)
        self.cache = Cache(settings.cache_url)
        # The POS rate budgets live in the cache, so every process spends from one count.
        self.http = HttpLayer(
            policy=http_policy(settings),
            max_connections=settings.upstream_max_connections,
            transport=transport,
            cache=self.cache,
            budget_reserve=settings.upstream_budget_reserve,
        )

    @cached_property
    def cipher(self) -> TokenCipher:
        """Needs GATEWAY_SECRET_KEY, so only commands that touch tokens require it."""
        settings = self.settings
        return TokenCipher(settings.secret_key_bytes, settings.previous_secret_keys_bytes)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.cache.aclose()
        await self.db.dispose()

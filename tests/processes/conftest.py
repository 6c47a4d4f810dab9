"""Gateways as real processes on the test's store: to crash them, or to run two at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.store.models import IdempotencyRow, LockRow, RedemptionRow
from tests.conftest import TEST_POLICY

LEASE_S = 1.0


@pytest.fixture
def process_env(settings: Settings) -> dict[str, str]:
    """What a ``gateway`` process needs to share the test's store, key and sandboxes."""
    assert settings.secret_key is not None and settings.kounta_addon_token is not None
    return {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_CACHE_URL": settings.cache_url,
        "GATEWAY_SECRET_KEY": settings.secret_key.get_secret_value(),
        "GATEWAY_KOUNTA_ADDON_TOKEN": settings.kounta_addon_token.get_secret_value(),
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_LOG_JSON": "false",
        "GATEWAY_UPSTREAM_SETTLE_S": "0",
        "GATEWAY_LEASE_S": str(LEASE_S),
        "GATEWAY_WORKER_IN_PROCESS": "false",
        "GATEWAY_UPSTREAM_READ_TIMEOUT_S": str(TEST_POLICY.read_timeout_s),
        "GATEWAY_UPSTREAM_MAX_RETRIES": str(TEST_POLICY.max_retries),
        "GATEWAY_UPSTREAM_BACKOFF_BASE_S": str(TEST_POLICY.backoff_base_s),
        "GATEWAY_UPSTREAM_BACKOFF_MAX_S": str(TEST_POLICY.backoff_max_s),
        "GATEWAY_UPSTREAM_BREAKER_FAILURES": str(TEST_POLICY.breaker_failures),
    }


async def leases_run_out(runtime: Runtime) -> bool:
    """Whether every lease a dead process held has run out, and every operation it left has
    been still for longer than a lease: when the worker may take over."""
    now = datetime.now(UTC)
    still = timedelta(seconds=LEASE_S)
    async with runtime.db.read() as session:
        lease_ends = await session.scalar(select(func.max(LockRow.expires_at)))
        touched = [
            await session.scalar(select(func.max(IdempotencyRow.updated_at))),
            await session.scalar(select(func.max(RedemptionRow.updated_at))),
        ]
    ends = [lease_ends] if lease_ends else []
    ends += [moment + still for moment in touched if moment]
    return all(_utc(moment) < now for moment in ends)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

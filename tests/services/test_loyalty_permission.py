"""A store whose X-Series token may not write loyalty (no scope ``loyalty.transaction.write``)
while its points live at X-Series: every credit and debit is a loyalty adjustment, refused
for good. The caller is told at once what to fix; nothing is taken, and neither the caller's
retry nor the worker asks X-Series again."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from gateway.domain.merchant import Pos
from gateway.domain.rewards import Reward, RewardKind
from gateway.runtime import Runtime
from gateway.services import rewards
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from gateway.store.models import IdempotencyRow, RedemptionRow
from tests.api.test_kounta_adapters import JOHN_ORDER, john, kounta_order, xseries_balance
from tests.api.test_kounta_graphql import redeem
from tests.demo_ids import JOHN_SMITH, JOHNNY, JOHNNY_SALE
from tests.gateways import Gateway, KountaPos, make_gateway, reward_url
from tests.support import SandboxHandle

ADJUST = "POST /api/2026-07/loyalty/adjustments/bulk"
# Everything X-Series documents, but the loyalty adjustments' permission.
NO_LOYALTY_WRITE = (
    "retailer:read customers:read customers:write products:read payment_types:read "
    "sales:read sales:write webhooks"
)
TOLD = (
    "the X-Series token cannot write loyalty (scope loyalty.transaction.write): "
    "reconnect the store with that permission"
)


def adjustments(xseries: SandboxHandle) -> dict[str, int]:
    """The answers the loyalty adjustments gave since onboarding, by status."""
    responses: dict[str, int] = xseries.stats()["responses"]
    return {key.rsplit(" ", 1)[1]: n for key, n in responses.items() if key.startswith(ADJUST)}


async def statuses(runtime: Runtime) -> list[str]:
    async with runtime.db.read() as session:
        return [row.status for row in await session.scalars(select(RedemptionRow))]


async def worker_pass_long_after(runtime: Runtime) -> None:
    """The worker, as if a lease's length had passed since anything moved: whatever it
    would retry, it retries now."""
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with runtime.db.transaction() as session:
        await session.execute(update(RedemptionRow).values(updated_at=long_ago))
        await session.execute(update(IdempotencyRow).values(updated_at=long_ago))
    report = await recover_once(Services(runtime))
    assert report.still_failing == [] and report.finished == []


async def test_a_kounta_redemption_fails_at_once_clearly_and_is_never_retried(
    both: Gateway, runtime: Runtime, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    """Done when: an X-Series token without loyalty.transaction.write makes a Kounta
    redemption under XSERIES fail in under 2 s with a clear error and no retry loop."""
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    xseries.scopes(NO_LOYALTY_WRITE)

    started = time.monotonic()
    answer = await pos.redeem(url, JOHN_ORDER)
    assert time.monotonic() - started < 2
    assert answer == {"success": False, "error": TOLD}
    assert adjustments(xseries) == {"403": 1}
    assert await statuses(runtime) == ["FAILED"]  # nothing taken: nothing to give back

    assert await pos.redeem(url, JOHN_ORDER) == answer  # Kounta's retry: the first answer
    await worker_pass_long_after(runtime)
    # Tried once: not again by the HTTP layer, the caller's retry or the worker.
    assert adjustments(xseries) == {"403": 1}
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []


@pytest.fixture
async def shop(runtime: Runtime, xseries: SandboxHandle) -> AsyncIterator[Gateway]:
    gw = await make_gateway(runtime, xseries, "Scope Shop")
    # Worth more than its points: the balance is topped up by an adjustment before paying.
    reward = Reward("big-treat", "Big treat", RewardKind.PAYMENT, Decimal(10), Decimal(15))
    await rewards.add_reward(Services(runtime).scope(gw.merchant), reward)
    yield gw
    await gw.client.aclose()


async def test_an_xseries_redemption_that_needs_an_adjustment_is_unauthorized_once(
    shop: Gateway, runtime: Runtime, xseries: SandboxHandle
) -> None:
    xseries.scopes(NO_LOYALTY_WRITE)
    first = await redeem(shop, JOHNNY, "big-treat", JOHNNY_SALE, Pos.XSERIES, key="r1")
    assert first == {"__typename": "UnauthorizedError", "code": "UNAUTHORIZED", "message": TOLD}
    assert await statuses(runtime) == ["FAILED"]
    again = await redeem(shop, JOHNNY, "big-treat", JOHNNY_SALE, Pos.XSERIES, key="r1")
    assert again == first
    await worker_pass_long_after(runtime)
    assert adjustments(xseries) == {"403": 1}
    assert xseries.count("POST /api/register_sales") == 0  # no payment without the top-up
    sale = xseries.get(f"/api/register_sales/{JOHNNY_SALE}")["register_sales"][0]
    assert [Decimal(str(p["amount"])) for p in sale["register_sale_payments"]] == [5]

"""The worker finishes or undoes every state that is not final: compensations that failed
halfway, earnings whose process died, redemptions whose caller went away."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from gateway.domain.merchant import Pos
from gateway.domain.rewards import Reward, RewardKind
from gateway.runtime import Runtime
from gateway.services import earning, rewards
from gateway.services.context import Services
from gateway.services.idempotency import fingerprint
from gateway.services.recovery import recover_once
from gateway.settings import Settings
from gateway.store.models import IdempotencyRow, RedemptionRow
from tests.api.test_graphql_sales import balance
from tests.api.test_kounta_adapters import JOHN_ORDER, xseries_balance
from tests.api.test_kounta_graphql import redeem
from tests.conftest import fresh_runtime
from tests.demo_ids import JOHN_SMITH, JOHNNY, JOHNNY_SALE
from tests.gateways import Gateway, make_kounta_gateway
from tests.support import ManualClock, SandboxHandle

SETTLE_S = 60
ADJUSTMENTS = "/api/2026-07/loyalty/adjustments/bulk"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def windowed(settings: Settings, clock: ManualClock) -> AsyncIterator[Runtime]:
    runtime = await fresh_runtime(
        settings.model_copy(update={"upstream_settle_s": SETTLE_S}), clock
    )
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def shop(
    windowed: Runtime, kounta: SandboxHandle, xseries: SandboxHandle
) -> AsyncIterator[Gateway]:
    gw = await make_kounta_gateway(windowed, kounta, "Worker Shop", xseries=xseries)
    # Worth more than its points: the balance is topped up by 5 before the payment.
    reward = Reward("big-treat", "Big treat", RewardKind.PAYMENT, Decimal(10), Decimal(15))
    await rewards.add_reward(Services(windowed).scope(gw.merchant), reward)
    yield gw
    await gw.client.aclose()


async def statuses(runtime: Runtime) -> list[str]:
    async with runtime.db.read() as session:
        return [row.status for row in await session.scalars(select(RedemptionRow))]


async def test_a_top_up_never_stays_spendable_when_the_payment_fails(
    shop: Gateway, xseries: SandboxHandle, windowed: Runtime, clock: ManualClock
) -> None:
    """Finding 3: 10 points buy 15.00; the balance is topped up by 5 for the payment, the
    payment does not happen, and giving the top-up back fails for a while."""
    xseries.faults(status=503, fail_next=1, method="POST", path="/api/register_sales")
    first = await redeem(shop, JOHNNY, "big-treat", JOHNNY_SALE, Pos.XSERIES, key="r1")
    assert first["code"] == "OUTCOME_PENDING"
    assert balance(xseries, JOHNNY) == Decimal("17")  # 12 + the top-up, payment unknown

    xseries.faults(status=503, method="POST", path=ADJUSTMENTS)  # the undo cannot go through
    clock.advance(SETTLE_S + 1)
    second = await redeem(shop, JOHNNY, "big-treat", JOHNNY_SALE, Pos.XSERIES, key="r1")
    assert second["code"] == "UPSTREAM_UNAVAILABLE"
    assert await statuses(windowed) == ["COMPENSATING"]  # recorded, not only logged
    assert balance(xseries, JOHNNY) == Decimal("17")

    services = Services(windowed)
    assert (await recover_once(services)).finished == []  # its lease has not run out yet
    await _age_redemptions(windowed)
    assert (await recover_once(services)).still_failing  # still down: it keeps trying
    xseries.clear_faults()
    await _age_redemptions(windowed)
    report = await recover_once(services)
    assert len(report.finished) == 1
    assert await statuses(windowed) == ["FAILED"]
    assert balance(xseries, JOHNNY) == Decimal("12")  # the top-up is gone, nothing paid
    sale = xseries.get(f"/api/register_sales/{JOHNNY_SALE}")["register_sales"][0]
    assert [Decimal(str(p["amount"])) for p in sale["register_sale_payments"]] == [5]
    again = await redeem(shop, JOHNNY, "big-treat", JOHNNY_SALE, Pos.XSERIES, key="r1")
    assert again["code"] == "SALE_NOT_OPEN" and "given back" in again["message"]
    assert (await recover_once(services)).finished == []


async def _age_redemptions(runtime: Runtime) -> None:
    """As if a lease's length had passed since the redemption last moved."""
    async with runtime.db.transaction() as session:
        await session.execute(
            update(RedemptionRow).values(updated_at=datetime.now(UTC) - timedelta(hours=1))
        )


async def test_an_earning_whose_process_died_is_credited_by_the_worker(
    shop: Gateway, kounta: SandboxHandle, xseries: SandboxHandle, windowed: Runtime
) -> None:
    """Finding 4: the order completed, its webhook never came again, and the process that
    was crediting it died with the earning IN_PROGRESS."""
    response = kounta.post(f"/_sandbox/orders/{JOHN_ORDER}/complete", {"deliveries": 0})
    assert response.status_code == 200
    before = xseries_balance(xseries, JOHN_SMITH)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with windowed.db.transaction() as session:
        session.add(
            IdempotencyRow(
                merchant_id=shop.merchant.id,
                key=f"{earning.KEY_SPACE}:{JOHN_ORDER}",
                operation=earning.OPERATION,
                fingerprint=fingerprint(earning.OPERATION, {"order": JOHN_ORDER}),
                status="IN_PROGRESS",
                created_at=long_ago,
                updated_at=long_ago,
            )
        )
    services = Services(windowed)
    report = await recover_once(services)
    assert len(report.finished) == 1
    earned = xseries_balance(xseries, JOHN_SMITH) - before
    assert earned > 0
    async with windowed.db.read() as session:
        record = await session.get(IdempotencyRow, (shop.merchant.id, f"earning:{JOHN_ORDER}"))
        assert record is not None and record.status == "COMPLETED"
        assert json.loads(record.result_json or "{}")["outcome"] == "credited"
    assert (await recover_once(services)).finished == []
    assert xseries_balance(xseries, JOHN_SMITH) - before == earned  # once

"""What ``gateway worker`` does: finish work that an outage or a crash left half-done.

- Redemptions still PENDING or DEBITED a while after their last step (their attempt
  died or gave up on a POS outage) are run again through the same service with the same
  key, so they resume from where they stopped: read the order back, apply, complete, or
  give the points back.
- Completed Kounta orders whose earning failed transiently are earned again.

Everything it calls is idempotent; two workers at once, or a worker racing a caller's
retry, still apply each thing once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select

from gateway.domain.errors import GatewayError
from gateway.services.context import Scope, Services
from gateway.services.earning import KEY_SPACE as EARNING_KEYS
from gateway.services.earning import OPERATION as EARN
from gateway.services.earning import earn_from_order
from gateway.services.redemption import RedemptionRequest, redeem, settle_abandoned
from gateway.store import redemptions
from gateway.store.idempotency import Status as KeyStatus
from gateway.store.merchants import get_merchant
from gateway.store.models import IdempotencyRow, RedemptionRow

log = structlog.get_logger("gateway.worker")

GRACE = timedelta(seconds=30)


@dataclass
class Recovery:
    finished: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)


async def recover_once(services: Services, *, grace: timedelta = GRACE) -> Recovery:
    report = Recovery()
    before = datetime.now(UTC) - grace
    async with services.runtime.db.read() as session:
        stuck = await redemptions.unfinished(session, before)
        retry_earning = list(
            await session.scalars(
                select(IdempotencyRow).where(
                    IdempotencyRow.operation == EARN,
                    IdempotencyRow.status == KeyStatus.RETRYABLE.value,
                    IdempotencyRow.updated_at < before,
                )
            )
        )
    for row in stuck:
        await _recover_redemption(services, row, report)
    for record in retry_earning:
        order_id = record.key.removeprefix(f"{EARNING_KEYS}:")

        async def earn(scope: Scope, order_id: str = order_id) -> None:
            await earn_from_order(scope, order_id)

        await _attempt(services, record.merchant_id, f"order {order_id}", earn, report)
    return report


async def _recover_redemption(services: Services, row: RedemptionRow, report: Recovery) -> None:
    """Resume an interrupted redemption; settle one whose run already ended; leave one
    that another attempt is working on. A row still unfinished goes to the back."""
    label = f"redemption {row.id}"
    record = await services.idempotency.store.peek(row.merchant_id, row.key)
    now = datetime.now(UTC)
    live = (
        record is not None
        and record.status == KeyStatus.IN_PROGRESS.value
        and (record.lease_expires_at is not None and record.lease_expires_at > now)
    )
    if live:
        return
    ended = record is not None and record.status == KeyStatus.COMPLETED.value
    request = RedemptionRequest.from_json(json.loads(row.request_json))

    async def finish(scope: Scope) -> None:
        if ended:
            await settle_abandoned(scope, row)
        else:
            await redeem(scope, request)

    await _attempt(services, row.merchant_id, label, finish, report)
    async with services.runtime.db.transaction() as session:
        current = await session.get(RedemptionRow, row.id)
        if current is not None and current.status in redemptions.UNFINISHED:
            await redemptions.touch(session, row.id)


async def _attempt(
    services: Services,
    merchant_id: str,
    label: str,
    work: Callable[[Scope], Awaitable[None]],
    report: Recovery,
) -> None:
    async with services.runtime.db.read() as session:
        merchant = await get_merchant(session, merchant_id)
    if merchant is None:
        return
    try:
        await work(services.scope(merchant))
    except GatewayError as failure:
        if failure.transient:
            report.still_failing.append(label)
            log.warning("still failing", work=label, reason=failure.message)
            return
        log.info("settled", work=label, outcome=failure.code.value)  # e.g. points given back
    else:
        log.info("finished", work=label)
    report.finished.append(label)

"""Reconciliation: the worker asks each connected POS what changed since its checkpoint and
treats each change as if its webhook had come (docs/architecture.md, "Reconciliation").

Webhooks get lost: X-Series says delivery is not guaranteed and advises polling; Kounta says
nothing. So every pass lists what changed since the merchant's checkpoint for that POS (never
further back than the look-back setting) and follows each order or sale through the same use
case and the same idempotency keys as its webhook (``kounta_orders``, ``xseries_sales``): a
webhook and the poll never both count. The checkpoint moves to the pass's start only when
everything it found was applied; the next pass reads a little before it (``SKEW``), since the
POS's clock is not ours, and what it sees twice changes nothing. It runs as background work,
behind the calls a cashier waits on (``gateway/priority.py``), one pass per merchant and POS
at a time (a lease).

Kounta orders are listed ``updated_gte`` the checkpoint (inferred: only ``created_`` filters
are documented, and an old order refunded today can be found by no other); each is also
checked against its ``updated_at``, so a list that ignored the filter is still read right,
only slower. X-Series 0.9 lists sales ``since`` a time they changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from gateway import priority
from gateway.domain.errors import GatewayError, NotFound, ValidationError
from gateway.domain.merchant import Merchant, PointsSource, Pos
from gateway.pos.xseries.models import timestamp
from gateway.services.context import Scope, Services
from gateway.services.kounta_orders import follow_order
from gateway.services.xseries_sales import follow_sale
from gateway.store import checkpoints
from gateway.store.leases import LeaseBusy
from gateway.store.merchants import list_merchants

log = structlog.get_logger("gateway.reconcile")

# How far before the checkpoint each pass starts reading: the POS's clock may lag ours.
SKEW = timedelta(minutes=2)


@dataclass
class Pass:
    merchant: str
    pos: Pos
    since: datetime
    looked_at: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: bool = False  # another worker was on it


async def reconcile_all(
    services: Services, progress: Callable[[str], None] | None = None
) -> list[Pass]:
    """One pass over every connected merchant and POS; ``progress`` is told each in turn
    (``gateway worker --once`` shows it: a pass over many merchants takes a while)."""
    with priority.background():
        async with services.runtime.db.read() as session:
            merchants = await list_merchants(session)
        passes = []
        for number, merchant in enumerate(merchants, 1):
            for pos in _followed(merchant):
                if progress is not None:
                    progress(f"reconciling {merchant.name} {pos.label} "
                             f"(merchant {number}/{len(merchants)})")  # fmt: skip
                try:
                    passes.append(await reconcile(services.scope(merchant), pos))
                except GatewayError as failure:
                    log.warning("reconciliation failed", merchant=merchant.name, pos=pos.value,
                                reason=failure.message)  # fmt: skip
                    passes.append(Pass(merchant.name, pos, datetime.now(UTC), 0,
                                       [failure.message]))  # fmt: skip
        return passes


def _followed(merchant: Merchant) -> list[Pos]:
    """X-Series sales matter to the gateway only where X-Series keeps the balance."""
    systems = [Pos.KOUNTA] if merchant.has(Pos.KOUNTA) else []
    if merchant.has(Pos.XSERIES) and merchant.points_source is PointsSource.XSERIES:
        systems.append(Pos.XSERIES)
    return systems


async def reconcile(scope: Scope, pos: Pos) -> Pass:
    merchant = scope.merchant
    started = datetime.now(UTC)
    floor = started - timedelta(seconds=scope.runtime.settings.reconcile_lookback_s)
    async with scope.runtime.db.read() as session:
        checkpoint = await checkpoints.get(session, merchant.id, pos)
    since = max(checkpoint - SKEW, floor) if checkpoint else floor
    done = Pass(merchant.name, pos, since)
    try:
        async with scope.services.leases.hold(f"reconcile:{merchant.id}:{pos.value}", wait_s=0):
            if pos is Pos.KOUNTA:
                await _kounta(scope, since, done)
            else:
                await _xseries(scope, since, done)
            if not done.failed:
                async with scope.runtime.db.transaction() as session:
                    await checkpoints.advance(session, merchant.id, pos, started)
    except LeaseBusy:
        done.skipped = True
    log.info("reconciled", merchant=merchant.name, pos=pos.value, since=since.isoformat(),
             looked_at=done.looked_at, failed=len(done.failed))  # fmt: skip
    return done


async def _kounta(scope: Scope, since: datetime, done: Pass) -> None:
    client = scope.kounta()
    for which, deleted in (("", False), ("deleted", True)):
        async for order in client.iter_orders(which, updated_since=since):
            if order.updated_at is not None and order.updated_at < since:
                continue
            if order.is_open and not deleted:
                continue
            done.looked_at += 1
            # A live order is read again by its id: money is never decided on a list's
            # word (it might summarise). A deleted one can be read nowhere else.
            known = (order, True) if deleted else None
            await _follow(done, f"order {order.id}",
                          follow_order(scope, order.id, known=known))  # fmt: skip


async def _xseries(scope: Scope, since: datetime, done: Pass) -> None:
    client = await scope.xseries()
    async for sale in client.iter_sales(since=timestamp(since)):
        done.looked_at += 1
        await _follow(done, f"sale {sale.id}", follow_sale(scope, sale.id, sale))


async def _follow(done: Pass, label: str, work: Awaitable[object]) -> None:
    """One change, applied; a failure is noted (the checkpoint stays) and the pass goes on.
    A fault of ours with one change (not one of the error vocabulary) is noted too, and
    logged with its trace: left to raise, it would stop every pass at the same change,
    for every merchant after it, for good."""
    try:
        await work
    except GatewayError as failure:
        # Only what can never apply lets the checkpoint pass it: an order or sale that is
        # gone, or that the rules refuse. Anything else (an outage, a refused token until
        # the store is reconnected) is looked at again from the same checkpoint.
        if not isinstance(failure, NotFound | ValidationError):
            done.failed.append(f"{label}: {failure.message}")
        log.info("not reconciled", merchant=done.merchant, item=label, reason=failure.message)
    except Exception:
        done.failed.append(f"{label}: a fault of the gateway's (logged)")
        log.exception("not reconciled: a fault", merchant=done.merchant, item=label)

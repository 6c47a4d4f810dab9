"""The worker (``gateway worker``, and a loop inside ``gateway serve``): every operation
left in a state that is not final is finished or undone (docs/architecture.md, "Recovery").

What it looks at, each pass:
- writes whose answer was lost (unsettled) once the settle window has passed: the operation
  that sent them reads the POS back and completes, or gives back what it took;
- operations whose attempt died at work (a crash, a kill) once their lease has run out;
- redemptions not finished (points taken, an order not changed, points to give back);
- earnings that gave up on an outage (no caller will retry them);
- take-backs written down but not finished (services/take_back.py);
- and, every ``reconcile_interval_s``, what changed at each POS since its checkpoint
  (services/reconcile.py), for the webhooks that never came.

It resumes each through its own use case, with its own idempotency key and lease, so two
workers at once, or a worker racing a caller's retry, still apply each thing once. It never
starts a POS write that no caller saw happen: a payment or a redemption whose caller went
away before anything was sent is left for the caller's retry, or its points are given back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from gateway import priority
from gateway.domain.errors import GatewayError
from gateway.domain.merchant import ConnectionStatus, Pos
from gateway.metrics import POS_CONNECTIONS, UNSETTLED_OPERATIONS, WORKER_LAG, WORKER_LAST_PASS
from gateway.services import adjust, create_sale, earning, pay_with_loyalty, redeem, take_back
from gateway.services.context import Scope, Services
from gateway.services.idempotency import LeftForRetry
from gateway.services.reconcile import Pass, reconcile_all
from gateway.store import redemptions, take_backs, worker_passes, writes
from gateway.store.idempotency import KeyRecord
from gateway.store.merchants import get_merchant, list_merchants

log = structlog.get_logger("gateway.worker")

Recoverer = Callable[[Scope, KeyRecord], Awaitable[object | None]]
RECOVERERS: dict[str, Recoverer] = {
    earning.OPERATION: earning.recover,
    redeem.OPERATION: redeem.recover,
    pay_with_loyalty.OPERATION: pay_with_loyalty.recover,
    create_sale.OPERATION: create_sale.recover,
    adjust.OPERATION: adjust.recover,
}


class _Passes:
    """When this process's worker started and last completed a pass (for /metrics)."""

    started: float | None = None
    completed: float | None = None

    @classmethod
    def lag(cls) -> float:
        since = cls.completed or cls.started
        return math.nan if since is None else time.time() - since


WORKER_LAG.set_function(_Passes.lag)


@dataclass
class Recovery:
    finished: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    left_for_retry: list[str] = field(default_factory=list)
    reconciled: list[Pass] = field(default_factory=list)


async def recover_once(
    services: Services,
    *,
    reconcile: bool = False,
    interval_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> Recovery:
    """One pass; with ``reconcile``, also one full reconciliation pass after it. The pass is
    written down when it ends (``store/worker_passes.py``, with the loop's ``interval_s``),
    so ``gateway doctor`` can tell a worker that keeps up from one that stopped."""
    # Nobody waits on the worker: callers keep the last of each POS rate window.
    with priority.background():
        if progress is not None:
            progress("recovery pass: unsettled writes, unfinished operations and take-backs")
        report = await _one_pass(services)
        if reconcile:
            report.reconciled = await reconcile_all(services, progress)
    async with services.runtime.db.transaction() as session:
        await worker_passes.record(session, datetime.now(UTC), interval_s=interval_s,
                                   reconciled=reconcile)  # fmt: skip
    _Passes.completed = time.time()
    WORKER_LAST_PASS.set(_Passes.completed)
    return report


async def _one_pass(services: Services) -> Recovery:
    runtime = services.runtime
    settings = runtime.settings
    lease_ago = datetime.now(UTC) - timedelta(seconds=settings.lease_s)
    settle_ago = runtime.clock() - timedelta(seconds=settings.upstream_settle_s)
    # Work left in the store itself: an unsettled write, an unfinished redemption. It is
    # done even if its operation's answer was recorded (a fault of ours): the money first.
    due: dict[tuple[str, str], None] = {}
    async with runtime.db.read() as session:
        unsettled = await writes.unsettled(session, settle_ago)
        unfinished = await redemptions.unfinished(session, lease_ago)
    for write in unsettled:
        due[(write.merchant_id, write.owner)] = None
    for row in unfinished:
        due[(row.merchant_id, row.key)] = None
    left_in_store = set(due)
    store = services.idempotency.store
    died = await store.unfinished(
        in_progress_before=lease_ago,
        retry_operations=(earning.OPERATION,),
        retryable_before=lease_ago,
    )
    for record in died:
        due[(record.merchant_id, record.key)] = None
    UNSETTLED_OPERATIONS.labels(kind="write").set(len(unsettled))
    UNSETTLED_OPERATIONS.labels(kind="redemption").set(len(unfinished))
    UNSETTLED_OPERATIONS.labels(kind="operation").set(len(died))
    report = Recovery()
    await _count_connections(services)
    await _follow_ups(services, report)
    await _take_backs(services, lease_ago, report)
    for merchant_id, key in due:
        current = await store.get(merchant_id, key)
        if current is None or (current.completed and (merchant_id, key) not in left_in_store):
            continue
        await _recover(services, current, report)
    return report


async def _recover(services: Services, record: KeyRecord, report: Recovery) -> None:
    label = f"{record.operation} {record.key}"
    recoverer = RECOVERERS.get(record.operation)
    async with services.runtime.db.read() as session:
        merchant = await get_merchant(session, record.merchant_id)
    if recoverer is None or merchant is None:
        return
    try:
        done = await recoverer(services.scope(merchant), record)
    except LeftForRetry:
        report.left_for_retry.append(label)
        return
    except GatewayError as failure:
        if failure.transient or await _still_unfinished(services, record):
            report.still_failing.append(label)
            log.warning("still failing", work=label, reason=failure.message)
            await _back_of_queue(services, record)
            return
        log.info("settled", work=label, outcome=failure.code.value)  # e.g. points given back
    else:
        if done is None:  # someone else is working on it
            return
        log.info("finished", work=label)
    report.finished.append(label)


async def _count_connections(services: Services) -> None:
    """The connections' states, for /metrics (a RECONNECT_NEEDED waits for the merchant)."""
    async with services.runtime.db.read() as session:
        merchants = await list_merchants(session)
    counts = {(pos, status): 0 for pos in Pos for status in ConnectionStatus}
    for merchant in merchants:
        for pos, account in merchant.accounts.items():
            counts[(pos, account.status)] += 1
    for (pos, status), count in counts.items():
        POS_CONNECTIONS.labels(pos=pos.value, status=status.value).set(count)


async def _follow_ups(services: Services, report: Recovery) -> None:
    """Sales the gateway paid part of with loyalty, still open when last seen: rule 5 is
    kept once the till closes them (services/pay_with_loyalty.py)."""
    async with services.runtime.db.read() as session:
        due = await writes.followed_up(session, pay_with_loyalty.FOLLOW_UP, datetime.now(UTC))
    for write in due:
        async with services.runtime.db.read() as session:
            merchant = await get_merchant(session, write.merchant_id)
        if merchant is None:
            continue
        label = f"rule 5 on {write.target}"
        try:
            await pay_with_loyalty.follow_up(services.scope(merchant), write)
        except GatewayError as failure:
            report.still_failing.append(label)
            log.warning("still failing", work=label, reason=failure.message)


async def _take_backs(services: Services, before: datetime, report: Recovery) -> None:
    """Take-backs whose process died after writing them down: the same movement, once."""
    async with services.runtime.db.read() as session:
        due = await take_backs.unfinished(session, before)
    UNSETTLED_OPERATIONS.labels(kind="take_back").set(len(due))
    for record in due:
        async with services.runtime.db.read() as session:
            merchant = await get_merchant(session, record.merchant_id)
        if merchant is None:
            continue
        label = f"take-back {record.key}"
        try:
            await take_back.resume(services.scope(merchant), record)
        except GatewayError as failure:
            report.still_failing.append(label)
            log.warning("still failing", work=label, reason=failure.message)
        else:
            report.finished.append(label)


async def _still_unfinished(services: Services, record: KeyRecord) -> bool:
    """A redemption left unfinished is not settled, whatever its answer said."""
    async with services.runtime.db.read() as session:
        row = await redemptions.by_key(session, record.merchant_id, record.key)
    return row is not None and not row.finished


async def _back_of_queue(services: Services, record: KeyRecord) -> None:
    """A redemption still failing goes behind the others, so one cannot starve the rest."""
    async with services.runtime.db.transaction() as session:
        row = await redemptions.by_key(session, record.merchant_id, record.key)
        if row is not None and not row.finished:
            await redemptions.touch(session, row.id)


async def run(services: Services, interval_s: float, stop: asyncio.Event) -> None:
    """Passes until ``stop`` is set, reconciling every ``reconcile_interval_s`` (the first
    pass included); a failing pass is logged, never fatal."""
    every = services.runtime.settings.reconcile_interval_s
    _Passes.started = time.time()
    next_reconcile = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            reconcile = loop.time() >= next_reconcile
            if reconcile:
                next_reconcile = loop.time() + every
            report = await recover_once(services, reconcile=reconcile, interval_s=interval_s)
            if report.finished or report.still_failing:
                log.info(
                    "recovery pass",
                    finished=len(report.finished),
                    still_failing=len(report.still_failing),
                )
        except Exception:
            log.exception("recovery pass failed")
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)

"""Settling: POS writes that are not idempotent go out through here, so that a lost answer
is neither repeated nor undone before the POS has been read back (docs/architecture.md,
"Settling").

``send`` records the write (``store/writes.py``) before it leaves, refuses while another
write to the same order or sale is unsettled, and records how it ended when the answer
comes. If the answer is lost (``UpstreamOutcomeUnknown``) or never comes (a crash, the
request's deadline), the write stays PENDING: unsettled. ``settle`` is what every later
attempt, and the worker, does with an unsettled write: nothing until
``GATEWAY_UPSTREAM_SETTLE_S`` has passed since it was sent (``OUTCOME_PENDING``), then read
the POS back and record whether it landed. Real servers finish requests whose client went
away, and the sandboxes do too; a write later than the settle window is the one case this
cannot see (docs/pos-contracts.md).

The caller holds the target's lease around ``send``, so the check for an unsettled write and
the recording of its own are one step; a unique index backs this up in the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from sqlalchemy.exc import IntegrityError

from gateway.domain.errors import OutcomePending
from gateway.domain.merchant import Pos
from gateway.faults import crash_point
from gateway.pos.errors import UpstreamError, UpstreamOutcomeUnknown, UpstreamShapeError
from gateway.services.context import Scope
from gateway.store import writes as store
from gateway.store.leases import Lease
from gateway.store.writes import WriteRecord, WriteStatus

T = TypeVar("T")
log = structlog.get_logger("gateway.writes")

ReadBack = Callable[[Scope, dict[str, Any]], Awaitable[dict[str, Any] | None]]
_READ_BACKS: dict[str, ReadBack] = {}


def read_back(kind: str) -> Callable[[ReadBack], ReadBack]:
    """Register how a write of ``kind`` is recognised on the POS: given its intent, what was
    found of it (kept as its outcome), or None. The use case that sends it declares this."""

    def register(function: ReadBack) -> ReadBack:
        _READ_BACKS[kind] = function
        return function

    return register


def kounta_order(scope: Scope, order_id: str) -> str:
    """The target (and lease) name of a Kounta order: one change to it at a time, so two
    rewards on one order cannot read the same lines and overwrite each other."""
    account = scope.merchant.account(Pos.KOUNTA)
    canonical = str(int(order_id)) if order_id.isascii() and order_id.isdigit() else order_id
    return f"order:kounta:{account.base_url}:{account.account_id}:{canonical}"


def xseries_sale(scope: Scope, sale_id: str) -> str:
    return f"sale:xseries:{scope.merchant.account(Pos.XSERIES).base_url}:{sale_id}"


def hold(scope: Scope, target: str) -> AbstractAsyncContextManager[Lease]:
    """The target's lease: held around ``send`` and ``settle`` of its writes."""
    return scope.services.leases.hold(
        target, busy="another change to this order or sale is under way; try again shortly"
    )


async def landed_amount(scope: Scope, target: str, kind: str, field: str = "amount") -> Decimal:
    """What the gateway's landed writes of ``kind`` to ``target`` paid, in all: the sum of
    their intents' ``field`` (absent: 0)."""
    async with scope.runtime.db.read() as session:
        landed = await store.landed_on(session, target, kind)
    return sum((Decimal(write.intent.get(field) or 0) for write in landed), Decimal(0))


async def follow_up(
    scope: Scope, target: str, kind: str, what: str | None, *, after_s: float = 0
) -> None:
    """Mark what is left to do about the landed writes of ``kind`` to ``target`` (looked at
    by the worker in ``after_s``), or clear it with None."""
    at = datetime.now(UTC) + timedelta(seconds=after_s) if what else None
    async with scope.runtime.db.transaction() as session:
        await store.follow_up(session, target, kind, what, at)


async def has_follow_up(scope: Scope, target: str, kind: str) -> bool:
    async with scope.runtime.db.read() as session:
        return await store.follow_up_of(session, target, kind) is not None


async def follow_up_attempt(scope: Scope, target: str, kind: str, what: str) -> int:
    """How many tries at ``what`` were refused for ``target`` ("rule5:2" → 2)."""
    async with scope.runtime.db.read() as session:
        current = await store.follow_up_of(session, target, kind)
    if current and current.startswith(f"{what}:") and current.rsplit(":", 1)[1].isdigit():
        return int(current.rsplit(":", 1)[1])
    return 0


async def latest(scope: Scope, owner: str) -> WriteRecord | None:
    """What the operation ``owner`` (an idempotency key) has written so far."""
    async with scope.runtime.db.read() as session:
        return await store.latest_of(session, scope.merchant.id, owner)


async def send(
    scope: Scope,
    *,
    owner: str,
    target: str,
    kind: str,
    intent: dict[str, Any],
    write: Callable[[], Awaitable[T]],
    outcome: Callable[[T], dict[str, Any]] | None = None,
) -> T:
    """Record, send, and record how it ended; ``intent`` is what a read-back recognises it
    by, ``outcome`` what to keep from the answer (a payment id)."""
    runtime = scope.runtime
    try:
        async with runtime.db.read() as session:
            other = await store.pending_on(session, target)
        if other is not None:  # someone's lost answer: settled first, if it is time
            other = await settle(scope, other, "an earlier change to this order or sale")
        async with runtime.db.transaction() as session:
            record = await store.record(
                session,
                merchant_id=scope.merchant.id,
                owner=owner,
                target=target,
                kind=kind,
                intent=intent,
                sent_at=runtime.clock(),
            )
    except IntegrityError:
        raise OutcomePending(
            "another change to this order or sale is not settled yet; try again shortly",
            retry_after_s=runtime.settings.upstream_settle_s,
        ) from None
    crash_point(f"write.recorded:{kind}")
    try:
        result = await write()
    except (UpstreamOutcomeUnknown, UpstreamShapeError) as lost:
        log.warning("pos write unsettled", write=record.id, kind=kind, reason=lost.message)
        raise _pending(scope, record, "it") from None
    except UpstreamError:
        await _settle(scope, record, WriteStatus.REFUSED)
        raise
    crash_point(f"write.answered:{kind}")
    await _settle(scope, record, WriteStatus.LANDED, outcome(result) if outcome else None)
    return result


async def settle(scope: Scope, write: WriteRecord, what: str = "it") -> WriteRecord:
    """The write as it ended: an unsettled one is read back once the settle window has
    passed (by its kind's ``read_back``); before, OUTCOME_PENDING."""
    if not write.pending:
        return write
    settle_s = scope.runtime.settings.upstream_settle_s
    due = write.sent_at + timedelta(seconds=settle_s)
    now = scope.runtime.clock()
    if now < due:
        raise _pending(scope, write, what)
    found = await _READ_BACKS[write.kind](scope, write.intent)
    status = WriteStatus.LANDED if found is not None else WriteStatus.NOT_LANDED
    log.info("pos write settled", write=write.id, kind=write.kind, status=status.value)
    return await _settle(scope, write, status, found)


async def _settle(
    scope: Scope, write: WriteRecord, status: WriteStatus, outcome: dict[str, Any] | None = None
) -> WriteRecord:
    async with scope.runtime.db.transaction() as session:
        return await store.settle(session, write.id, status, scope.runtime.clock(), outcome)


def _pending(scope: Scope, write: WriteRecord, what: str) -> OutcomePending:
    due = write.sent_at + timedelta(seconds=scope.runtime.settings.upstream_settle_s)
    wait = max(0.0, (due - scope.runtime.clock()).total_seconds())
    return OutcomePending(
        f"the POS has not confirmed {what} yet (its answer was lost) and may still apply it; "
        f"nothing is repeated or undone until it is read back in {wait:.0f} s: "
        "retry then with the same key",
        retry_after_s=wait,
    )

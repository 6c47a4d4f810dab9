"""The balance of record behind one interface (docs/architecture.md, "Loyalty rules":
points source).

``XSERIES``: the member is an X-Series customer and the balance is their
``loyalty_balance``; credits and debits go through the loyalty adjustments endpoint,
applied once per ``session_id`` (derived from the operation's key). ``LEDGER``: the
gateway's own append-only ledger. Either way each credit and debit is idempotent by key,
and a debit never takes a balance below zero. Callers that check-then-debit hold
``balance_lock`` for the member, which also serializes X-Series loyalty payments.
"""

from __future__ import annotations

import hashlib
import uuid
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import structlog

from gateway.domain import ids
from gateway.domain.activity import Movement
from gateway.domain.errors import InsufficientBalance, ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import PointsSource, Pos
from gateway.faults import crash_point
from gateway.pos.errors import SessionConflict, UpstreamNotFound
from gateway.pos.xseries import Adjustment, AdjustmentApplied
from gateway.services import customer_cache
from gateway.services.context import Scope
from gateway.store import activity, ledger
from gateway.store.leases import Lease

log = structlog.get_logger("gateway.points")


class PointsBook(Protocol):
    """Every credit and debit is told in the member's history (``store/activity.py``), once,
    under the same key that makes the movement itself happen once."""

    async def balance(self, member_id: str) -> Decimal: ...

    async def credit(
        self, member_id: str, amount: Decimal, key: str, movement: Movement
    ) -> None: ...

    async def debit(
        self, member_id: str, amount: Decimal, key: str, movement: Movement
    ) -> None: ...


def balance_lock(scope: Scope, member_id: str) -> str:
    """One lease per balance of record, whichever entry point or merchant spends it: an
    X-Series balance is named by its account's URL, a ledger balance by its merchant."""
    if scope.merchant.points_source is PointsSource.XSERIES:
        account = scope.merchant.account(Pos.XSERIES).base_url
        return f"balance:xseries:{account}:{member_id}"
    return f"balance:ledger:{scope.merchant.id}:{member_id}"


def hold_balance(scope: Scope, member_id: str) -> AbstractAsyncContextManager[Lease]:
    """Check-then-spend of one balance at a time, across processes."""
    return scope.services.leases.hold(balance_lock(scope, member_id))


def points_book(scope: Scope) -> PointsBook:
    if scope.merchant.points_source is PointsSource.XSERIES:
        return XSeriesPoints(scope)
    return LedgerPoints(scope)


def session_id(merchant_id: str, key: str) -> str:
    """A UUID v4-shaped id, the same for the same key: X-Series applies it once."""
    digest = bytearray(hashlib.sha256(f"{merchant_id}:{key}".encode()).digest()[:16])
    return str(uuid.UUID(bytes=bytes(digest), version=4))


class XSeriesPoints:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def balance(self, member_id: str) -> Decimal:
        client = await self.scope.xseries()
        try:
            customer = await client.get_customer(member_id, fresh=True)
        except UpstreamNotFound:
            raise ids.not_found(Kind.CUSTOMER, member_id) from None
        return customer.loyalty_balance

    async def credit(self, member_id: str, amount: Decimal, key: str, movement: Movement) -> None:
        await self._adjust(member_id, amount, key, movement)

    async def debit(self, member_id: str, amount: Decimal, key: str, movement: Movement) -> None:
        await self._adjust(member_id, -amount, key, movement)

    async def _adjust(self, member_id: str, amount: Decimal, key: str, movement: Movement) -> None:
        client = await self.scope.xseries()
        session = session_id(self.scope.merchant.id, key)
        crash_point(f"points.before:{key.split(':', 1)[0]}")
        adjustment = Adjustment(member_id, amount, movement.reason)
        try:
            outcome = await client.adjust_balance(session, adjustment)
        except SessionConflict:
            log.error("x-series session conflict: the same key sent other adjustments",
                      key=key, session_id=session, member=member_id)  # fmt: skip
            raise
        except BaseException:
            await customer_cache.forget(self.scope, member_id)  # it may have landed
            raise
        crash_point(f"points.after:{key.split(':', 1)[0]}")
        if isinstance(outcome, AdjustmentApplied):
            await tell(self.scope, member_id, key, amount, movement, outcome.balance)
            return
        # Refused for this customer. Its words are X-Series' own: judge by the balance,
        # read again, never by the text.
        balance = await self.balance(member_id)
        if amount < 0 and balance < -amount:
            raise InsufficientBalance.of(balance, -amount, "points")
        raise ValidationError(f"X-Series refused the loyalty adjustment: {outcome.error[:200]}")


class LedgerPoints:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def balance(self, member_id: str) -> Decimal:
        async with self.scope.runtime.db.read() as session:
            return await ledger.balance(session, self.scope.merchant.id, member_id)

    async def credit(self, member_id: str, amount: Decimal, key: str, movement: Movement) -> None:
        await self._append(member_id, amount, key, movement)

    async def debit(self, member_id: str, amount: Decimal, key: str, movement: Movement) -> None:
        await self._append(member_id, -amount, key, movement)

    async def _append(self, member_id: str, amount: Decimal, key: str, movement: Movement) -> None:
        """The entry and its history line in one transaction: the ledger and what it tells
        never disagree."""
        merchant_id = self.scope.merchant.id
        async with self.scope.runtime.db.transaction() as session:
            if await ledger.has_entry(session, merchant_id, key):
                return  # already written: idempotent by key
            current = await ledger.balance(session, merchant_id, member_id)
            if amount < 0 and current + amount < 0:
                raise InsufficientBalance.of(current, -amount, "points")
            crash_point(f"points.before:{key.split(':', 1)[0]}")
            if not await ledger.append(session, merchant_id, member_id, amount, key,
                                       movement.reason):  # fmt: skip
                return  # written meanwhile by another: idempotent by key
            await activity.record(
                session, merchant_id=merchant_id, member_id=member_id, key=key, points=amount,
                movement=movement, at=datetime.now(UTC), balance_after=current + amount,
            )  # fmt: skip
        crash_point(f"points.after:{key.split(':', 1)[0]}")


async def tell(
    scope: Scope,
    member_id: str,
    key: str,
    points: Decimal,
    movement: Movement,
    balance_after: Decimal | None = None,
) -> None:
    """Write a movement the POS made (or the gateway made there) into the history, once;
    and forget the cached customer (every movement at X-Series is told here), so the next
    read shows the balance after it."""
    try:
        async with scope.runtime.db.transaction() as session:
            await activity.record(
                session, merchant_id=scope.merchant.id, member_id=member_id, key=key,
                points=points, movement=movement, at=datetime.now(UTC),
                balance_after=balance_after,
            )  # fmt: skip
    finally:
        await customer_cache.forget(scope, member_id)

"""Taking points back from a balance that never goes below zero (docs/architecture.md, "The
life of a sale"): what an order earned when it is refunded, what a POS gave back on a void
the merchant keeps.

What will be taken is decided once, under the member's balance lease, and written down before
the balance moves (``store/take_backs.py``): a crash resumes the same movement under the same
key, so it lands once. If the customer spent the points already, what is there is taken and
the rest is told in the history as a shortfall: the balance stays at zero, never below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal

import structlog

from gateway.domain.activity import Movement
from gateway.domain.afterlife import take
from gateway.domain.errors import InsufficientBalance
from gateway.domain.money import ZERO
from gateway.services.context import Scope
from gateway.services.points import hold_balance, points_book, tell
from gateway.store import take_backs
from gateway.store.take_backs import TakeBack

log = structlog.get_logger("gateway.take_back")

# A refused try means the balance fell between reading it and taking: read again, at most
# this often in one go (the worker tries again later).
TRIES = 3


async def take_back(
    scope: Scope,
    member_id: str,
    key: str,
    movement: Movement,
    wanted: Callable[[], Awaitable[Decimal]],
) -> TakeBack | None:
    """Take what ``wanted`` says (or what is left of it) from ``member_id``, once by
    ``key``. ``wanted`` is asked under the member's balance lease, which every take-back of
    theirs holds: so it may count what earlier take-backs wanted (a cumulative target) and
    two at once never both take the same part."""
    async with hold_balance(scope, member_id):
        async with scope.runtime.db.read() as session:
            record = await take_backs.get(session, scope.merchant.id, key)
        if record is None:
            amount = await wanted()
            if amount <= 0:
                return None
            balance = await points_book(scope).balance(member_id)
            async with scope.runtime.db.transaction() as session:
                record = await take_backs.create(
                    session, merchant_id=scope.merchant.id, key=key, member_id=member_id,
                    movement=movement, wanted=amount, take=take(amount, balance),
                )  # fmt: skip
        return await _apply(scope, record)


async def resume(scope: Scope, record: TakeBack) -> TakeBack:
    """The worker: a take-back whose process died between writing it and finishing it."""
    async with hold_balance(scope, record.member_id):
        async with scope.runtime.db.read() as session:
            current = await take_backs.get(session, scope.merchant.id, record.key)
        return await _apply(scope, current or record)


async def _apply(scope: Scope, record: TakeBack) -> TakeBack:
    """Move the balance by what the record says (a new key per refused try), then mark it
    done. Held under the member's balance lease."""
    book = points_book(scope)
    for _ in range(TRIES):
        if record.done:
            return record
        movement = replace(record.movement, reason=_reason(record))
        key = record.key if record.attempts == 0 else f"{record.key}#{record.attempts}"
        try:
            if record.taken > 0:
                await book.debit(record.member_id, record.taken, key, movement)
            else:  # nothing left to take: the history still says what was not taken
                await tell(scope, record.member_id, key, ZERO, movement)
        except InsufficientBalance:
            balance = await book.balance(record.member_id)
            async with scope.runtime.db.transaction() as session:
                record = await take_backs.retake(session, record, take(record.wanted, balance))
            continue
        async with scope.runtime.db.transaction() as session:
            await take_backs.finish(session, record)
        if record.shortfall > 0:
            log.info("take-back short: points already spent", key=record.key,
                     member=record.member_id, shortfall=str(record.shortfall))  # fmt: skip
        return replace(record, done=True)
    return record


def _reason(record: TakeBack) -> str:
    if record.shortfall <= 0:
        return record.movement.reason
    return (
        f"{record.movement.reason} ({record.shortfall:.2f} already spent, "
        f"so {record.taken:.2f} taken back)"
    )

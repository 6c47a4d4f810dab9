"""adjustPoints (and ``gateway points adjust``): staff credit or debit a customer's balance
by hand, with a reason the customer will read in their history.

It runs once per key (``run_once``) and moves the balance of record through the points
book, X-Series' or the gateway's own ledger, under the same key, so the movement and its
history line happen once. Under the member's balance lease: a debit is checked against
what the member may spend (``held_top_ups`` are not theirs), never below zero. What is
about to be sent is saved first: a retry after a lost answer sends the same adjustment again
(X-Series applies a session once; the ledger an entry once) instead of checking the
balance it may already have lowered.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from gateway.domain import ids
from gateway.domain.activity import Activity, ActivityKind, Movement
from gateway.domain.errors import InsufficientBalance, NotFound, Unavailable, ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import PointsSource, Pos
from gateway.domain.money import CENT, parse_signed_amount
from gateway.domain.text import check_text
from gateway.services import customers, members
from gateway.services.context import Scope
from gateway.services.idempotency import Attempt, LeftForRetry
from gateway.services.points import hold_balance, points_book
from gateway.services.redemption_records import held_top_ups
from gateway.store import activity
from gateway.store.idempotency import KeyRecord

OPERATION = "adjustPoints"
MAX_REASON_LENGTH = 200


@dataclass(frozen=True)
class Adjusted:
    activity: Activity
    balance: Decimal  # the balance right after


ADJUSTED = TypeAdapter(Adjusted)


def check_reason(reason: str) -> str:
    """The customer reads it: some words, on one line, bounded."""
    text = " ".join(reason.split())
    if not text:
        raise ValidationError(
            "reason must say why the points are adjusted: the customer sees it", field="reason"
        )
    return check_text(text, "reason", max_length=MAX_REASON_LENGTH)


async def adjust_points(
    scope: Scope, *, idempotency_key: str, customer_id: str, points: Decimal | str, reason: str
) -> Adjusted:
    amount = parse_signed_amount(points, "points")
    why = check_reason(reason)
    ids.decode(customer_id, Kind.CUSTOMER, scope.merchant.id)  # NOT_FOUND spends no key

    async def execute(attempt: Attempt) -> Adjusted:
        if attempt.checkpoint is not None:
            return await _apply(scope, attempt, attempt.checkpoint["member"], amount, why)
        customer = await customers.get_customer(scope, customer_id, fresh=True)
        member = await members.member_of(scope, customer)
        members.check_enabled(member)
        return await _apply(scope, attempt, member.id, amount, why)

    return await scope.services.idempotency.run_once(
        merchant_id=scope.merchant.id,
        key=idempotency_key,
        operation=OPERATION,
        request={"customer": customer_id, "points": format(amount, "f"), "reason": why},
        execute=execute,
        adapter=ADJUSTED,
    )


async def recover(scope: Scope, record: KeyRecord) -> Adjusted | None:
    """The worker: an attempt that died after deciding to send finishes sending (the same
    adjustment, applied once); one that died before is left for the caller's retry."""

    async def execute(attempt: Attempt) -> Adjusted:
        saved = attempt.checkpoint
        if saved is None:
            raise LeftForRetry("no adjustment of this request was sent")
        amount = Decimal(saved["points"])
        return await _apply(scope, attempt, saved["member"], amount, saved["reason"])

    return await scope.services.idempotency.recover(record, execute, ADJUSTED)


def customer_id_of(scope: Scope, value: str) -> str:
    """A customer as staff name them at the command line: the API's global id, or the POS's
    own id of whoever holds the balance (an X-Series customer, or a Kounta customer when the
    gateway keeps the points)."""
    try:
        gid = ids.peek(value, scope.merchant.id, "customer")
    except ValidationError:  # not one of ours: the POS's own id
        xseries = scope.merchant.points_source is PointsSource.XSERIES
        pos = Pos.XSERIES if xseries else Pos.KOUNTA
        return ids.encode(Kind.CUSTOMER, pos, scope.merchant.id, check_text(value, "customer"))
    if gid is None or gid.kind is not Kind.CUSTOMER:
        raise NotFound(f"no customer with id {value[:80]!r}", field="customer")
    return value


def movement_key(attempt: Attempt) -> str:
    return f"adjustment:{attempt.key}"


async def _apply(
    scope: Scope, attempt: Attempt, member_id: str, amount: Decimal, reason: str
) -> Adjusted:
    book = points_book(scope)
    key = movement_key(attempt)
    async with hold_balance(scope, member_id):
        if attempt.checkpoint is None:
            if amount < 0:
                await _check_covers(scope, member_id, -amount)
            saved: dict[str, Any] = {"member": member_id, "points": str(amount), "reason": reason}
            await attempt.save(saved)
        movement = Movement(ActivityKind.ADJUSTED, reason)
        if amount > 0:
            await book.credit(member_id, amount, key, movement)
        else:
            await book.debit(member_id, -amount, key, movement)
    async with scope.runtime.db.read() as session:
        told = await activity.by_key(session, scope.merchant.id, key)
    if told is None:  # the book tells every movement it makes: a fault of ours
        raise Unavailable("the adjustment was made but not recorded; retry with the same key")
    balance = told.balance_after
    if balance is None:
        balance = await book.balance(member_id)
    return Adjusted(told, balance)


async def _check_covers(scope: Scope, member_id: str, debit: Decimal) -> None:
    spendable = await points_book(scope).balance(member_id)
    spendable -= await held_top_ups(scope, member_id)
    if spendable < debit:
        cents = spendable.quantize(CENT)  # said as money, unless that would hide a digit
        raise InsufficientBalance.of(cents if cents == spendable else spendable, debit, "points")

"""createSale: post an X-Series sale whose lines carry the loyalty they earn (rules 3 to 6
of docs/architecture.md, "Loyalty rules"), with an optional loyalty payment and other
payments; closed when the payments cover it.

The sale is posted once per idempotency key through the journal (services/writes.py): its
``source_id`` is derived from the key, so a write whose answer was lost is found again by
reading X-Series back after the settle window, never posted twice. With a loyalty payment
it runs inside the customer's balance lease: the balance is read fresh, checked and spent
before the next payment may look at it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from gateway.domain import ids
from gateway.domain.customers import Customer
from gateway.domain.errors import ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.money import ZERO, parse_amount
from gateway.domain.sales import (
    CREATABLE_STATUSES,
    Sale,
    SaleState,
    check_loyalty_payment,
    closing_status,
    state_of,
)
from gateway.pos.xseries.models import LineWrite, PaymentWrite, RegisterSale
from gateway.pos.xseries.models import NewSale as SaleWrite
from gateway.pos.xseries.translate import to_sale
from gateway.services import catalog, customer_cache, writes
from gateway.services.context import Scope
from gateway.services.customers import get_xseries_customer
from gateway.services.idempotency import Attempt, LeftForRetry
from gateway.services.loyalty import LineInput, optional_amount, quote_lines, validate_lines
from gateway.services.points import hold_balance
from gateway.services.redemption_records import held_top_ups
from gateway.services.sales import get_xseries_sale
from gateway.store.idempotency import KeyRecord
from gateway.store.writes import WriteStatus

OPERATION = "createSale"
KIND = "xseries.sale_create"
# The intent's record of the loyalty payment a sale was created with.
LOYALTY_FIELD = "loyalty_payment"
SALE = TypeAdapter(Sale)
SOURCE_NAMESPACE = uuid.UUID("6f3b0c3e-6a4c-4b55-9f59-2f0a8e4c1d10")
# How long before it was sent a read-back starts looking for a sale whose answer was lost
# (clocks differ: X-Series dates the sale by its own).
RECONCILE_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class PaymentInput:
    payment_type_id: str
    amount: Decimal


@dataclass(frozen=True)
class NewSale:
    idempotency_key: str
    register_id: str
    user_id: str
    lines: Sequence[LineInput]
    customer_id: str | None = None
    status: str = "CLOSED"
    loyalty_payment: Decimal | None = None
    payments: Sequence[PaymentInput] = field(default_factory=tuple)


@dataclass(frozen=True)
class _CheckedSale:
    register_id: str
    user_id: str
    status: str
    lines: list[LineInput]
    customer_pos_id: str | None
    loyalty_payment: Decimal
    payments: list[PaymentInput]

    def as_request(self) -> dict[str, Any]:
        """The request's meaning, so "1" and "1.0" are the same request on a retry."""
        return {
            "register_id": self.register_id,
            "user_id": self.user_id,
            "status": self.status,
            "customer": self.customer_pos_id,
            "loyalty_payment": _canonical(self.loyalty_payment),
            "lines": [[x.product_id, _canonical(x.quantity), _canonical(x.price),
                       _canonical(x.tax), x.tax_id] for x in self.lines],
            "payments": [[p.payment_type_id, _canonical(p.amount)] for p in self.payments],
        }  # fmt: skip


def _canonical(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _check_new_sale(scope: Scope, new: NewSale) -> _CheckedSale:
    status = new.status.strip().upper()
    if status not in CREATABLE_STATUSES:
        allowed = ", ".join(sorted(CREATABLE_STATUSES))
        raise ValidationError(f"status must be one of {allowed}", field="status")
    for name, value in (("registerId", new.register_id), ("userId", new.user_id)):
        if not value.strip():
            raise ValidationError(f"{name} is required", field=name)
    customer_pos_id = None
    if new.customer_id:
        gid = ids.decode(new.customer_id, Kind.CUSTOMER, scope.merchant.id)
        if gid.pos is not Pos.XSERIES:
            raise ValidationError("an X-Series sale needs an X-Series customer", field="customerId")
        customer_pos_id = gid.local_id
    loyalty = optional_amount(new.loyalty_payment, "loyaltyPayment")
    if loyalty and customer_pos_id is None:
        raise ValidationError("a loyalty payment needs a customer", field="customerId")
    payments = [
        PaymentInput(p.payment_type_id.strip(), parse_amount(p.amount, f"payments[{n}].amount"))
        for n, p in enumerate(new.payments)
    ]
    return _CheckedSale(
        new.register_id.strip(),
        new.user_id.strip(),
        status,
        validate_lines(new.lines),
        customer_pos_id,
        loyalty,
        payments,
    )


async def create_sale(scope: Scope, new: NewSale) -> Sale:
    """POST a register sale whose lines carry the loyalty they earn, once per key."""
    checked = _check_new_sale(scope, new)

    async def execute(attempt: Attempt) -> Sale:
        return await _create(scope, checked, attempt)

    return await scope.services.idempotency.run_once(
        merchant_id=scope.merchant.id,
        key=new.idempotency_key,
        operation=OPERATION,
        request=checked.as_request(),
        execute=execute,
        adapter=SALE,
    )


async def recover(scope: Scope, record: KeyRecord) -> Sale | None:
    """The worker: settle the sale an attempt posted, if it posted one; it never posts one."""

    async def execute(attempt: Attempt) -> Sale:
        done = await created_already(scope, attempt.key)
        if done is None:
            raise LeftForRetry("no sale of this request reached X-Series")
        return done

    return await scope.services.idempotency.recover(record, execute, SALE)


async def _create(scope: Scope, checked: _CheckedSale, attempt: Attempt) -> Sale:
    """A sale for a customer moves their balance at X-Series (its loyalty payment; what it
    earns when it closes): whatever happens, their cached customer is forgotten."""
    try:
        return await _create_once(scope, checked, attempt)
    finally:
        await customer_cache.forget(scope, checked.customer_pos_id)


async def _create_once(scope: Scope, checked: _CheckedSale, attempt: Attempt) -> Sale:
    done = await created_already(scope, attempt.key)
    if done is not None:
        return done
    if attempt.recover:
        raise LeftForRetry("no sale of this request reached X-Series")
    source_id = str(uuid.uuid5(SOURCE_NAMESPACE, f"{scope.merchant.id}:{attempt.key}"))
    if not checked.loyalty_payment:
        customer = None
        if checked.customer_pos_id:
            # What its lines earn is decided on this: read now, not from the cache.
            customer = await get_xseries_customer(scope, checked.customer_pos_id, fresh=True)
        sale = await _sale_to_post(scope, checked, customer, source_id)
        return await _post(scope, attempt.key, sale)
    assert checked.customer_pos_id is not None
    async with hold_balance(scope, checked.customer_pos_id) as lease:
        customer = await get_xseries_customer(scope, checked.customer_pos_id, fresh=True)
        sale = await _sale_to_post(scope, checked, customer, source_id)
        lease.ensure_held()
        return await _post(scope, attempt.key, sale, checked.loyalty_payment)


async def created_already(scope: Scope, owner: str) -> Sale | None:
    """The sale ``owner`` posted earlier, if it landed (read back by its ``source_id`` once
    the settle window has passed; OUTCOME_PENDING before)."""
    write = await writes.latest(scope, owner)
    if write is None:
        return None
    write = await writes.settle(scope, write)
    if write.status is not WriteStatus.LANDED or not write.outcome:
        return None
    sale = await get_xseries_sale(scope, str(write.outcome["sale_id"]), fresh=True)
    await customer_cache.forget(scope, sale.customer_pos_id)  # settled by the worker, maybe
    return sale


@writes.read_back(KIND)
async def _find_sale(scope: Scope, intent: dict[str, Any]) -> dict[str, Any] | None:
    """The sale by its ``source_id``, among those since a while before it was sent (however
    late the read-back comes)."""
    client = await scope.xseries()
    found = await client.find_sale_by_source(
        intent["source_id"], datetime.fromisoformat(intent["since"])
    )
    return {"sale_id": found.id} if found else None


def created_target(scope: Scope, source_id: str) -> str:
    """A sale not yet created has no id: its source id names it, so only this request's
    own writes can be in each other's way."""
    return writes.xseries_sale(scope, f"source:{source_id}")


async def loyalty_paid_at_creation(scope: Scope, sale: RegisterSale) -> Decimal:
    """The loyalty payment the gateway created ``sale`` with (0 if it did not create it,
    or without one): a loyalty payment made through the gateway like any other, which
    X-Series gives back on a void (services/xseries_sales.py)."""
    if not sale.source_id:
        return ZERO
    return await writes.landed_amount(
        scope, created_target(scope, sale.source_id), KIND, LOYALTY_FIELD
    )


async def _post(scope: Scope, owner: str, sale: SaleWrite, loyalty: Decimal = ZERO) -> Sale:
    client = await scope.xseries()
    posted = await writes.send(
        scope,
        owner=owner,
        target=created_target(scope, sale.source_id),
        kind=KIND,
        intent={
            "source_id": sale.source_id,
            "since": (scope.runtime.clock() - RECONCILE_WINDOW).isoformat(),
            LOYALTY_FIELD: str(loyalty),
        },
        write=lambda: client.create_sale(sale),
        outcome=lambda created: {"sale_id": created.id},
    )
    return to_sale(posted, await catalog.payment_types(scope))


async def _sale_to_post(
    scope: Scope, checked: _CheckedSale, customer: Customer | None, source_id: str
) -> SaleWrite:
    quoted = await quote_lines(
        scope, customer, checked.lines, checked.loyalty_payment, register_id=checked.register_id
    )
    types = {t.id: t for t in await catalog.payment_types(scope)}
    now = scope.runtime.clock()
    payments: list[PaymentWrite] = []
    for n, payment in enumerate(checked.payments):
        known = types.get(payment.payment_type_id)
        if known is None:
            raise ValidationError(
                f"payments[{n}].paymentTypeId is not a payment type of this store",
                field=f"payments[{n}].paymentTypeId",
            )
        if known.is_loyalty:
            raise ValidationError(
                "pay with loyalty through loyaltyPayment, so the balance is checked",
                field=f"payments[{n}].paymentTypeId",
            )
        payments.append(PaymentWrite(known.id, payment.amount, now))
    other = sum((p.amount for p in checked.payments), ZERO)
    if other > quoted.total:
        raise ValidationError(
            f"payments ({other}) are more than the sale's total ({quoted.total})", field="payments"
        )
    if checked.loyalty_payment:
        assert customer is not None
        config = await catalog.account_config(scope)
        held = await held_top_ups(scope, customer.pos_id)
        check_loyalty_payment(
            amount=checked.loyalty_payment,
            balance=customer.balance - held,
            amount_due=quoted.total - other,
            status="SAVED",
            account_enabled=config.enable_loyalty,
            customer_enabled=customer.loyalty_enabled,
        )
        loyalty_type = await catalog.loyalty_payment_type(scope)
        payments.append(PaymentWrite(loyalty_type.id, checked.loyalty_payment, now))
    status = checked.status
    paid_in_full = quoted.total > 0 and other + checked.loyalty_payment >= quoted.total
    if state_of(status) is SaleState.OPEN and paid_in_full:
        status = closing_status(status)
    lines = [
        LineWrite(line.product_id, line.quantity, line.price, line.tax, line.tax_id,
                  q.unit_loyalty_value)
        for line, q in zip(checked.lines, quoted.lines, strict=True)
    ]  # fmt: skip
    return SaleWrite(
        source_id=source_id,
        register_id=checked.register_id,
        user_id=checked.user_id,
        status=status,
        sale_date=now,
        lines=lines,
        payments=payments,
        customer_id=checked.customer_pos_id,
    )

"""X-Series sales through the gateway: read one, create one with its loyalty, pay with
loyalty on an open one (DESIGN §3).

Loyalty moves money, so both writes run exactly once per idempotency key and, when they
spend a balance, inside the lock on that balance: the balance is read fresh under the
lock, checked, and spent before the next payment may look at it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from gateway.domain import ids
from gateway.domain.customers import Customer
from gateway.domain.errors import ValidationError
from gateway.domain.ids import Kind
from gateway.domain.loyalty import rescale_unit_value
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
from gateway.pos.http import UpstreamNotFound
from gateway.pos.kounta.translate import to_sale as kounta_sale
from gateway.pos.xseries import XSeriesClient
from gateway.pos.xseries.models import PaymentType, RegisterSale, sale_write_payload
from gateway.pos.xseries.translate import to_sale
from gateway.services import catalog
from gateway.services.context import Scope
from gateway.services.customers import get_xseries_customer
from gateway.services.earning import order_earning
from gateway.services.idempotency import Attempt
from gateway.services.loyalty import LineInput, optional_amount, quote_lines, validate_lines
from gateway.services.points import balance_lock

SALE = TypeAdapter(Sale)
SOURCE_NAMESPACE = uuid.UUID("6f3b0c3e-6a4c-4b55-9f59-2f0a8e4c1d10")
# How far back a resumed createSale looks for the sale an earlier attempt may have posted.
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
class LoyaltyPayment:
    id: str
    amount: Decimal
    balance_after: Decimal
    sale: Sale


LOYALTY_PAYMENT = TypeAdapter(LoyaltyPayment)


def xseries_sale_id(scope: Scope, sale_id: str) -> str:
    gid = ids.decode(sale_id, Kind.SALE, scope.merchant.id)
    if gid.pos is not Pos.XSERIES:
        raise ValidationError("this operation takes an X-Series sale", field="saleId")
    return gid.local_id


# --------------------------------------------------------------------------- reading


async def get_sale(scope: Scope, sale_id: str) -> Sale:
    """An X-Series sale or a Kounta order, by global id."""
    gid = ids.decode(sale_id, Kind.SALE, scope.merchant.id)
    if gid.pos is Pos.KOUNTA:
        return await get_kounta_order(scope, gid.local_id)
    return await get_xseries_sale(scope, gid.local_id)


async def get_kounta_order(scope: Scope, order_id: str) -> Sale:
    try:
        order = await scope.kounta().get_order(order_id)
    except UpstreamNotFound:
        raise ids.not_found(Kind.SALE, order_id) from None
    earns = await order_earning(scope, order, member_enabled=order.customer_ref is not None)
    method_id = scope.merchant.account(Pos.KOUNTA).settings.get("payment_method_id")
    return kounta_sale(order, method_id, earns.loyalty_earned)


async def get_xseries_sale(scope: Scope, pos_id: str) -> Sale:
    client = await scope.xseries()
    try:
        sale = await client.get_sale(pos_id)
    except UpstreamNotFound:
        raise ids.not_found(Kind.SALE, pos_id) from None
    return to_sale(sale, await catalog.payment_types(scope))


# --------------------------------------------------------------------------- createSale


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
    """POST a register sale whose lines carry the loyalty they earn (rules 3 to 6), with an
    optional loyalty payment and other payments; closed when the payments cover it."""
    checked = _check_new_sale(scope, new)

    async def execute(attempt: Attempt) -> Sale:
        return await _create(scope, checked, attempt)

    return await scope.services.idempotency.run_once(
        merchant_id=scope.merchant.id,
        key=new.idempotency_key,
        operation="createSale",
        request=checked.as_request(),
        execute=execute,
        adapter=SALE,
    )


async def _create(scope: Scope, checked: _CheckedSale, attempt: Attempt) -> Sale:
    client = await scope.xseries()
    source_id = str(uuid.uuid5(SOURCE_NAMESPACE, f"{scope.merchant.id}:{attempt.key}"))
    if attempt.resumed:
        earlier = await _find_posted(client, source_id, attempt.checkpoint or {})
        if earlier is not None:
            return to_sale(earlier, await catalog.payment_types(scope))
    if not checked.loyalty_payment:
        customer = None
        if checked.customer_pos_id:
            customer = await get_xseries_customer(scope, checked.customer_pos_id)
        payload = await _sale_payload(scope, checked, customer, source_id)
        return await _post_new(scope, client, payload, attempt, source_id)
    assert checked.customer_pos_id is not None
    async with scope.services.locks.hold(balance_lock(scope, checked.customer_pos_id)) as lease:
        customer = await get_xseries_customer(scope, checked.customer_pos_id, fresh=True)
        payload = await _sale_payload(scope, checked, customer, source_id)
        lease.ensure_held()
        return await _post_new(scope, client, payload, attempt, source_id)


async def _sale_payload(
    scope: Scope, checked: _CheckedSale, customer: Customer | None, source_id: str
) -> dict[str, Any]:
    quoted = await quote_lines(scope, customer, checked.lines, checked.loyalty_payment)
    types = {t.id: t for t in await catalog.payment_types(scope)}
    now = _timestamp()
    payments: list[dict[str, Any]] = []
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
        payments.append({"retailer_payment_type_id": known.id, "amount": payment.amount})
    other = sum((p.amount for p in checked.payments), ZERO)
    if other > quoted.total:
        raise ValidationError(
            f"payments ({other}) are more than the sale's total ({quoted.total})", field="payments"
        )
    if checked.loyalty_payment:
        assert customer is not None
        config = await catalog.account_config(scope)
        check_loyalty_payment(
            amount=checked.loyalty_payment,
            balance=customer.balance,
            amount_due=quoted.total - other,
            status="SAVED",
            account_enabled=config.enable_loyalty,
            customer_enabled=customer.loyalty_enabled,
        )
        loyalty_type = await catalog.loyalty_payment_type(scope)
        payments.append(
            {"retailer_payment_type_id": loyalty_type.id, "amount": checked.loyalty_payment}
        )
    for entry in payments:
        entry["payment_date"] = now
    status = checked.status
    paid_in_full = quoted.total > 0 and other + checked.loyalty_payment >= quoted.total
    if state_of(status) is SaleState.OPEN and paid_in_full:
        status = closing_status(status)
    lines = [
        {
            "product_id": line.product_id,
            "quantity": line.quantity,
            "price": line.price,
            "tax": line.tax,
            "tax_id": line.tax_id,
            "loyalty_value": q.unit_loyalty_value,
        }
        for line, q in zip(checked.lines, quoted.lines, strict=True)
    ]
    payload: dict[str, Any] = {
        "source_id": source_id,
        "register_id": checked.register_id,
        "user_id": checked.user_id,
        "status": status,
        "sale_date": now,
        "register_sale_products": lines,
        "register_sale_payments": payments,
    }
    if checked.customer_pos_id:
        payload["customer_id"] = checked.customer_pos_id
    return payload


async def _post_new(
    scope: Scope,
    client: XSeriesClient,
    payload: dict[str, Any],
    attempt: Attempt,
    source_id: str,
) -> Sale:
    await attempt.save({"source_id": source_id, "since": _timestamp(-RECONCILE_WINDOW)})
    posted = await client.save_sale(payload)
    return to_sale(posted, await catalog.payment_types(scope))


async def _find_posted(
    client: XSeriesClient, source_id: str, checkpoint: dict[str, Any]
) -> RegisterSale | None:
    """An earlier attempt's sale, if it reached X-Series (read back before re-posting)."""
    if checkpoint.get("source_id") != source_id:
        return None
    async for sale in client.iter_sales(since=checkpoint.get("since")):
        if sale.source_id == source_id:
            return sale
    return None


# --------------------------------------------------------------------------- payWithLoyalty


async def pay_with_loyalty(
    scope: Scope, *, idempotency_key: str, sale_id: str, amount: Decimal, key_space: str = "api"
) -> LoyaltyPayment:
    """Append a loyalty payment to an open X-Series sale; close it when fully paid."""
    value = parse_amount(amount, "amount")
    pos_id = xseries_sale_id(scope, sale_id)

    async def execute(attempt: Attempt) -> LoyaltyPayment:
        return await _pay(scope, pos_id, value, attempt)

    return await scope.services.idempotency.run_once(
        merchant_id=scope.merchant.id,
        key=idempotency_key,
        operation="payWithLoyalty",
        request={"sale": pos_id, "amount": _canonical(value)},
        execute=execute,
        adapter=LOYALTY_PAYMENT,
        key_space=key_space,
    )


async def _pay(scope: Scope, sale_id: str, amount: Decimal, attempt: Attempt) -> LoyaltyPayment:
    client = await scope.xseries()
    try:
        sale = await client.get_sale(sale_id)
    except UpstreamNotFound:
        raise ids.not_found(Kind.SALE, sale_id) from None
    if not sale.customer_id:
        raise ValidationError("the sale has no customer whose loyalty could pay", field="saleId")
    async with scope.services.locks.hold(balance_lock(scope, sale.customer_id)) as lease:
        if attempt.resumed:  # under the lock: no other payment can appear meanwhile
            done = await _find_paid(scope, client, sale_id, attempt.checkpoint or {})
            if done is not None:
                return done
        # Read both again under the lock: another payment may have landed meanwhile.
        sale = await client.get_sale(sale_id, fresh=True)
        customer = await get_xseries_customer(scope, sale.customer_id or "", fresh=True)
        config = await catalog.account_config(scope)
        types = await catalog.payment_types(scope)
        view = to_sale(sale, types)
        check_loyalty_payment(
            amount=amount,
            balance=customer.balance,
            amount_due=view.amount_due,
            status=sale.status,
            account_enabled=config.enable_loyalty,
            customer_enabled=customer.loyalty_enabled,
        )
        loyalty_type = await catalog.loyalty_payment_type(scope)
        payload = sale_write_payload(sale)
        paid_at = _timestamp()
        payload["register_sale_payments"].append(
            {
                "retailer_payment_type_id": loyalty_type.id,
                "amount": amount,
                "payment_date": paid_at,
                **({"register_id": sale.register_id} if sale.register_id else {}),
            }
        )
        # Rule 5 on an existing sale: no loyalty on the part now paid with loyalty.
        for line in payload["register_sale_products"]:
            line["loyalty_value"] = rescale_unit_value(
                Decimal(line.get("loyalty_value", ZERO)),
                view.total,
                view.loyalty_paid,
                view.loyalty_paid + amount,
            )
        if view.total_paid + amount >= view.total:
            payload["status"] = closing_status(sale.status)
        before = [p.id for p in sale.payments if p.id]
        await attempt.save(
            {
                "sale_id": sale_id,
                "payments_before": before,
                "balance_before": str(customer.balance),
                "amount": str(amount),
                "paid_at": paid_at,
            }
        )
        lease.ensure_held()
        updated = await client.save_sale(payload)
    return _payment_result(updated, types, before, amount, customer.balance - amount)


async def _find_paid(
    scope: Scope, client: XSeriesClient, sale_id: str, checkpoint: dict[str, Any]
) -> LoyaltyPayment | None:
    """If an earlier attempt's payment reached X-Series, its result; else None.

    Ours is a loyalty payment that was not there before, of our amount, dated when we
    sent it: another caller's payment since then (of another amount, or another second)
    is not taken for ours. X-Series payments carry no reference we could set.
    """
    if checkpoint.get("sale_id") != sale_id or "paid_at" not in checkpoint:
        return None
    sale = await client.get_sale(sale_id, fresh=True)
    types = await catalog.payment_types(scope)
    before = set(checkpoint.get("payments_before", []))
    loyalty_ids = {t.id for t in types if t.is_loyalty}
    amount, paid_at = Decimal(checkpoint["amount"]), _parse_timestamp(checkpoint["paid_at"])
    for payment in sale.payments:
        ours = (
            payment.id not in before
            and payment.retailer_payment_type_id in loyalty_ids
            and payment.amount == amount
            and _parse_timestamp(payment.payment_date) == paid_at
        )
        if ours:
            balance = Decimal(checkpoint["balance_before"]) - payment.amount
            return LoyaltyPayment(payment.id or "", amount, balance, to_sale(sale, types))
    return None


def _parse_timestamp(value: str | None) -> datetime | None:
    """X-Series dates to the second, whatever the spelling ("2026-11-21 10:00:00", ISO)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def _payment_result(
    sale: RegisterSale,
    types: Sequence[PaymentType],
    before: list[str],
    amount: Decimal,
    balance_after: Decimal,
) -> LoyaltyPayment:
    new_ids = [p.id for p in sale.payments if p.id and p.id not in set(before)]
    payment_id = new_ids[-1] if new_ids else ""
    return LoyaltyPayment(payment_id, amount, balance_after, to_sale(sale, types))


def _timestamp(offset: timedelta = timedelta(0)) -> str:
    """X-Series' 0.9 date format, UTC."""
    return (datetime.now(UTC) + offset).strftime("%Y-%m-%d %H:%M:%S")

"""payWithLoyalty: pay part or all of an open X-Series sale from the customer's loyalty
balance (docs/architecture.md, "A loyalty payment").

Under the customer's balance lease and the sale's lease: read both fresh, check the rules
(domain/sales.py), and append a Loyalty payment to the sale, closing it when paid in full;
X-Series lowers the balance itself. The write goes through the journal (services/writes.py):
if its answer is lost, nothing is re-sent until the sale is read back after the settle
window, and no other gateway payment may touch the sale meanwhile, so the payment found then
can only be this one. X-Series payments carry no reference of ours: "ours" is the loyalty
payment of our amount that was not on the sale before (docs/pos-contracts.md).

The X-Series redemption of a PAYMENT reward pays through the same step (``pay_from_balance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from pydantic import TypeAdapter

from gateway.domain import ids
from gateway.domain.activity import ActivityKind, Movement
from gateway.domain.errors import GatewayError, InsufficientBalance, ValidationError
from gateway.domain.ids import Kind
from gateway.domain.loyalty import rescale_unit_value
from gateway.domain.merchant import Pos
from gateway.domain.money import ZERO, parse_amount
from gateway.domain.sales import (
    Sale,
    SaleState,
    check_loyalty_payment,
    closing_status,
    state_of,
)
from gateway.pos.errors import UpstreamNotFound
from gateway.pos.xseries.models import PaymentWrite, RegisterSale
from gateway.pos.xseries.translate import to_sale
from gateway.services import catalog, customer_cache, writes
from gateway.services.context import Scope
from gateway.services.customers import get_xseries_customer
from gateway.services.idempotency import Attempt, LeftForRetry
from gateway.services.points import hold_balance, points_book, tell
from gateway.services.redemption_records import held_top_ups
from gateway.services.sales import xseries_sale_id
from gateway.store.idempotency import KeyRecord
from gateway.store.writes import WriteRecord, WriteStatus

log = structlog.get_logger("gateway.pay_with_loyalty")
OPERATION = "payWithLoyalty"
KIND = "xseries.sale_payment"
# A loyalty payment on a sale left open: rule 5 is kept when the sale closes, which the
# worker looks for this often.
FOLLOW_UP = "rule5"
# The points-book keys of rule-5 corrections (a void gives them back, xseries_sales.py).
RULE_5_KEYS = "loyalty-paid:"
FOLLOW_UP_S = 300.0


@dataclass(frozen=True)
class LoyaltyPayment:
    id: str
    amount: Decimal
    balance_after: Decimal
    sale: Sale


LOYALTY_PAYMENT = TypeAdapter(LoyaltyPayment)


async def pay_with_loyalty(
    scope: Scope, *, idempotency_key: str, sale_id: str, amount: Decimal
) -> LoyaltyPayment:
    """Append a loyalty payment to an open X-Series sale; close it when fully paid."""
    value = parse_amount(amount, "amount")
    pos_id = xseries_sale_id(scope, sale_id)

    async def execute(attempt: Attempt) -> LoyaltyPayment:
        return await _pay(scope, pos_id, value, attempt)

    return await scope.services.idempotency.run_once(
        merchant_id=scope.merchant.id,
        key=idempotency_key,
        operation=OPERATION,
        request={"sale": pos_id, "amount": format(value.normalize(), "f")},
        execute=execute,
        adapter=LOYALTY_PAYMENT,
    )


async def recover(scope: Scope, record: KeyRecord) -> LoyaltyPayment | None:
    """The worker: settle the payment an attempt sent, if it sent one; it never sends one."""

    async def execute(attempt: Attempt) -> LoyaltyPayment:
        done = await paid_already(scope, attempt.key)
        if done is None:
            raise LeftForRetry("no loyalty payment of this request reached X-Series")
        return done

    return await scope.services.idempotency.recover(record, execute, LOYALTY_PAYMENT)


async def _pay(scope: Scope, sale_id: str, amount: Decimal, attempt: Attempt) -> LoyaltyPayment:
    client = await scope.xseries()
    try:
        sale = await client.get_sale(sale_id)
    except UpstreamNotFound:
        raise ids.not_found(Kind.SALE, sale_id) from None
    if not sale.customer_id:
        raise ValidationError("the sale has no customer whose loyalty could pay", field="saleId")
    async with (
        hold_balance(scope, sale.customer_id),
        writes.hold(scope, writes.xseries_sale(scope, sale_id)),
    ):
        done = await paid_already(scope, attempt.key)
        if done is not None:
            return done
        if attempt.recover:
            raise LeftForRetry("no loyalty payment of this request reached X-Series")
        return await pay_from_balance(scope, attempt.key, sale_id, amount)


async def paid_already(scope: Scope, owner: str) -> LoyaltyPayment | None:
    """The payment ``owner`` sent earlier, if it landed (read back once the settle window
    has passed; OUTCOME_PENDING before); None if it sent none that landed."""
    write = await writes.latest(scope, owner)
    if write is None:
        return None
    intent = write.intent
    write = await writes.settle(scope, write)
    if write.status is not WriteStatus.LANDED:
        return None
    sale = await (await scope.xseries()).get_sale(intent["sale_id"], fresh=True)
    payment_id = str((write.outcome or {}).get("payment_id", ""))
    amount = Decimal(intent["amount"])
    balance = Decimal(intent["balance_before"]) - amount
    await _tell_payment(scope, sale, owner, payment_id, intent, balance)
    await _keep_rule_5(scope, sale)
    types = await catalog.payment_types(scope)
    return LoyaltyPayment(payment_id, amount, balance, to_sale(sale, types))


async def pay_from_balance(
    scope: Scope,
    owner: str,
    sale_id: str,
    amount: Decimal,
    *,
    reason: str | None = None,
    reward_id: str | None = None,
) -> LoyaltyPayment:
    """One loyalty payment of ``amount`` on the sale, sent as ``owner``'s write. The caller
    holds the customer's balance lease and the sale's lease. ``reason``, ``reward_id``: how
    the customer's history tells it (default: a payment with points)."""
    client = await scope.xseries()
    sale = await client.get_sale(sale_id, fresh=True)
    customer = await get_xseries_customer(scope, sale.customer_id or "", fresh=True)
    config = await catalog.account_config(scope)
    types = await catalog.payment_types(scope)
    view = to_sale(sale, types)
    held = await held_top_ups(scope, sale.customer_id or "", except_key=owner)
    check_loyalty_payment(
        amount=amount,
        balance=customer.balance - held,
        amount_due=view.amount_due,
        status=sale.status,
        account_enabled=config.enable_loyalty,
        customer_enabled=customer.loyalty_enabled,
    )
    loyalty_type = await catalog.loyalty_payment_type(scope)
    payment = PaymentWrite(
        loyalty_type.id, amount, scope.runtime.clock(), register_id=sale.register_id
    )
    closes = view.total_paid + amount >= view.total
    before = [p.id for p in sale.payments if p.id]
    intent = {
        "sale_id": sale_id,
        "payments_before": before,
        "amount": str(amount),
        "balance_before": str(customer.balance),
        "payment_type_id": loyalty_type.id,
        "reason": reason or f"Paid with points, sale {sale.invoice_number or sale.id}",
        "reward_id": reward_id,
    }

    def new_payment(updated: RegisterSale) -> dict[str, Any]:
        return {"payment_id": _new_payment_id(updated, before)}

    try:
        updated = await writes.send(
            scope,
            owner=owner,
            target=writes.xseries_sale(scope, sale_id),
            kind=KIND,
            intent=intent,
            write=lambda: client.add_payment(
                sale, payment, status=closing_status(sale.status) if closes else sale.status
            ),
            outcome=new_payment,
        )
    except BaseException:
        await customer_cache.forget(scope, sale.customer_id)  # it may have landed
        raise
    payment_id = _new_payment_id(updated, before)
    balance_after = customer.balance - amount
    await _tell_payment(scope, updated, owner, payment_id, intent, balance_after)
    await _keep_rule_5(scope, updated)
    return LoyaltyPayment(payment_id, amount, balance_after, to_sale(updated, types))


async def _tell_payment(
    scope: Scope,
    sale: RegisterSale,
    owner: str,
    payment_id: str,
    intent: dict[str, Any],
    balance_after: Decimal,
) -> None:
    """X-Series lowered the balance by the payment itself: the history says so, once (the
    payment's id is the key reconciliation also uses for it)."""
    key = f"xseries-payment:{payment_id}" if payment_id else f"xseries-payment:{owner}"
    movement = Movement(ActivityKind.REDEEMED, intent.get("reason") or "Paid with points",
                        Pos.XSERIES, sale.id, intent.get("reward_id"))  # fmt: skip
    await tell(scope, sale.customer_id or "", key, -Decimal(intent["amount"]), movement,
               balance_after)  # fmt: skip


async def _no_loyalty_on_loyalty_paid(scope: Scope, sale: RegisterSale) -> None:
    """Rule 5 on an existing sale, without rewriting its lines (they may be CONFIRMED, i.e.
    read-only, and Loyalty 101's own partial payment keeps the line's ``loyalty_value``:
    docs/architecture.md, "Money rules").

    When the sale closes, X-Series credits every line's ``loyalty_value`` as it stands, and
    those values do not know of the loyalty paid through the gateway since they were
    written. That part is taken back by one loyalty adjustment per sale, so it is taken once
    however often this runs (a retry, the worker). The lines are taken to account for the
    loyalty paid other than through the gateway (the till's, or the gateway's own when it
    created the sale with a loyalty payment). A sale still open is looked at again later
    (``follow_up``): the till may close it.
    """
    target = writes.xseries_sale(scope, sale.id)
    state = state_of(sale.status)
    if state is SaleState.OPEN:
        await writes.follow_up(scope, target, KIND, FOLLOW_UP, after_s=FOLLOW_UP_S)
        return
    if state is SaleState.CLOSED and sale.customer_id:
        attempt = await writes.follow_up_attempt(scope, target, KIND, FOLLOW_UP)
        try:
            await _take_back_loyalty_paid_part(scope, sale, target, attempt)
        except GatewayError as failed:
            # Refused (spent already at the till): a new adjustment next time; else the
            # same one again (a replay cannot apply it twice). The worker sees to it.
            refused = isinstance(failed, InsufficientBalance | ValidationError)
            tries = attempt + 1 if refused else attempt
            again = f"{FOLLOW_UP}:{tries}" if tries else FOLLOW_UP
            wait = FOLLOW_UP_S if refused else 0
            await writes.follow_up(scope, target, KIND, again, after_s=wait)
            raise
    await writes.follow_up(scope, target, KIND, None)  # closed and taken back, or voided


async def _keep_rule_5(scope: Scope, sale: RegisterSale) -> None:
    """After a payment landed: its answer must not wait for, or fail by, the rule-5
    adjustment; if that cannot be made now, the worker makes it."""
    try:
        await _no_loyalty_on_loyalty_paid(scope, sale)
    except GatewayError as failed:
        log.warning("rule 5 left to the worker", sale=sale.id, reason=failed.message)


async def _take_back_loyalty_paid_part(
    scope: Scope, sale: RegisterSale, target: str, attempt: int
) -> None:
    config = await catalog.account_config(scope)
    customer = await get_xseries_customer(scope, sale.customer_id or "", fresh=True)
    if not (config.enable_loyalty and customer.loyalty_enabled):
        return  # X-Series credits nothing: nothing to take back
    view = to_sale(sale, await catalog.payment_types(scope))
    through_gateway = await writes.landed_amount(scope, target, KIND)
    accounted = max(ZERO, view.loyalty_paid - through_gateway)
    excess = sum(
        (
            (line.loyalty_value - rescale_unit_value(
                line.loyalty_value, view.total, accounted, view.loyalty_paid)) * line.quantity
            for line in sale.lines
        ),
        ZERO,
    )  # fmt: skip
    if excess > 0:
        invoice = sale.invoice_number or sale.id
        movement = Movement(ActivityKind.ADJUSTED,
                            f"No points on the part of sale {invoice} paid with points",
                            Pos.XSERIES, sale.id)  # fmt: skip
        key = f"{RULE_5_KEYS}{sale.id}" + (f":{attempt}" if attempt else "")
        await points_book(scope).debit(sale.customer_id or "", excess, key, movement)


async def follow_up(scope: Scope, write: WriteRecord) -> None:
    """The worker: a sale the gateway paid part of with loyalty, still open when last seen."""
    await follow_up_sale(scope, write.intent["sale_id"])


async def follow_up_sale(scope: Scope, sale_id: str) -> None:
    """A sale that may have changed (the worker's turn, or X-Series' ``sale.update``): if
    the gateway paid part of it with loyalty, rule 5 is kept once it is closed."""
    target = writes.xseries_sale(scope, sale_id)
    if not await writes.has_follow_up(scope, target, KIND):
        return  # nothing of the gateway's to look after on this sale
    try:
        sale = await (await scope.xseries()).get_sale(sale_id, fresh=True)
    except UpstreamNotFound:
        await writes.follow_up(scope, target, KIND, None)
        return
    await _no_loyalty_on_loyalty_paid(scope, sale)


@writes.read_back(KIND)
async def _find_payment(scope: Scope, intent: dict[str, Any]) -> dict[str, Any] | None:
    """On a read-back: the loyalty payment of our amount that was not on the sale before.
    Only one can be ours: no other gateway payment touches the sale while ours is unsettled.
    A sale that is gone has none."""
    try:
        sale = await (await scope.xseries()).get_sale(intent["sale_id"], fresh=True)
    except UpstreamNotFound:
        return None
    before = set(intent["payments_before"])
    amount = Decimal(intent["amount"])
    for payment in sale.payments:
        loyalty = payment.retailer_payment_type_id == intent["payment_type_id"]
        if payment.id not in before and loyalty and payment.amount == amount:
            return {"payment_id": payment.id or ""}
    return None


def _new_payment_id(sale: RegisterSale, before: list[str]) -> str:
    known = set(before)
    new_ids = [p.id for p in sale.payments if p.id and p.id not in known]
    return new_ids[-1] if new_ids else ""

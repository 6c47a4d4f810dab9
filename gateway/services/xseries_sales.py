"""An X-Series sale's life, from any hint that it changed (``sale.update``, or reconciliation
finding it): docs/architecture.md, "The life of a sale".

X-Series keeps the balance and moves it itself at the till: it credits a sale's loyalty
when the sale closes, takes loyalty payments, and on a void (as the gateway takes it,
docs/pos-contracts.md) gives back the loyalty payments and takes back what the sale earned;
a return is a sale of its own, whose negative lines take back their loyalty. The gateway
only tells those movements in the history, once each, under the keys its own movements use
(a loyalty payment is ``xseries-payment:{id}`` whoever made it). What it does itself on a
void is what X-Series cannot know of: it gives back its rule-5 correction (X-Series took back
the whole earning) and settles what its redemptions took, by the merchant's policy.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import structlog

from gateway import priority
from gateway.domain.activity import ActivityKind, Movement
from gateway.domain.errors import GatewayError
from gateway.domain.merchant import PointsSource, Pos
from gateway.domain.money import ZERO
from gateway.domain.sales import SaleState, state_of
from gateway.pos.errors import UpstreamNotFound
from gateway.pos.xseries.models import RegisterSale, balance_step
from gateway.pos.xseries.translate import to_sale
from gateway.services import catalog, create_sale, customer_cache, pay_with_loyalty, writes
from gateway.services.afterlife import ensure_settled, settle_redeemed
from gateway.services.context import Scope
from gateway.services.customers import get_xseries_customer
from gateway.services.points import points_book, tell
from gateway.store import activity

log = structlog.get_logger("gateway.xseries_sales")


def earned_key(sale_id: str) -> str:
    return f"xseries-sale:{sale_id}:earned"


async def follow_sale(scope: Scope, sale_id: str, sale: RegisterSale | None = None) -> str:
    """Look at the sale as X-Series has it now; says what it found."""
    with priority.background():
        await _rule_5(scope, sale_id)
        if scope.merchant.points_source is not PointsSource.XSERIES:
            return "not followed: the balance of record is the gateway's"
        if sale is None:
            try:
                sale = await (await scope.xseries()).get_sale(sale_id, fresh=True)
            except UpstreamNotFound:
                return "gone"
        if not sale.customer_id:
            return "no customer"
        # The till may have moved the balance with it (a sale closed, voided, returned).
        await customer_cache.forget(scope, sale.customer_id)
        state = state_of(sale.status)
        await _tell_till(scope, sale, state)
        if state is SaleState.VOIDED:
            await _after_void(scope, sale)
            return "voided"
        return state.value.lower()


async def _rule_5(scope: Scope, sale_id: str) -> None:
    """Rule 5, if the gateway paid part of the sale. Refused (the points spent at the till
    meanwhile), it is marked for the worker's later try, and must not keep what X-Series
    did from the history; anything transient is looked at again (the sale with it)."""
    try:
        await pay_with_loyalty.follow_up_sale(scope, sale_id)
    except GatewayError as failed:
        if failed.transient:
            raise
        log.info("rule 5 left to the worker", sale=sale_id, reason=failed.message)


async def _tell_till(scope: Scope, sale: RegisterSale, state: SaleState) -> None:
    """The history of what X-Series itself did to the balance for this sale."""
    member = sale.customer_id or ""
    label = sale.invoice_number or sale.id
    view = to_sale(sale, await catalog.payment_types(scope))
    for payment in view.payments:
        if payment.is_loyalty and payment.id:
            movement = Movement(ActivityKind.REDEEMED, f"Paid with points: sale {label}",
                                Pos.XSERIES, sale.id)  # fmt: skip
            await tell(scope, member, f"xseries-payment:{payment.id}", -payment.amount,
                       movement)  # fmt: skip
    async with scope.runtime.db.read() as session:
        told = await activity.by_key(session, scope.merchant.id, earned_key(sale.id))
    if state is SaleState.CLOSED and told is None:  # told once: not asked about again
        earned = await _earned_at_close(scope, sale)
        if earned:
            kind = ActivityKind.EARNED if earned > 0 else ActivityKind.REVERSED
            reason = (f"Earned at {scope.merchant.name}, sale {label}" if earned > 0
                      else f"Returned: sale {label}")  # fmt: skip
            await tell(scope, member, earned_key(sale.id), earned,
                       Movement(kind, reason, Pos.XSERIES, sale.id))  # fmt: skip
    elif state is SaleState.VOIDED:
        if told is not None and told.points:
            movement = Movement(ActivityKind.REVERSED, f"Sale {label} was voided", Pos.XSERIES,
                                sale.id)  # fmt: skip
            await tell(scope, member, f"xseries-sale:{sale.id}:voided", -told.points, movement)
        paid = view.loyalty_paid
        if paid:
            movement = Movement(ActivityKind.RETURNED,
                                f"Given back by X-Series: sale {label} was voided",
                                Pos.XSERIES, sale.id)  # fmt: skip
            await tell(scope, member, f"xseries-sale:{sale.id}:voided-payments", paid, movement)


async def _earned_at_close(scope: Scope, sale: RegisterSale) -> Decimal:
    """What X-Series credits when the sale closes: every line's ``loyalty_value`` times its
    quantity, to the places the balance keeps, if loyalty is on for the account and the
    customer (a return's lines are negative, so is this)."""
    config = await catalog.account_config(scope)
    if not config.enable_loyalty:
        return ZERO
    customer = await get_xseries_customer(scope, sale.customer_id or "", fresh=True)
    if not customer.loyalty_enabled:
        return ZERO
    return balance_step(sum((line.loyalty_value * line.quantity for line in sale.lines), ZERO))


async def _after_void(scope: Scope, sale: RegisterSale) -> None:
    target = writes.xseries_sale(scope, sale.id)
    await ensure_settled(scope, Pos.XSERIES, sale.id, target)
    if sale.source_id:  # created through the gateway: its creation settled too
        await ensure_settled(scope, Pos.XSERIES, sale.id,
                             create_sale.created_target(scope, sale.source_id))  # fmt: skip
    label = sale.invoice_number or sale.id
    async with scope.runtime.db.read() as session:
        told = await activity.on_sale(session, scope.merchant.id, Pos.XSERIES, sale.id)
    corrected: dict[str, Decimal] = defaultdict(Decimal)
    for key, seen in told:
        if key.startswith(pay_with_loyalty.RULE_5_KEYS):  # the movements told of this sale only
            corrected[seen.member_id] -= seen.points
    for member_id, points in corrected.items():
        if points > 0:
            movement = Movement(ActivityKind.ADJUSTED,
                                f"Sale {label} was voided: its points correction given back",
                                Pos.XSERIES, sale.id)  # fmt: skip
            await points_book(scope).credit(member_id, points, f"void:xseries:{sale.id}:rule5",
                                            movement)  # fmt: skip
    paid = await writes.landed_amount(scope, target, pay_with_loyalty.KIND)
    paid += await create_sale.loyalty_paid_at_creation(scope, sale)
    returned = {sale.customer_id or "": paid} if paid else {}
    await settle_redeemed(scope, Pos.XSERIES, sale.id, f"sale {label} was voided", returned)

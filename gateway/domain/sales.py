"""Sales as the gateway shows them (either POS), and the rules of paying with loyalty
(docs/architecture.md, "Loyalty rules")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from gateway.domain.errors import (
    AmountExceedsDue,
    CustomerLoyaltyDisabled,
    InsufficientBalance,
    LoyaltyDisabled,
    SaleNotOpen,
)
from gateway.domain.merchant import Pos
from gateway.domain.money import ZERO


class SaleState(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    VOIDED = "VOIDED"


# X-Series statuses (0.9) → state; anything unknown and not closed is treated as open.
CLOSES_TO = {"SAVED": "CLOSED", "ONACCOUNT": "ONACCOUNT_CLOSED", "LAYBY": "LAYBY_CLOSED"}
CLOSED_STATUSES = frozenset(
    {"CLOSED", "ONACCOUNT_CLOSED", "LAYBY_CLOSED", "DISPATCHED_CLOSED", "PICKED_UP_CLOSED",
     "SERVICE_CLOSED", "COMPLETE"}
)  # fmt: skip
VOIDED_STATUSES = frozenset({"VOIDED", "REJECTED", "DELETED"})
# Statuses a sale may be created with through the gateway.
CREATABLE_STATUSES = frozenset(
    {"SAVED", "CLOSED", "ONACCOUNT", "LAYBY", "ONACCOUNT_CLOSED", "LAYBY_CLOSED"}
)


def state_of(status: str) -> SaleState:
    if status in VOIDED_STATUSES:
        return SaleState.VOIDED
    if status in CLOSED_STATUSES:
        return SaleState.CLOSED
    return SaleState.OPEN


def closing_status(status: str) -> str:
    """Rule 4: the status a fully paid open sale moves to."""
    return CLOSES_TO.get(status, status)


@dataclass(frozen=True)
class SaleLine:
    product_id: str
    quantity: Decimal
    price: Decimal
    tax: Decimal
    loyalty_value: Decimal  # per unit
    name: str | None = None
    tax_id: str | None = None

    @property
    def total(self) -> Decimal:
        return (self.price + self.tax) * self.quantity


@dataclass(frozen=True)
class Payment:
    name: str
    amount: Decimal
    is_loyalty: bool
    id: str | None = None


@dataclass(frozen=True)
class Sale:
    """One sale of either POS, in the gateway's terms (GraphQL ``Sale``)."""

    pos: Pos
    pos_id: str
    status: str
    customer_pos_id: str | None
    lines: tuple[SaleLine, ...] = ()
    payments: tuple[Payment, ...] = ()
    total_price: Decimal = ZERO
    total_tax: Decimal = ZERO
    sale_date: str | None = None
    # Loyalty the sale earns (X-Series: Σ line loyalty × quantity) or earned (Kounta).
    loyalty_earned: Decimal | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> SaleState:
        return state_of(self.status)

    @property
    def total(self) -> Decimal:
        return self.total_price + self.total_tax

    @property
    def total_paid(self) -> Decimal:
        return sum((p.amount for p in self.payments), ZERO)

    @property
    def loyalty_paid(self) -> Decimal:
        return sum((p.amount for p in self.payments if p.is_loyalty), ZERO)

    @property
    def amount_due(self) -> Decimal:
        return max(ZERO, self.total - self.total_paid)

    @property
    def earned(self) -> Decimal:
        if self.loyalty_earned is not None:
            return self.loyalty_earned
        return sum((line.loyalty_value * line.quantity for line in self.lines), ZERO)


def totals(lines: Sequence[SaleLine]) -> tuple[Decimal, Decimal]:
    """(total price excluding tax, total tax), as X-Series computes them."""
    price = sum((line.price * line.quantity for line in lines), ZERO)
    tax = sum((line.tax * line.quantity for line in lines), ZERO)
    return price, tax


def check_loyalty_payment(
    *,
    amount: Decimal,
    balance: Decimal,
    amount_due: Decimal,
    status: str,
    account_enabled: bool,
    customer_enabled: bool,
) -> None:
    """Rules 2 and the open-sale rule, in the order a cashier would want them explained."""
    state = state_of(status)
    if state is not SaleState.OPEN:
        raise SaleNotOpen(f"the sale is {state.value.lower()} ({status}) and takes no payment")
    if not account_enabled:
        raise LoyaltyDisabled("loyalty is turned off for this store")
    if not customer_enabled:
        raise CustomerLoyaltyDisabled("loyalty is turned off for this customer")
    if amount > amount_due:
        raise AmountExceedsDue.of(amount_due, amount)
    if amount > balance:
        raise InsufficientBalance.of(balance, amount)

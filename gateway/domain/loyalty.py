"""How much loyalty a sale earns: the loyalty rules (docs/architecture.md), from X-Series'
Loyalty 101.

Pure functions over plain values: the services fetch the account config, the customer and
the products' price-book entries, and hand them here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from gateway.domain.money import ZERO, round_money


class ValueSource(StrEnum):
    """Which rule gave a line its unit value (useful to explain a quote)."""

    NONE = "NONE"  # loyalty off for the account or the customer
    GROUP_OUTLET_PRICE_BOOK = "GROUP_OUTLET_PRICE_BOOK"  # the customer's group, the sale's outlet
    GROUP_PRICE_BOOK = "GROUP_PRICE_BOOK"  # the customer's group, all outlets
    GENERAL_OUTLET_PRICE_BOOK = "GENERAL_OUTLET_PRICE_BOOK"  # all customers, the sale's outlet
    GENERAL_PRICE_BOOK = "GENERAL_PRICE_BOOK"  # all customers, all outlets
    RATIO = "RATIO"


# Which price-book entry gives a line its value, first to last; then price × ratio.
# The customer's group before the outlet: Loyalty 101 keys price-book loyalty on the
# customer group, so any entry for the group beats any general one, and the outlet only
# chooses within each (docs/pos-contracts.md, "Price books").
PRECEDENCE = (
    ValueSource.GROUP_OUTLET_PRICE_BOOK,
    ValueSource.GROUP_PRICE_BOOK,
    ValueSource.GENERAL_OUTLET_PRICE_BOOK,
    ValueSource.GENERAL_PRICE_BOOK,
)


@dataclass(frozen=True)
class PriceBookValue:
    """The parts of a price-book entry that decide loyalty."""

    customer_group_id: str | None
    loyalty_value: Decimal | None
    outlet_id: str | None = None
    min_units: Decimal | None = None
    max_units: Decimal | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    def applies(self, quantity: Decimal, at: datetime, outlet_id: str | None = None) -> bool:
        """``outlet_id``: the sale's outlet; None when unknown, and then an outlet's own
        entry never applies (we never guess the outlet)."""
        if self.outlet_id and self.outlet_id != outlet_id:
            return False
        if self.valid_from and at < self.valid_from:
            return False
        if self.valid_to and at > self.valid_to:
            return False
        if self.min_units is not None and self.min_units > 0 and quantity < self.min_units:
            return False
        return not (self.max_units is not None and self.max_units > 0 and quantity > self.max_units)


@dataclass(frozen=True)
class EarningRules:
    """The account's and the customer's switches and the ratio (rules 1, 2 and 3c), and
    where and when the sale happens (which price-book entries apply)."""

    account_enabled: bool
    ratio: Decimal
    tax_inclusive: bool
    general_group_id: str | None
    customer_enabled: bool
    customer_group_id: str | None
    at: datetime
    outlet_id: str | None = None  # the register's outlet; None: unknown

    @property
    def earns(self) -> bool:
        return self.account_enabled and self.customer_enabled


@dataclass(frozen=True)
class LineToQuote:
    product_id: str
    quantity: Decimal
    price: Decimal  # unit price, tax exclusive
    tax: Decimal  # unit tax
    price_book: Sequence[PriceBookValue] = ()

    @property
    def total(self) -> Decimal:
        return (self.price + self.tax) * self.quantity


@dataclass(frozen=True)
class QuotedLine:
    product_id: str
    quantity: Decimal
    unit_loyalty_value: Decimal  # what goes into the line's loyalty_value
    loyalty_value: Decimal  # unit × quantity: what the line earns
    source: ValueSource


@dataclass(frozen=True)
class Quote:
    lines: tuple[QuotedLine, ...]
    loyalty_earned: Decimal
    total: Decimal  # the sale's total, tax included
    loyalty_paid: Decimal


def base_unit_value(line: LineToQuote, rules: EarningRules) -> tuple[Decimal, ValueSource]:
    """Rule 3: the first step of ``PRECEDENCE`` with an entry that applies and has a
    non-zero value (the first such entry in X-Series' order), else price × ratio."""
    if not rules.earns:
        return ZERO, ValueSource.NONE
    found: dict[ValueSource, Decimal] = {}
    for entry in line.price_book:
        if not entry.loyalty_value or not entry.applies(line.quantity, rules.at, rules.outlet_id):
            continue
        step = _step(entry, rules)
        if step is not None:
            found.setdefault(step, entry.loyalty_value)
    for step in PRECEDENCE:
        if step in found:
            return found[step], step
    unit_price = line.price + line.tax if rules.tax_inclusive else line.price
    return unit_price * rules.ratio, ValueSource.RATIO


def _step(entry: PriceBookValue, rules: EarningRules) -> ValueSource | None:
    """The precedence step of an entry that applies at the sale's outlet; None for another
    group's entry."""
    in_outlet = bool(entry.outlet_id)  # applies() let only the sale's own outlet through
    if not entry.customer_group_id or entry.customer_group_id == rules.general_group_id:
        return (
            ValueSource.GENERAL_OUTLET_PRICE_BOOK if in_outlet else ValueSource.GENERAL_PRICE_BOOK
        )
    if entry.customer_group_id == rules.customer_group_id:
        return ValueSource.GROUP_OUTLET_PRICE_BOOK if in_outlet else ValueSource.GROUP_PRICE_BOOK
    return None


def quote(lines: Sequence[LineToQuote], rules: EarningRules, loyalty_paid: Decimal = ZERO) -> Quote:
    """Rules 3 to 6: per-unit values, scaled down for the part paid with loyalty (rule 5),
    each rounded half-up to cents (rule 6); X-Series multiplies by quantity (rule 4)."""
    total = sum((line.total for line in lines), ZERO)
    factor = proration_factor(total, loyalty_paid)
    quoted = []
    for line in lines:
        base, source = base_unit_value(line, rules)
        unit = round_money(base * factor)
        quoted.append(
            QuotedLine(line.product_id, line.quantity, unit, unit * line.quantity, source)
        )
    earned = sum((q.loyalty_value for q in quoted), ZERO)
    return Quote(tuple(quoted), earned, total, loyalty_paid)


def proration_factor(total: Decimal, loyalty_paid: Decimal) -> Decimal:
    """(total − loyalty paid) / total; 1 for a free sale, 0 when loyalty paid it all."""
    if total <= 0:
        return Decimal(1)
    return max(ZERO, total - loyalty_paid) / total


def rescale_unit_value(
    unit: Decimal, total: Decimal, paid_before: Decimal, paid_after: Decimal
) -> Decimal:
    """A line's unit value after more of the sale is paid with loyalty (rule 5 on an
    existing sale): from factor (total − before)/total to (total − after)/total."""
    remaining_before = total - paid_before
    if remaining_before <= 0:
        return ZERO
    return round_money(unit * max(ZERO, total - paid_after) / remaining_before)

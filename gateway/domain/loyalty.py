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
    GROUP_PRICE_BOOK = "GROUP_PRICE_BOOK"
    GENERAL_PRICE_BOOK = "GENERAL_PRICE_BOOK"
    RATIO = "RATIO"


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

    def applies(self, quantity: Decimal, at: datetime) -> bool:
        if self.outlet_id:  # outlet-specific books need the sale's outlet; we never guess it
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
    """The account's and the customer's switches and the ratio (rules 1, 2 and 3c)."""

    account_enabled: bool
    ratio: Decimal
    tax_inclusive: bool
    general_group_id: str | None
    customer_enabled: bool
    customer_group_id: str | None
    at: datetime

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
    """Rule 3: the group's price-book value, else the general one, else price × ratio."""
    if not rules.earns:
        return ZERO, ValueSource.NONE
    applicable = [e for e in line.price_book if e.applies(line.quantity, rules.at)]
    if rules.customer_group_id and rules.customer_group_id != rules.general_group_id:
        for entry in applicable:
            if entry.customer_group_id == rules.customer_group_id and entry.loyalty_value:
                return entry.loyalty_value, ValueSource.GROUP_PRICE_BOOK
    for entry in applicable:
        general = not entry.customer_group_id or entry.customer_group_id == rules.general_group_id
        if general and entry.loyalty_value:
            return entry.loyalty_value, ValueSource.GENERAL_PRICE_BOOK
    unit_price = line.price + line.tax if rules.tax_inclusive else line.price
    return unit_price * rules.ratio, ValueSource.RATIO


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

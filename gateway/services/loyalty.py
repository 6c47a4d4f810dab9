"""Quoting loyalty: what a sale would earn, line by line (docs/architecture.md, "Loyalty rules")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from gateway.domain.customers import Customer
from gateway.domain.errors import ValidationError
from gateway.domain.loyalty import EarningRules, LineToQuote, PriceBookValue, Quote, quote
from gateway.domain.money import ZERO, parse_amount, parse_quantity, parse_unit_amount
from gateway.pos.xseries.models import Product
from gateway.services import catalog
from gateway.services.context import Scope
from gateway.services.customers import get_customer

MAX_LINES = 200


@dataclass(frozen=True)
class LineInput:
    product_id: str
    quantity: Decimal
    price: Decimal
    tax: Decimal
    tax_id: str = ""


def validate_lines(lines: Sequence[LineInput]) -> list[LineInput]:
    if not lines:
        raise ValidationError("a sale needs at least one line", field="lines")
    if len(lines) > MAX_LINES:
        raise ValidationError(f"a sale has at most {MAX_LINES} lines", field="lines")
    checked = []
    for n, line in enumerate(lines):
        where = f"lines[{n}]"
        if not line.product_id.strip():
            raise ValidationError(f"{where}.productId is required", field=f"{where}.productId")
        quantity = parse_quantity(line.quantity, f"{where}.quantity")
        price = parse_unit_amount(line.price, f"{where}.price")
        tax = parse_unit_amount(line.tax, f"{where}.tax")
        checked.append(
            LineInput(line.product_id.strip(), quantity, price, tax, line.tax_id.strip())
        )
    return checked


def optional_amount(value: Decimal | None, field: str) -> Decimal:
    return ZERO if value is None else parse_amount(value, field)


async def earning_rules(
    scope: Scope, customer: Customer | None, register_id: str | None = None
) -> EarningRules:
    """The rules for a sale by ``customer`` at ``register_id``; without a register the
    outlet is unknown, and no outlet's own price-book entry applies."""
    config = await catalog.account_config(scope)
    outlet_id = None
    if register_id is not None:
        outlet_id = (await catalog.register(scope, register_id)).outlet_id
    return EarningRules(
        account_enabled=config.enable_loyalty,
        ratio=config.loyalty_ratio,
        tax_inclusive=config.display_retail_price_tax_inclusive,
        general_group_id=config.default_customer_group_id,
        customer_enabled=bool(customer and customer.loyalty_enabled),
        customer_group_id=customer.group_id if customer else None,
        at=datetime.now(UTC),
        outlet_id=outlet_id,
    )


def price_book(product: Product) -> tuple[PriceBookValue, ...]:
    return tuple(
        PriceBookValue(
            customer_group_id=entry.customer_group_id,
            loyalty_value=entry.loyalty_value,
            outlet_id=entry.outlet_id,
            min_units=entry.min_units,
            max_units=entry.max_units,
            valid_from=entry.valid_from,
            valid_to=entry.valid_to,
        )
        for entry in product.price_book_entries
    )


async def quote_lines(
    scope: Scope,
    customer: Customer | None,
    lines: Sequence[LineInput],
    loyalty_paid: Decimal,
    *,
    register_id: str | None = None,
) -> Quote:
    rules = await earning_rules(scope, customer, register_id)
    products = await catalog.products(scope, (line.product_id for line in lines))
    to_quote = [
        LineToQuote(
            line.product_id,
            line.quantity,
            line.price,
            line.tax,
            price_book(products[line.product_id]),
        )
        for line in lines
    ]
    return quote(to_quote, rules, loyalty_paid)


async def quote_loyalty(
    scope: Scope,
    *,
    customer_id: str | None,
    lines: Sequence[LineInput],
    loyalty_payment: Decimal | None,
    register_id: str | None = None,
) -> Quote:
    checked = validate_lines(lines)
    loyalty_paid = optional_amount(loyalty_payment, "loyaltyPayment")
    if register_id is not None and not register_id.strip():
        raise ValidationError("registerId must not be empty; leave it out", field="registerId")
    customer = await get_customer(scope, customer_id) if customer_id else None
    result = await quote_lines(scope, customer, checked, loyalty_paid, register_id=register_id)
    if loyalty_paid > result.total:
        raise ValidationError(
            f"loyaltyPayment {loyalty_paid} is more than the sale's total {result.total}",
            field="loyaltyPayment",
        )
    return result

"""Money and points as ``Decimal``: parsing that refuses what is not exact, rounding half-up."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from gateway.domain.errors import ValidationError

CENT = Decimal("0.01")
ZERO = Decimal("0")
# Far above any till; bounds the arithmetic a hostile input can ask for.
MAX_AMOUNT = Decimal("1000000000")


def round_money(value: Decimal) -> Decimal:
    """Round to the currency's two places, half-up (DESIGN §3 rule 6)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def to_decimal(value: object) -> Decimal:
    """Read a number the POS sent (string, int, Decimal) without ever passing through float.

    Raises ``ValueError`` for anything that is not a finite number; floats are read through
    their shortest repr, which is the decimal text they were parsed from.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"not a number: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def parse_amount(value: object, field: str, *, allow_zero: bool = False) -> Decimal:
    """A caller's amount: finite, at most two decimal places, positive (or zero if allowed)."""
    try:
        amount = to_decimal(value)
    except ValueError:
        raise ValidationError(f"{field} must be a decimal number like 12.50", field=field) from None
    if abs(amount) >= MAX_AMOUNT:
        raise ValidationError(f"{field} is too large", field=field)
    if amount != amount.quantize(CENT):
        raise ValidationError(f"{field} must have at most two decimal places", field=field)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValidationError(f"{field} must be greater than zero", field=field)
    return amount.quantize(CENT)


def parse_quantity(value: object, field: str) -> Decimal:
    """A line quantity: finite, non-zero, at most five places (what the POS stores)."""
    try:
        quantity = to_decimal(value)
    except ValueError:
        raise ValidationError(f"{field} must be a number", field=field) from None
    if quantity == 0 or abs(quantity) >= MAX_AMOUNT:
        raise ValidationError(f"{field} must be non-zero and reasonable", field=field)
    if quantity != quantity.quantize(Decimal("0.00001")):
        raise ValidationError(f"{field} must have at most five decimal places", field=field)
    return quantity

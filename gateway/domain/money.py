"""Money and points as ``Decimal``: one strict grammar for what callers send, a lenient
reader for what a POS sends, rounding half-up."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from gateway.domain.errors import ValidationError

CENT = Decimal("0.01")
ZERO = Decimal("0")
# Far above any till; bounds the arithmetic a hostile input can ask for.
MAX_AMOUNT = Decimal("1000000000")

# The grammar of ``read_number``; ``[0-9]``, not ``\d``, which matches other scripts' digits.
NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Longer than anything the grammar allows below MAX_AMOUNT, with leading zeros to spare.
MAX_NUMBER_LENGTH = 32
AMOUNT_PLACES = 2  # money and points
LINE_PLACES = 5  # a sale line's quantity, unit price and unit tax
PLACES = {2: "two", 5: "five"}


def round_money(value: Decimal) -> Decimal:
    """Round to the currency's two places, half-up (docs/architecture.md, "Loyalty rules")."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def cents_within(value: Decimal) -> Decimal:
    """The most of ``value`` that an amount a caller sends (two places, ``parse_amount``)
    can name: rounded down to cents, so naming it never asks for more than ``value``."""
    return value.quantize(CENT, rounding=ROUND_DOWN)


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


def read_number(value: object) -> Decimal:
    """A number a caller sent, read by the one grammar every entry point shares: ASCII
    digits, optionally a point and more digits; surrounding ASCII whitespace is ignored.

    ``Decimal()`` alone also reads signs, exponents ("1E+1000000", whose arithmetic
    overflows), underscores ("1_0" is ten), other scripts' digits ("٥" is five), NaN and
    Infinity: each lets an input mean something other than what it shows. A JSON number
    (an int, or the Decimal jsonx reads) is held to the same text, so 1e3 is refused
    however it is sent. Raises ``ValueError``; the places allowed are the caller's rule.
    """
    text = _number_text(value)
    if len(text) > MAX_NUMBER_LENGTH or NUMBER.fullmatch(text) is None:
        raise ValueError("not a plain decimal number")
    return Decimal(text)


def _number_text(value: object) -> str:
    if isinstance(value, str):
        return value.strip(" \t\r\n")
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, int):  # bounded before str(): a huge int is slow to print
        return str(value) if abs(value) < 10**MAX_NUMBER_LENGTH else "too long"
    if isinstance(value, Decimal):
        return str(value)  # keeps an exponent as written: Decimal("1e3") is "1E+3"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as this float
    raise ValueError("not a number")


def read_signed_number(value: object) -> Decimal:
    """``read_number`` with an optional leading minus or plus: the one place a caller may
    send a sign (a manual adjustment is a credit or a debit). Raises ``ValueError``."""
    text = _number_text(value)
    negative = text.startswith("-")
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not digits[:1].isascii() or not digits[:1].isdigit():  # "- 5", "-", "-.5"
        raise ValueError("not a plain decimal number")
    number = read_number(digits)
    return -number if negative else number


def _places(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _caller_number(value: object, field: str, places: int, example: str) -> Decimal:
    try:
        number = read_number(value)
    except ValueError:
        raise ValidationError(
            f"{field} must be a plain decimal number like {example}: digits and an optional "
            "point, no sign, exponent or other characters",
            field=field,
        ) from None
    return _bounded(number, field, places)


def _bounded(number: Decimal, field: str, places: int) -> Decimal:
    if _places(number) > places:
        raise ValidationError(
            f"{field} must have at most {PLACES.get(places, places)} decimal places",
            field=field,
        )
    if abs(number) >= MAX_AMOUNT:
        raise ValidationError(f"{field} is too large", field=field)
    return number


def parse_amount(value: object, field: str, *, allow_zero: bool = False) -> Decimal:
    """A caller's amount: the number grammar, at most two places, below ``MAX_AMOUNT``,
    positive (or zero if allowed)."""
    amount = _caller_number(value, field, AMOUNT_PLACES, "12.50")
    if amount == 0 and not allow_zero:
        raise ValidationError(f"{field} must be greater than zero", field=field)
    return amount.quantize(CENT)


def parse_signed_amount(value: object, field: str) -> Decimal:
    """A caller's signed amount of points (positive credits, negative debits): the number
    grammar after an optional sign, at most two places, below ``MAX_AMOUNT`` either way,
    never zero."""
    try:
        number = read_signed_number(value)
    except ValueError:
        raise ValidationError(
            f"{field} must be a decimal number like 12.50 or -12.50: an optional sign, digits "
            "and an optional point, no exponent or other characters",
            field=field,
        ) from None
    amount = _bounded(number, field, AMOUNT_PLACES)
    if amount == 0:
        raise ValidationError(f"{field} must not be zero", field=field)
    return amount.quantize(CENT)


def parse_quantity(value: object, field: str) -> Decimal:
    """A line quantity: the number grammar, positive, at most five places (what the POS
    stores)."""
    quantity = _caller_number(value, field, LINE_PLACES, "1.5")
    if quantity == 0:
        raise ValidationError(f"{field} must be greater than zero", field=field)
    return quantity


def parse_unit_amount(value: object, field: str) -> Decimal:
    """A unit price or tax: the number grammar, zero or more, at most five places (a unit
    price may carry more than cents: 1.36364 × 11 = 15.00)."""
    return _caller_number(value, field, LINE_PLACES, "1.25")

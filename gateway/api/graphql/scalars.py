"""The ``Decimal`` scalar: money and points as strings ("12.50"), never floats.

Read from a string or a number (a JSON float is read through its shortest repr, so 12.5
stays 12.5). A string that is not a number ("ten", "NaN") is read as NaN on purpose: every
Decimal input is checked by the services, which answer a VALIDATION error naming the
field, a result the caller can act on, instead of a bare request error.
"""

from __future__ import annotations

from decimal import Decimal as PyDecimal
from decimal import InvalidOperation

import strawberry

from gateway.domain.money import CENT, to_decimal

NOT_A_NUMBER = PyDecimal("NaN")


def serialize(value: PyDecimal) -> str:
    """Two places at least (money reads as money), more only when they carry digits."""
    if value == value.quantize(CENT):
        return format(value.quantize(CENT), "f")
    return format(value.normalize(), "f")


def parse(value: object) -> PyDecimal:
    if isinstance(value, str):
        try:
            return PyDecimal(value.strip())
        except InvalidOperation:
            return NOT_A_NUMBER
    try:
        return to_decimal(value)
    except ValueError:
        raise ValueError(
            f'Decimal expects a number as a string, like "12.50"; got {str(value)[:40]!r}'
        ) from None


DECIMAL = strawberry.scalar(
    name="Decimal",
    description='A decimal number serialized as a string, e.g. "12.50". Never a float.',
    serialize=serialize,
    parse_value=parse,
)

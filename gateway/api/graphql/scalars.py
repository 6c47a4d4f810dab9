"""The ``Decimal`` scalar: money and points as strings ("12.50"), never floats.

Read from a string, a JSON number or an inline literal, always by the one number grammar
(``money.read_number``): a literal by its own text, so ``amount: 1e3`` is refused exactly
like ``"1e3"``. Text or a number outside the grammar ("ten", "NaN", "1_0", -5) is read as
NaN on purpose: every Decimal input is checked by the services, which answer a VALIDATION
error naming the field, a result the caller can act on, instead of a bare request error.
Only what is not a number at all (true, a list) is a request error.
"""

from __future__ import annotations

from decimal import Decimal as PyDecimal
from typing import Any

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode

from gateway.domain.money import CENT, read_number

NOT_A_NUMBER = PyDecimal("NaN")


def serialize(value: PyDecimal) -> str:
    """Two places at least (money reads as money), more only when they carry digits."""
    if value == value.quantize(CENT):
        return format(value.quantize(CENT), "f")
    return format(value.normalize(), "f")


def parse(value: object) -> PyDecimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | PyDecimal):
        raise ValueError('Decimal expects a number as a string, like "12.50"')
    try:
        return read_number(value)
    except ValueError:
        return NOT_A_NUMBER


def parse_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> PyDecimal:
    if isinstance(node, StringValueNode | IntValueNode | FloatValueNode):
        return parse(node.value)
    raise ValueError('Decimal expects a number as a string, like "12.50"')


DECIMAL = strawberry.scalar(
    name="Decimal",
    description='A decimal number serialized as a string, e.g. "12.50". Never a float.',
    serialize=serialize,
    parse_value=parse,
    parse_literal=parse_literal,
)

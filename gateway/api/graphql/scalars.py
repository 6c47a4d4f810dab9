"""The ``Decimal`` scalar: money and points as strings ("12.50"), never floats.

Read from a string, a JSON number or an inline literal, always by the one number grammar
(``money.read_number``): a literal by its own text, so ``amount: 1e3`` is refused exactly
like ``"1e3"``. Text or a number outside the grammar ("ten", "NaN", "1_0", -5) is read as
NaN on purpose: every Decimal input is checked by the services, which answer a VALIDATION
error naming the field, a result the caller can act on, instead of a bare request error.
Only what is not a number at all (true, a list) is a request error.

``SignedDecimal`` is the same with an optional leading sign, for the one input where a sign
means something (``adjustPoints``' points).
"""

from __future__ import annotations

from decimal import Decimal as PyDecimal
from typing import Any, NewType

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode

from gateway.domain.money import CENT, read_number, read_signed_number

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


def parse_signed(value: object) -> PyDecimal:
    """``parse`` with an optional sign: what ``SignedDecimal`` reads."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | PyDecimal):
        raise ValueError('SignedDecimal expects a number as a string, like "-12.50"')
    try:
        return read_signed_number(value)
    except ValueError:
        return NOT_A_NUMBER


def parse_signed_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> PyDecimal:
    if isinstance(node, StringValueNode | IntValueNode | FloatValueNode):
        return parse_signed(node.value)
    raise ValueError('SignedDecimal expects a number as a string, like "-12.50"')


# Only where a sign means something (a manual adjustment credits or debits): everywhere
# else a sign is refused by the grammar, so "-5" can never slip into an amount.
SignedDecimal = NewType("SignedDecimal", PyDecimal)
SIGNED_DECIMAL = strawberry.scalar(
    name="SignedDecimal",
    description='A decimal number with an optional sign, as a string: "12.50", "-12.50".',
    serialize=serialize,
    parse_value=parse_signed,
    parse_literal=parse_signed_literal,
)

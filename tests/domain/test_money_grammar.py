"""The one grammar for numbers callers send, and the rules built on it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from graphql import FloatValueNode, IntValueNode, StringValueNode

from gateway.api.graphql import scalars
from gateway.domain.errors import ValidationError
from gateway.domain.money import parse_amount, parse_quantity, parse_unit_amount, read_number

# Each of these is a number to Python's Decimal(); none is one a caller may send.
NOT_PLAIN = [
    "٥",  # ARABIC-INDIC DIGIT FIVE
    "５",  # FULLWIDTH DIGIT FIVE
    "1_0",
    "+5",
    "-5",
    "5.",
    ".5",
    "1e3",
    "1E+1000000",
    "NaN",
    "-NaN",
    "sNaN",
    "Infinity",
    "inf",
    "\u00a05",  # a non-breaking space is not stripped
    "5\u2003",
    "1 000",
    "",
    "0" * 33,
    True,
    None,
    [5],
    -5,
    10**40,
    Decimal("1E+3"),
    Decimal("-0"),
    Decimal("NaN"),
    float("nan"),
    1e16,
]


@pytest.mark.parametrize("value", NOT_PLAIN)
def test_the_grammar_refuses_what_only_python_calls_a_number(value: object) -> None:
    with pytest.raises(ValueError, match="number"):
        read_number(value)


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("5", "5"),
        (" 5.50\t", "5.50"),
        ("0", "0"),
        ("007", "7"),
        ("1.12345", "1.12345"),
        (5, "5"),
        (Decimal("5.50"), "5.50"),
        (5.5, "5.5"),
    ],
)
def test_the_grammar_reads_plain_numbers_exactly(value: object, number: str) -> None:
    assert read_number(value) == Decimal(number)
    assert str(read_number(value)) == str(Decimal(number))


@pytest.mark.parametrize("value", ["5.001", "5.000", "0", "0.00", "1000000000", "1_0", "1e3"])
def test_amounts(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_amount(value, "amount")
    assert refused.value.field == "amount"
    assert "amount" in refused.value.message
    assert parse_amount("5.5", "amount") == Decimal("5.50")
    assert parse_amount("0", "amount", allow_zero=True) == Decimal("0.00")


def test_line_fields_keep_five_places_and_the_same_grammar() -> None:
    assert parse_quantity("1.12345", "q") == Decimal("1.12345")
    assert parse_unit_amount("1.36364", "p") == Decimal("1.36364")
    assert parse_unit_amount("0", "p") == 0
    for bad in ("1.123456", "0", "-1", "1e2", "1_0", "٢"):
        with pytest.raises(ValidationError, match="q"):
            parse_quantity(bad, "q")
    for bad in ("-0", "+5", "2e1", "NaN", "1.000001"):
        with pytest.raises(ValidationError, match="p"):
            parse_unit_amount(bad, "p")


def test_the_scalar_reads_by_the_grammar_and_leaves_refusal_to_the_services() -> None:
    assert scalars.parse("12.50") == Decimal("12.50")
    assert scalars.parse(Decimal("5.5")) == Decimal("5.5")
    for outside in ("1_0", "٥", "1e3", -5, Decimal("1E+1000000")):
        assert scalars.parse(outside).is_nan()
    with pytest.raises(ValueError, match="Decimal expects a number"):
        scalars.parse(True)


def test_an_inline_literal_is_read_by_its_own_text() -> None:
    assert scalars.parse_literal(IntValueNode(value="5")) == Decimal("5")
    assert scalars.parse_literal(FloatValueNode(value="5.5")) == Decimal("5.5")
    assert scalars.parse_literal(FloatValueNode(value="1e3")).is_nan()
    assert scalars.parse_literal(StringValueNode(value="1_0")).is_nan()

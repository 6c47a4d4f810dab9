"""The pure parts of the history: signed points, page cursors, ids of any kind."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.api.graphql import scalars
from gateway.domain import cursors, ids
from gateway.domain.activity import redemption_key, redemption_of
from gateway.domain.errors import ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.money import parse_amount, parse_signed_amount

KEY = b"k" * 32
AT = datetime(2026, 12, 1, 15, 45, 52, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "points"),
    [("5", "5.00"), ("-5", "-5.00"), ("+5.5", "5.50"), (" -0.01 ", "-0.01"), (-7, "-7.00"),
     (Decimal("-3.10"), "-3.10"), ("999999999.99", "999999999.99")],
)  # fmt: skip
def test_signed_points_read_an_optional_sign_then_the_one_grammar(
    value: object, points: str
) -> None:
    assert str(parse_signed_amount(value, "points")) == points


@pytest.mark.parametrize(
    "value",
    ["0", "-0", "+0.00", "- 5", "--5", "+-5", "-", "", "-.5", "-5.", "-1e3", "-1_0", "-٥",
     "-NaN", "-Infinity", "1.234", "-1000000000", True, None, Decimal("NaN"), 10**40],
)  # fmt: skip
def test_signed_points_refuse_anything_else_naming_the_field(value: object) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_signed_amount(value, "points")
    assert refused.value.field == "points"


def test_only_the_signed_scalar_lets_a_sign_through() -> None:
    assert scalars.parse_signed("-12.50") == Decimal("-12.50")
    assert scalars.parse_signed(-3) == Decimal(-3)
    assert scalars.parse_signed("- 1").is_nan()
    assert scalars.parse("-12.50").is_nan()
    with pytest.raises(ValidationError):
        parse_amount(scalars.parse_signed("-12.50"), "amount")


def test_a_cursor_names_its_place_in_its_own_list_only() -> None:
    cursor = cursors.encode(KEY, "m1:member-1", AT, "row-9")
    assert cursors.decode(KEY, "m1:member-1", cursor) == (AT, "row-9")
    payload, _, signature = cursor.partition(".")
    forged = base64.urlsafe_b64encode(b'["c1","2999-01-01T00:00:00+00:00","row-9"]').decode()
    wrong: Callable[[], object]
    for wrong in (
        lambda: cursors.decode(KEY, "m1:member-2", cursor),  # another customer's list
        lambda: cursors.decode(KEY, "m2:member-1", cursor),  # another merchant's
        lambda: cursors.decode(b"x" * 32, "m1:member-1", cursor),  # another secret
        lambda: cursors.decode(KEY, "m1:member-1", f"{forged.rstrip('=')}.{signature}"),
        lambda: cursors.decode(KEY, "m1:member-1", payload),
        lambda: cursors.decode(KEY, "m1:member-1", "\ud800.\udfff"),
        lambda: cursors.decode(KEY, "m1:member-1", "x" * 600),
    ):
        with pytest.raises(ValidationError) as refused:
            wrong()
        assert refused.value.field == "after"


def test_peek_reads_an_id_of_any_kind_and_tells_foreign_from_malformed() -> None:
    value = ids.encode(Kind.ACTIVITY, None, "m1", "a-1")
    assert ids.peek(value, "m1") == ids.GlobalId(Kind.ACTIVITY, None, "m1", "a-1")
    assert ids.peek(value, "m2") is None
    sale = ids.encode(Kind.SALE, Pos.KOUNTA, "m1", "a|b")
    assert ids.peek(sale, "m1") == ids.GlobalId(Kind.SALE, Pos.KOUNTA, "m1", "a|b")
    for malformed in ("", "not an id", "A" * 2000, ids.encode(Kind.SALE, None, "m1", "")):
        with pytest.raises(ValidationError) as refused:
            ids.peek(malformed, "m1")
        assert refused.value.field == "id"


def test_a_redemptions_movements_name_it() -> None:
    assert redemption_of(redemption_key("r-1")) == "r-1"
    assert redemption_of(redemption_key("r-1", "topup:2")) == "r-1"
    assert redemption_of("earning:order-1") is None
    assert redemption_of("redemption:") is None

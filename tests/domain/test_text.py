"""Text callers send: bounded, printable, refused with the field's name."""

from __future__ import annotations

import pytest

from gateway.domain import ids
from gateway.domain.errors import NotFound, ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.text import check_text
from gateway.services.customers import clean_keyword


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "a\x00b", "\x7f", "\x85x", "a\tb"])
def test_what_cannot_reach_a_pos_or_a_database_is_refused(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_text(value, "orderId")
    assert refused.value.field == "orderId" and "orderId" in refused.value.message


def test_length_is_bounded() -> None:
    assert check_text("9" * 100, "id") == "9" * 100
    with pytest.raises(ValidationError, match="id is limited to 100 characters"):
        check_text("9" * 101, "id")


def test_names_in_any_script_are_text() -> None:
    assert check_text("José Ñandú 東京 ٥", "search", max_length=200) == "José Ñandú 東京 ٥"


def test_a_keyword_is_normalised_then_checked() -> None:
    assert clean_keyword("  Tony \t Stark\n") == "Tony Stark"
    assert clean_keyword(" x " * 80) == " ".join(["x"] * 80)  # 240 raw, 159 clean
    with pytest.raises(ValidationError, match="keyword"):
        clean_keyword("Tony \ud800", "keyword")
    with pytest.raises(ValidationError, match="search is limited to 200"):
        clean_keyword("a" * 201)


def test_global_ids_are_bounded_before_decoding_and_hold_printable_ids() -> None:
    with pytest.raises(NotFound):
        ids.decode("A" * 2000, Kind.SALE, "m1")
    control = ids.encode(Kind.SALE, Pos.XSERIES, "m1", "a\x00b")
    with pytest.raises(NotFound):
        ids.decode(control, Kind.SALE, "m1")
    assert ids.decode(ids.encode(Kind.SALE, Pos.XSERIES, "m1", "a b"), Kind.SALE, "m1")

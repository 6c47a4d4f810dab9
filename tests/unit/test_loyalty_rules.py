"""The earning rules (docs/architecture.md), as pure functions: examples from Loyalty 101 and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.loyalty import (
    EarningRules,
    LineToQuote,
    PriceBookValue,
    ValueSource,
    proration_factor,
    quote,
    rescale_unit_value,
)
from gateway.domain.money import CENT, round_money

NOW = datetime(2026, 11, 21, tzinfo=UTC)
GENERAL = "all-customers"
VIP = "vip"


def rules(**changes: object) -> EarningRules:
    base = {
        "account_enabled": True,
        "ratio": Decimal("0.1"),
        "tax_inclusive": False,
        "general_group_id": GENERAL,
        "customer_enabled": True,
        "customer_group_id": GENERAL,
        "at": NOW,
    }
    base.update(changes)
    return EarningRules(**base)  # type: ignore[arg-type]


def line(
    price: str, tax: str, quantity: str = "1", book: tuple[PriceBookValue, ...] = ()
) -> LineToQuote:
    return LineToQuote("p", Decimal(quantity), Decimal(price), Decimal(tax), book)


def test_ratio_on_tax_exclusive_price() -> None:
    result = quote([line("20", "3")], rules())
    assert result.lines[0].unit_loyalty_value == Decimal("2.00")
    assert result.lines[0].source is ValueSource.RATIO
    assert result.total == Decimal("23")


def test_ratio_on_tax_inclusive_price() -> None:
    result = quote([line("12", "1.8")], rules(tax_inclusive=True))
    assert result.lines[0].unit_loyalty_value == Decimal("1.38")


def test_group_price_book_wins_then_general() -> None:
    book = (
        PriceBookValue(customer_group_id=GENERAL, loyalty_value=Decimal("7")),
        PriceBookValue(customer_group_id=VIP, loyalty_value=Decimal("333")),
    )
    vip = quote([line("1000", "150", book=book)], rules(customer_group_id=VIP))
    assert vip.lines[0].unit_loyalty_value == Decimal("333")
    assert vip.lines[0].source is ValueSource.GROUP_PRICE_BOOK
    regular = quote([line("1000", "150", book=book)], rules())
    assert regular.lines[0].unit_loyalty_value == Decimal("7")
    assert regular.lines[0].source is ValueSource.GENERAL_PRICE_BOOK


def test_zero_price_book_values_fall_through_to_the_ratio() -> None:
    book = (
        PriceBookValue(customer_group_id=VIP, loyalty_value=Decimal("0")),
        PriceBookValue(customer_group_id=GENERAL, loyalty_value=None),
    )
    result = quote([line("20", "3", book=book)], rules(customer_group_id=VIP))
    assert result.lines[0].unit_loyalty_value == Decimal("2.00")


def test_entries_outside_their_window_or_units_do_not_apply() -> None:
    expired = PriceBookValue(GENERAL, Decimal("9"), valid_to=NOW - timedelta(days=1))
    future = PriceBookValue(GENERAL, Decimal("8"), valid_from=NOW + timedelta(days=1))
    bulk = PriceBookValue(GENERAL, Decimal("5"), min_units=Decimal("10"))
    outlet = PriceBookValue(GENERAL, Decimal("4"), outlet_id="another-outlet")
    result = quote([line("20", "3", book=(expired, future, bulk, outlet))], rules())
    assert result.lines[0].source is ValueSource.RATIO
    bought_ten = quote([line("20", "3", quantity="10", book=(bulk,))], rules())
    assert bought_ten.lines[0].unit_loyalty_value == Decimal("5")


def test_quantity_multiplies_the_unit_value() -> None:
    result = quote([line("20", "3", quantity="3")], rules())
    assert result.lines[0].unit_loyalty_value == Decimal("2.00")
    assert result.lines[0].loyalty_value == Decimal("6.00")
    assert result.loyalty_earned == Decimal("6.00")


def test_loyalty_off_for_account_or_customer_earns_nothing() -> None:
    book = (PriceBookValue(GENERAL, Decimal("7")),)
    for off in (rules(account_enabled=False), rules(customer_enabled=False)):
        result = quote([line("20", "3", book=book)], off)
        assert result.loyalty_earned == 0
        assert result.lines[0].source is ValueSource.NONE


def test_part_paid_with_loyalty_earns_nothing() -> None:
    total = Decimal("23")
    result = quote([line("20", "3")], rules(), loyalty_paid=total * Decimal("0.4"))
    assert result.loyalty_earned == Decimal("1.20")  # 60% of 2


def test_unit_values_round_half_up_to_cents() -> None:
    result = quote([line("0.05", "0")], rules())  # 0.005
    assert result.lines[0].unit_loyalty_value == Decimal("0.01")
    assert round_money(Decimal("2.345")) == Decimal("2.35")
    assert round_money(Decimal("-2.345")) == Decimal("-2.35")


def test_rescaling_an_existing_sale_matches_a_fresh_quote() -> None:
    # Johnny's T-shirt: 2 per unit on 23; 10 paid with loyalty, then 8 more.
    first = rescale_unit_value(Decimal("2"), Decimal("23"), Decimal("0"), Decimal("10"))
    assert first == Decimal("1.13")
    second = rescale_unit_value(first, Decimal("23"), Decimal("10"), Decimal("18"))
    assert second == Decimal("0.43") == round_money(Decimal("2") * 5 / 23)
    assert rescale_unit_value(Decimal("2"), Decimal("23"), Decimal("23"), Decimal("23")) == 0


# --------------------------------------------------------------------------- properties

money = st.decimals(min_value=Decimal("0"), max_value=Decimal("5000"), places=2)
quantity = st.integers(min_value=1, max_value=50).map(Decimal)
ratio = st.decimals(min_value=Decimal("0"), max_value=Decimal("1"), places=3)
lines = st.lists(
    st.builds(lambda p, t, q: line(str(p), str(t), str(q)), money, money, quantity),
    min_size=1,
    max_size=8,
)


@st.composite
def sale_with_loyalty(draw: st.DrawFn) -> tuple[list[LineToQuote], Decimal, EarningRules]:
    drawn = draw(lines)
    total = sum((x.total for x in drawn), Decimal(0))
    paid = draw(st.decimals(min_value=Decimal(0), max_value=total, places=2))
    return drawn, paid, rules(ratio=draw(ratio), tax_inclusive=draw(st.booleans()))


@settings(max_examples=300, deadline=None)
@given(sale_with_loyalty())
def test_earned_is_never_negative(case: tuple[list[LineToQuote], Decimal, EarningRules]) -> None:
    drawn, paid, earning = case
    result = quote(drawn, earning, paid)
    assert result.loyalty_earned >= 0
    assert all(q.unit_loyalty_value >= 0 for q in result.lines)


@settings(max_examples=300, deadline=None)
@given(sale_with_loyalty())
def test_earned_never_exceeds_ratio_times_other_tenders(
    case: tuple[list[LineToQuote], Decimal, EarningRules],
) -> None:
    """Without price-book overrides, loyalty is at most ratio × what was paid otherwise.

    Each unit value is rounded half-up to a cent (rule 6), so each unit may carry up to
    half a cent more than the exact figure: that is the only slack allowed.
    """
    drawn, paid, earning = case
    result = quote(drawn, earning, paid)
    units = sum((x.quantity for x in drawn), Decimal(0))
    bound = earning.ratio * (result.total - paid) + CENT / 2 * units
    assert result.loyalty_earned <= bound


@settings(max_examples=300, deadline=None)
@given(sale_with_loyalty())
def test_proration_sums_correctly_across_lines(
    case: tuple[list[LineToQuote], Decimal, EarningRules],
) -> None:
    """The sale earns the sum of its lines; each line is its full value scaled by the
    share not paid with loyalty, to within its rounding."""
    drawn, paid, earning = case
    full = quote(drawn, earning)
    prorated = quote(drawn, earning, paid)
    factor = proration_factor(prorated.total, paid)
    assert prorated.loyalty_earned == sum((q.loyalty_value for q in prorated.lines), Decimal(0))
    for whole, part, source in zip(full.lines, prorated.lines, drawn, strict=True):
        assert part.loyalty_value == part.unit_loyalty_value * source.quantity
        exact = whole.unit_loyalty_value * factor
        assert abs(part.unit_loyalty_value - exact) <= CENT
    if paid == 0:
        assert prorated.loyalty_earned == full.loyalty_earned
    if paid == prorated.total:
        assert prorated.loyalty_earned == 0

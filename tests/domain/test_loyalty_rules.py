"""The earning rules (docs/architecture.md), as pure functions: examples from Loyalty 101 and properties."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.loyalty import (
    PRECEDENCE,
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


# --------------------------------------------------------------------------- outlets
#
# Precedence (docs/pos-contracts.md, "Price books"): (a) the customer's group at the sale's
# outlet, (b) the group at all outlets, (c) all customers at the outlet, (d) all customers
# at all outlets, (e) price × ratio. Each step below is the first left in its book.

SHOP = "outlet-shop"
AIRPORT = "outlet-airport"
GROUP_AT_SHOP = PriceBookValue(VIP, Decimal("40"), outlet_id=SHOP)
GROUP_EVERYWHERE = PriceBookValue(VIP, Decimal("30"))
GENERAL_AT_SHOP = PriceBookValue(GENERAL, Decimal("20"), outlet_id=SHOP)
GENERAL_EVERYWHERE = PriceBookValue(GENERAL, Decimal("10"))
FULL_BOOK = (GENERAL_EVERYWHERE, GENERAL_AT_SHOP, GROUP_EVERYWHERE, GROUP_AT_SHOP)


def at_outlet(
    book: tuple[PriceBookValue, ...], group: str = VIP, outlet: str | None = SHOP
) -> tuple[Decimal, ValueSource]:
    result = quote([line("20", "3", book=book)], rules(customer_group_id=group, outlet_id=outlet))
    return result.lines[0].unit_loyalty_value, result.lines[0].source


@pytest.mark.parametrize(
    ("book", "group", "outlet", "expected"),
    [
        # (a) the group's entry for the register's outlet beats everything
        (FULL_BOOK, VIP, SHOP, ("40", ValueSource.GROUP_OUTLET_PRICE_BOOK)),
        # (b) the group's entry for all outlets, when the outlet has none for the group...
        (FULL_BOOK, VIP, AIRPORT, ("30", ValueSource.GROUP_PRICE_BOOK)),
        # ...and it beats the general entry for the outlet: (b) before (c)
        (FULL_BOOK[:3], VIP, SHOP, ("30", ValueSource.GROUP_PRICE_BOOK)),
        # (c) all customers at the outlet: a customer of no special group...
        (FULL_BOOK, GENERAL, SHOP, ("20", ValueSource.GENERAL_OUTLET_PRICE_BOOK)),
        # ...or one whose group has no entry
        (FULL_BOOK[:2], VIP, SHOP, ("20", ValueSource.GENERAL_OUTLET_PRICE_BOOK)),
        # (d) all customers, all outlets: another outlet, or an outlet we do not know
        (FULL_BOOK, GENERAL, AIRPORT, ("10", ValueSource.GENERAL_PRICE_BOOK)),
        (FULL_BOOK, GENERAL, None, ("10", ValueSource.GENERAL_PRICE_BOOK)),
        (FULL_BOOK[:2], VIP, None, ("10", ValueSource.GENERAL_PRICE_BOOK)),
        # without an outlet, an outlet's own entry never applies, even the group's
        ((GROUP_AT_SHOP,), VIP, None, ("2.00", ValueSource.RATIO)),
        # (e) the ratio: only other outlets' entries
        ((GROUP_AT_SHOP, GENERAL_AT_SHOP), VIP, AIRPORT, ("2.00", ValueSource.RATIO)),
    ],
)
def test_price_book_precedence_by_group_then_outlet(
    book: tuple[PriceBookValue, ...],
    group: str,
    outlet: str | None,
    expected: tuple[str, ValueSource],
) -> None:
    value, source = at_outlet(book, group, outlet)
    assert (value, source) == (Decimal(expected[0]), expected[1])


def test_an_outlet_entry_outside_its_dates_gives_way_to_the_next_step() -> None:
    expired = PriceBookValue(VIP, Decimal("40"), outlet_id=SHOP, valid_to=NOW - timedelta(days=1))
    future = PriceBookValue(
        GENERAL, Decimal("20"), outlet_id=SHOP, valid_from=NOW + timedelta(days=1)
    )
    current = PriceBookValue(
        GENERAL, Decimal("25"), outlet_id=SHOP, valid_from=NOW - timedelta(days=1), valid_to=NOW
    )
    assert at_outlet((expired, GROUP_EVERYWHERE)) == (Decimal("30"), ValueSource.GROUP_PRICE_BOOK)
    assert at_outlet((expired, future, GENERAL_EVERYWHERE), group=VIP) == (
        Decimal("10"),
        ValueSource.GENERAL_PRICE_BOOK,
    )
    assert at_outlet((future, current, GENERAL_EVERYWHERE), group=GENERAL) == (
        Decimal("25"),
        ValueSource.GENERAL_OUTLET_PRICE_BOOK,
    )


def test_a_zero_outlet_entry_falls_through_like_any_zero_entry() -> None:
    zero = PriceBookValue(VIP, Decimal("0"), outlet_id=SHOP)
    assert at_outlet((zero, GENERAL_AT_SHOP)) == (
        Decimal("20"),
        ValueSource.GENERAL_OUTLET_PRICE_BOOK,
    )


STEP_ENTRIES = {
    ValueSource.GROUP_OUTLET_PRICE_BOOK: GROUP_AT_SHOP,
    ValueSource.GROUP_PRICE_BOOK: GROUP_EVERYWHERE,
    ValueSource.GENERAL_OUTLET_PRICE_BOOK: GENERAL_AT_SHOP,
    ValueSource.GENERAL_PRICE_BOOK: GENERAL_EVERYWHERE,
}
NOISE = (
    PriceBookValue(VIP, Decimal("91"), outlet_id=AIRPORT),  # another outlet
    PriceBookValue(GENERAL, Decimal("92"), outlet_id=AIRPORT),
    PriceBookValue("staff", Decimal("93")),  # another group
    PriceBookValue("staff", Decimal("94"), outlet_id=SHOP),
    PriceBookValue(VIP, Decimal("95"), outlet_id=SHOP, valid_to=NOW - timedelta(seconds=1)),
    PriceBookValue(VIP, Decimal("96"), valid_from=NOW + timedelta(seconds=1)),
    PriceBookValue(VIP, Decimal("0"), outlet_id=SHOP),  # zero: no override
    PriceBookValue(GENERAL, None, outlet_id=SHOP),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.sets(st.sampled_from(PRECEDENCE)),
    noise=st.lists(st.sampled_from(NOISE), max_size=6),
    order=st.randoms(use_true_random=False),
)
def test_the_first_step_present_decides_whatever_the_order_of_entries(
    steps: set[ValueSource], noise: list[PriceBookValue], order: random.Random
) -> None:
    """Entries for other outlets or groups, outside their dates or worth zero never decide;
    among the rest, the earliest step of the precedence wins, wherever it is in the book."""
    book = [STEP_ENTRIES[step] for step in steps] + noise
    order.shuffle(book)
    value, source = at_outlet(tuple(book))
    first = next((step for step in PRECEDENCE if step in steps), None)
    if first is None:
        assert (value, source) == (Decimal("2.00"), ValueSource.RATIO)
    else:
        assert (value, source) == (STEP_ENTRIES[first].loyalty_value, first)


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

"""The redeeming rules (docs/architecture.md), global ids and money parsing, as pure functions."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from gateway.domain import ids
from gateway.domain.errors import ErrorCode, GatewayError
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.money import parse_amount, parse_quantity, to_decimal
from gateway.domain.sales import (
    Payment,
    Sale,
    SaleLine,
    SaleState,
    check_loyalty_payment,
    closing_status,
    state_of,
)


def check(**overrides: object) -> None:
    values: dict[str, object] = {
        "amount": Decimal("10"),
        "balance": Decimal("50"),
        "amount_due": Decimal("18"),
        "status": "ONACCOUNT",
        "account_enabled": True,
        "customer_enabled": True,
    }
    values.update(overrides)
    check_loyalty_payment(**values)  # type: ignore[arg-type]


def code_of(**overrides: object) -> ErrorCode:
    with pytest.raises(GatewayError) as failure:
        check(**overrides)
    return failure.value.code


def test_a_valid_payment_passes() -> None:
    check()
    check(amount=Decimal("18"), balance=Decimal("18"))


def test_each_rule_has_its_code() -> None:
    assert code_of(status="CLOSED") is ErrorCode.SALE_NOT_OPEN
    assert code_of(status="VOIDED") is ErrorCode.SALE_NOT_OPEN
    assert code_of(account_enabled=False) is ErrorCode.LOYALTY_DISABLED
    assert code_of(customer_enabled=False) is ErrorCode.CUSTOMER_LOYALTY_DISABLED
    assert code_of(amount=Decimal("18.01")) is ErrorCode.AMOUNT_EXCEEDS_DUE
    assert code_of(balance=Decimal("9.99")) is ErrorCode.INSUFFICIENT_BALANCE


def test_errors_carry_the_numbers_a_cashier_needs() -> None:
    with pytest.raises(GatewayError) as short:
        check(balance=Decimal("9.99"))
    assert short.value.details == {"balance": "9.99", "requested": "10"}
    with pytest.raises(GatewayError) as over:
        check(amount=Decimal("20"))
    assert over.value.details == {"amount_due": "18", "requested": "20"}


@pytest.mark.parametrize(
    ("status", "closed"),
    [("SAVED", "CLOSED"), ("ONACCOUNT", "ONACCOUNT_CLOSED"), ("LAYBY", "LAYBY_CLOSED")],
)
def test_fully_paid_sales_close(status: str, closed: str) -> None:
    assert closing_status(status) == closed
    assert state_of(status) is SaleState.OPEN
    assert state_of(closed) is SaleState.CLOSED


def test_sale_arithmetic() -> None:
    sale = Sale(
        pos=Pos.XSERIES,
        pos_id="s",
        status="ONACCOUNT",
        customer_pos_id="c",
        lines=(SaleLine("p", Decimal(2), Decimal(20), Decimal(3), Decimal(2)),),
        payments=(Payment("Cash", Decimal(5), False), Payment("Loyalty", Decimal(10), True)),
        total_price=Decimal(40),
        total_tax=Decimal(6),
    )
    assert sale.total == 46 and sale.total_paid == 15 and sale.amount_due == 31
    assert sale.loyalty_paid == 10 and sale.earned == 4


def test_global_ids_round_trip_and_are_scoped_to_their_merchant() -> None:
    value = ids.encode(Kind.CUSTOMER, Pos.XSERIES, "m1", "06e35f89")
    decoded = ids.decode(value, Kind.CUSTOMER, "m1")
    assert (decoded.pos, decoded.local_id) == (Pos.XSERIES, "06e35f89")
    wrong_merchant_or_kind: Callable[[], object]
    for wrong_merchant_or_kind in (
        lambda: ids.decode(value, Kind.CUSTOMER, "m2"),
        lambda: ids.decode(value, Kind.SALE, "m1"),
        lambda: ids.decode("not-an-id!", Kind.CUSTOMER, "m1"),
        lambda: ids.decode(value[:6], Kind.CUSTOMER, "m1"),
    ):
        with pytest.raises(GatewayError) as failure:
            wrong_merchant_or_kind()
        assert failure.value.code is ErrorCode.NOT_FOUND


def test_local_ids_may_contain_the_separator() -> None:
    value = ids.encode(Kind.SALE, Pos.KOUNTA, "m1", "a|b")
    assert ids.decode(value, Kind.SALE, "m1").local_id == "a|b"


@pytest.mark.parametrize("text", ["12.5", "12.50", "0.01", 7, Decimal("3.10")])
def test_amounts_accept_exact_money(text: object) -> None:
    assert parse_amount(text, "amount") == Decimal(str(text)).quantize(Decimal("0.01"))


@pytest.mark.parametrize("bad", ["-5", "0", "12.345", "NaN", "Infinity", "abc", "1e10", True, None])
def test_amounts_refuse_what_is_not_exact_positive_money(bad: object) -> None:
    with pytest.raises(GatewayError) as failure:
        parse_amount(bad, "amount")
    assert failure.value.code is ErrorCode.VALIDATION
    assert failure.value.field == "amount"


def test_floats_are_read_through_their_shortest_repr() -> None:
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal(25.3) == Decimal("25.3")


def test_quantities() -> None:
    assert parse_quantity("1.5", "q") == Decimal("1.5")
    for bad in ("0", "1.000001", "x"):
        with pytest.raises(GatewayError):
            parse_quantity(bad, "q")

"""The X-Series payloads' mixed types are read into exact, typed values."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.pos.xseries.models import (
    Customer,
    PaymentType,
    RegisterSale,
    RetailerConfig,
    sale_write_payload,
)


@pytest.mark.parametrize("value", [True, 1, "1", "true"])
def test_flags_accept_every_spelling_of_on(value: object) -> None:
    assert RetailerConfig.model_validate({"enable_loyalty": value}).enable_loyalty is True


@pytest.mark.parametrize("value", [False, 0, "0", "false", None, ""])
def test_flags_accept_every_spelling_of_off(value: object) -> None:
    assert RetailerConfig.model_validate({"enable_loyalty": value}).enable_loyalty is False


def test_config_ratio_and_tax_display() -> None:
    config = RetailerConfig.model_validate(
        {"loyalty_ratio": 0.1, "display_retail_price_tax_inclusive": "1"}
    )
    assert config.loyalty_ratio == Decimal("0.1")
    assert config.display_retail_price_tax_inclusive is True


def test_customer_balance_string_and_number() -> None:
    zero_one = Customer.model_validate(
        {"id": "c", "loyalty_balance": "0.00000", "enable_loyalty": 0}
    )
    assert zero_one.loyalty_balance == Decimal("0") and zero_one.enable_loyalty is False
    searched = Customer.model_validate({"id": "c", "loyalty_balance": Decimal("12.5")})
    assert searched.loyalty_balance == Decimal("12.5")


def test_payment_type_id_from_09_and_20() -> None:
    assert PaymentType.model_validate({"id": "x", "payment_type_id": 106}).is_loyalty
    assert PaymentType.model_validate({"id": "x", "type_id": "106"}).is_loyalty
    assert not PaymentType.model_validate({"id": "x", "payment_type_id": 1}).is_loyalty


def test_sale_write_payload_keeps_lines_and_payments_and_drops_read_only_parts() -> None:
    sale = RegisterSale.model_validate(
        {
            "id": "s1",
            "register_id": "r",
            "user_id": "u",
            "status": "ONACCOUNT",
            "total_price": 20,
            "totals": {"total_to_pay": 18},
            "taxes": [{"id": "t", "tax": 3}],
            "register_sale_products": [
                {
                    "id": "l1",
                    "product_id": "p",
                    "quantity": 1,
                    "price": 20,
                    "tax": 3,
                    "tax_id": "t",
                    "loyalty_value": 2,
                    "price_total": 20,
                    "name": "T-shirt",
                }
            ],
            "register_sale_payments": [
                {"id": "pay1", "retailer_payment_type_id": "cash", "amount": 5, "name": "Cash"}
            ],
        }
    )
    payload = sale_write_payload(sale)
    assert "totals" not in payload and "taxes" not in payload and "total_price" not in payload
    assert payload["id"] == "s1" and payload["status"] == "ONACCOUNT"
    assert payload["register_sale_products"] == [
        {
            "id": "l1",
            "product_id": "p",
            "quantity": Decimal(1),
            "price": Decimal(20),
            "loyalty_value": Decimal(2),
            "tax": Decimal(3),
            "tax_id": "t",
        }
    ]
    assert payload["register_sale_payments"] == [
        {"id": "pay1", "retailer_payment_type_id": "cash", "amount": Decimal(5)}
    ]


def test_sale_reads_the_20_search_shape() -> None:
    sale = RegisterSale.model_validate(
        {
            "id": "s",
            "status": "CLOSED",
            "line_items": [{"product_id": "p", "quantity": 2, "price": 1, "tax": 0}],
            "payments": [{"retailer_payment_type_id": "x", "amount": 2}],
        }
    )
    assert len(sale.lines) == 1 and sale.lines[0].quantity == 2
    assert sale.payments[0].amount == 2 and sale.is_closed
